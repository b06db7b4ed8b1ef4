"""`expression-perceiver predict|embed`: the files written, the record beside them, and bad input as one line on
stderr with exit code 2."""

import hashlib
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from expression_perceiver.cli import build_parser, main
from tests.inference.helpers import DNA_WINDOW, direct_embeddings, random_dna, read_tsv

RNG = np.random.default_rng(5)
SEQUENCES = [random_dna(RNG, length) for length in (120, 280, 350)]


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "in.fa"
    path.write_text("".join(f">s{index}\n{sequence}\n" for index, sequence in enumerate(SEQUENCES)))
    return path


def one_error_line(capsys, command: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"expression-perceiver {command}: error: ")
    return lines[0].removeprefix(f"expression-perceiver {command}: error: ")


def test_help_lists_predict_and_embed():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"predict", "embed"} <= set(commands)


def test_the_record_beside_the_predictions(tmp_path, models, fasta, capsys):
    ensemble = [str(models["dna"]), str(models["dna_other_seed"])]
    output = tmp_path / "out" / "predictions.tsv"
    arguments = [
        "predict",
        str(fasta),
        "-m",
        ensemble[0],
        "-m",
        ensemble[1],
        "--fill-missing-features",
        "-o",
        str(output),
    ]
    assert main(arguments) == 0
    assert capsys.readouterr().out.startswith(f"wrote {output}: 3 rows (in the training labels' units)")
    header, rows = read_tsv(output)
    assert header[:6] == [
        "id", "predicted_output_0_mean", "predicted_output_0_std", "predicted_output_1_mean", "predicted_output_1_std",
        "n_models",
    ] and header[-1] == "features_filled"  # fmt: skip
    assert [row[-1] for row in rows] == ["1", "1", "1"]
    record = json.loads((tmp_path / "out" / "predictions.tsv.json").read_text())
    weights = (models["dna"] / "model.safetensors").read_bytes()
    assert record["models"][0]["weights_sha256"] == {"model.safetensors": hashlib.sha256(weights).hexdigest()}
    assert [model["model"] for model in record["models"]] == ensemble
    assert record["models"][0]["label_mean"] == [1.5, -2.0] and record["units"] == "original"
    assert {"expression-perceiver", "torch", "transformers"} <= set(record["versions"])
    assert record["device"] == "cpu" and record["dtype"] == "float32"
    assert record["counts"] == {
        "records": 3, "cropped": 1, "padded": 2, "features_filled": 3, "features_ignored": 0, "all_n": 0,
        "repeated_ids": 0,
    }  # fmt: skip
    assert record["ensemble"]["n"] == 2 and "ddof=1" in record["ensemble"]["std"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["predictions.tsv", "predictions.tsv.json"]

    # An existing output is kept unless --overwrite.
    assert main(arguments) == 2
    assert one_error_line(capsys, "predict") == f"{output} already exists (pass --overwrite to replace it)"
    assert main([*arguments, "--overwrite"]) == 0


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_embed_writes_pooler_outputs_with_their_ids(tmp_path, models, fasta, suffix):
    output = tmp_path / f"embeddings{suffix}"
    assert (
        main(["embed", str(fasta), "-m", str(models["zscore"]), "-o", str(output), "--batch-size", "2", "--quiet"]) == 0
    )
    expected = direct_embeddings(models["zscore"], [sequence[:DNA_WINDOW] for sequence in SEQUENCES])
    if suffix == ".npy":
        values = np.load(output)
        assert (tmp_path / "embeddings.ids.txt").read_text().split() == ["s0", "s1", "s2"]
    else:
        table = pq.read_table(output)
        assert table.column("id").to_pylist() == ["s0", "s1", "s2"]
        values = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    assert values.dtype == np.float32 and values.shape == expected.shape == (3, 16)
    np.testing.assert_allclose(values, expected, atol=1e-6)
    record = json.loads(output.with_name(output.name + ".json").read_text())
    assert record["shape"] == [3, 16] and record["embedding"].startswith("pooler_output")


def test_embed_latents_as_npy(tmp_path, models, fasta):
    output = tmp_path / "latents.npy"
    assert main(["embed", str(fasta), "-m", str(models["zscore"]), "--latents", "-o", str(output), "--quiet"]) == 0
    expected = direct_embeddings(models["zscore"], [s[:DNA_WINDOW] for s in SEQUENCES], latents=True)
    np.testing.assert_allclose(np.load(output), expected, atol=1e-6)


def test_malformed_fasta_is_one_line_and_exit_code_2(tmp_path, models, capsys):
    (tmp_path / "bad.fa").write_text("ACGT\n>s1\nACGT\n")
    assert main(["predict", str(tmp_path / "bad.fa"), "-m", str(models["zscore"]), "-o", str(tmp_path / "o.tsv")]) == 2
    assert one_error_line(capsys, "predict") == "bad.fa: line 1 holds sequence before the first '>' header"
    assert not (tmp_path / "o.tsv").exists() and list(tmp_path.iterdir()) == [tmp_path / "bad.fa"]


def test_a_bad_letter_leaves_no_partial_output(tmp_path, models, capsys):
    (tmp_path / "bad.fa").write_text(">s1\nACGT\n>s2\nAC-GT\n")
    assert main(["predict", str(tmp_path / "bad.fa"), "-m", str(models["zscore"]), "-o", str(tmp_path / "o.tsv")]) == 2
    assert one_error_line(capsys, "predict") == (
        "bad.fa: record 's2' has letter '-' at position 3 (1-based), not a dna letter"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.fa"]


def test_malformed_bed_is_one_line_and_exit_code_2(tmp_path, models, capsys):
    (tmp_path / "genome.fa").write_text(">chr1\n" + "ACGT" * 100 + "\n")
    (tmp_path / "bad.bed").write_text("chr1\t10\t200\tg1\n")
    arguments = ["--bed", str(tmp_path / "bad.bed"), "--genome", str(tmp_path / "genome.fa"), "--full-window"]
    assert main(["predict", *arguments, "-m", str(models["zscore"]), "-o", str(tmp_path / "o.tsv")]) == 2
    assert one_error_line(capsys, "predict") == "bad.bed: line 1 has 4 tab-separated columns; a promoter BED needs 6"


def test_a_model_folder_without_weights_is_one_line_and_exit_code_2(tmp_path, models, fasta, capsys):
    folder = tmp_path / "unfinished"
    shutil.copytree(models["zscore"], folder)
    (folder / "model.safetensors").unlink()
    assert main(["predict", str(fasta), "-m", str(folder), "-o", str(tmp_path / "o.tsv")]) == 2
    message = one_error_line(capsys, "predict")
    assert message == (
        f"model {folder}: cannot load its weights: model.safetensors is missing (an unfinished or partial checkpoint?)"
    )
    assert main(["embed", str(fasta), "-m", str(tmp_path / "absent"), "-o", str(tmp_path / "o.npy")]) == 2
    assert one_error_line(capsys, "embed") == f"model {tmp_path / 'absent'}: no such folder"


def test_a_model_that_needs_features_and_gets_none(tmp_path, models, fasta, capsys):
    assert main(["predict", str(fasta), "-m", str(models["dna"]), "-o", str(tmp_path / "o.tsv")]) == 2
    assert one_error_line(capsys, "predict").startswith(
        "in.fa: record 's0' has no features; the model reads 3 per-gene features"
    )


def test_all_n_records_and_repeated_ids_are_scored_and_counted(tmp_path, models, capsys):
    """Neither stops a prediction (each row is its own input), but a sequence with no known base predicts nothing of
    a promoter, and an id twice would be mixed up by any table joined on it: the summary and the record say so."""
    path = tmp_path / "in.fa"
    path.write_text(">g1\nACGTAC\n>blank\nNNNNNN\n>g1\nGGCATT\n>soft\nnnnNNN\n>g2\nACGT\n>g1\nTTTT\n")
    output = tmp_path / "o.tsv"
    assert main(["predict", str(path), "-m", str(models["zscore"]), "-o", str(output)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "  padded 6, all-N sequences 2, repeated ids 2"
    assert "  sequence all N (no known base), scored: 2 (first: blank, soft)" in printed
    assert "  id repeated (an earlier record has it), scored: 2 (first: g1, g1)" in printed
    _, rows = read_tsv(output)
    assert [row[0] for row in rows] == ["g1", "blank", "g1", "soft", "g2", "g1"]
    assert rows[0][1] != rows[2][1]  # each repeated id keeps its own prediction
    record = json.loads((tmp_path / "o.tsv.json").read_text())
    assert record["counts"]["all_n"] == 2 and record["counts"]["repeated_ids"] == 2
    assert record["rows"] == 6
