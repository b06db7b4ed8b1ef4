"""A model's facts live in its config.json: the outputs' names and units, the features' names, the masking and seed
it trained with. `predict` and the pipeline read them there and answer alike; checkpoints saved when the facts were
in the run's `results.json` keep their names and numbers."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from transformers import pipeline

from expression_perceiver.cli import main as cli
from expression_perceiver.inference.pipeline import add_pipeline
from expression_perceiver.training.run import main as train
from tests.small_models import SMALL_OVERRIDES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dna_two_outputs_drop_masking"
BUNDLE = Path(__file__).resolve().parents[2] / "expression_perceiver" / "modeling"


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def assert_same_predictions(found: Path, expected: Path) -> None:
    found_rows, expected_rows = read_tsv(found), read_tsv(expected)
    assert list(found_rows[0]) == list(expected_rows[0])  # the same columns, named alike
    for got, want in zip(found_rows, expected_rows, strict=True):
        assert got["id"] == want["id"]
        for column in want:
            if column.startswith("predicted_"):
                assert float(got[column]) == pytest.approx(float(want[column]), rel=1e-6, abs=1e-7), column


def test_a_checkpoint_whose_facts_are_in_its_run_report_predicts_as_it_did(tmp_path):
    # Its config has no label names, units, feature names or masking: they come from its results.json, and its
    # drop-mode masking (the first 50 positions removed) changes the numbers, so a missed fact shows.
    config = json.loads((FIXTURE / "config.json").read_text())
    assert "training_masking" not in config and config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}
    output = tmp_path / "predictions.tsv"
    arguments = ["predict", str(FIXTURE / "promoters.fa"), "-m", str(FIXTURE), "-o", str(output)]
    assert cli([*arguments, "--features", str(FIXTURE / "features.tsv"), "--quiet"]) == 0
    assert_same_predictions(output, FIXTURE / "expected_predictions.tsv")
    record = json.loads(output.with_name("predictions.tsv.json").read_text())["models"][0]
    assert record["label_units"] == ["log10(mrna_tpm + 1)", "log10(protein_level + 1)"]
    assert record["evaluation_masking"].startswith("first, 50 positions removed")


def two_output_table(path: Path, rng: np.random.Generator) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["gene_id", "sequence", "mrna_tpm", "protein_level", "half_life_a", "half_life_b"])
        for i in range(96):
            sequence = "".join(rng.choice(list("ACGT"), 240))
            gc = (sequence.count("G") + sequence.count("C")) / len(sequence)
            writer.writerow([f"G{i}", sequence, 10 ** (1 + 3 * gc), 2 + gc + rng.normal(0, 0.1), *rng.normal(size=2)])
    return path


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("facts")
    table = two_output_table(folder / "two.tsv", np.random.default_rng(3))
    prepare = ["prepare", "table", str(table), "--alphabet", "dna", "-o", str(folder / "data"), "--log10"]
    for column in ("mrna_tpm", "protein_level"):
        prepare += ["--label-column", column]
    for column in ("half_life_a", "half_life_b"):
        prepare += ["--feature-column", column]
    assert cli(prepare) == 0
    train([
        "--dataset_dir", str(folder / "data"), "--output_dir", str(folder / "run"),
        "--config_overrides", SMALL_OVERRIDES + ",max_sequence_length=300", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "16", "--use_cpu", "true", "--disable_tqdm", "true", "--seed", "5",
        "--mask_strategy", "random_span", "--mask_length", "20",
    ])  # fmt: skip
    (folder / "run" / "results.json").unlink()  # the report is not needed to use the model
    return folder / "run"


@pytest.mark.slow
def test_training_writes_every_fact_a_user_needs_into_the_config(trained_checkpoint):
    config = json.loads((trained_checkpoint / "config.json").read_text())
    assert config["id2label"] == {"0": "mrna_tpm", "1": "protein_level"}
    assert config["label2id"] == {"mrna_tpm": 0, "protein_level": 1}
    assert config["label_units"] == ["log10(mrna_tpm)", "log10(protein_level)"]
    assert config["feature_names"] == ["half_life_a", "half_life_b"] and len(config["feature_mean"]) == 2
    assert config["training_masking"] == {
        "strategy": "random_span", "mode": "mask", "mask_length": 20, "mask_fraction": None, "num_spans": 1,
        "mask_token": "[MASK]",
    }  # fmt: skip
    assert config["training_seed"] == 5 and len(config["data_fingerprint"]) >= 16


@pytest.mark.slow
def test_predict_and_the_pipeline_give_the_same_names_and_numbers(trained_checkpoint, tmp_path):
    sequences = ["ACGTTGCA" * 20, "GGGCCCAT" * 30]
    features = [[0.5, -1.0], [0.0, 2.0]]
    fasta = tmp_path / "promoters.fa"
    fasta.write_text("".join(f">S{i}\n{sequence}\n" for i, sequence in enumerate(sequences)))
    table = tmp_path / "features.tsv"
    table.write_text(
        "gene_id\thalf_life_a\thalf_life_b\n" + "".join(f"S{i}\t{a}\t{b}\n" for i, (a, b) in enumerate(features))
    )
    output = tmp_path / "predicted.tsv"
    arguments = ["predict", str(fasta), "-m", str(trained_checkpoint), "-o", str(output), "--features", str(table)]
    assert cli([*arguments, "--quiet"]) == 0
    rows = read_tsv(output)

    regress = pipeline(model=str(trained_checkpoint), trust_remote_code=True, device="cpu")
    answers = regress([{"sequence": s, "features": f} for s, f in zip(sequences, features, strict=True)])
    for row, answer in zip(rows, answers, strict=True):
        assert list(answer["predictions"]) == ["mrna_tpm", "protein_level"]
        assert [column for column in row if column.startswith("predicted_")] == [
            "predicted_mrna_tpm", "predicted_protein_level"
        ]  # fmt: skip
        for name, value in answer["predictions"].items():
            assert float(row[f"predicted_{name}"]) == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_without_its_run_report_an_old_checkpoint_still_loads_with_unnamed_outputs(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(FIXTURE, folder)
    (folder / "results.json").unlink()
    output = tmp_path / "predictions.tsv"
    features = ["--features", str(folder / "features.tsv"), "--feature-columns", "half_life_a", "half_life_b"]
    assert (
        cli(["predict", str(folder / "promoters.fa"), "-m", str(folder), "-o", str(output), "--quiet", *features]) == 0
    )
    assert list(read_tsv(output)[0])[:3] == ["id", "predicted_output_0", "predicted_output_1"]


def old_checkpoint(folder: Path) -> Path:
    """The fixture as training saved it: with the bundle's code beside the weights (the fixture keeps no code)."""
    shutil.copytree(FIXTURE, folder)
    for name in ("configuration", "modeling", "kernels", "tokenization"):
        shutil.copy(BUNDLE / f"{name}_expression_perceiver.py", folder)
    return folder


def test_the_pipeline_reads_an_old_checkpoint_as_predict_does_once_add_pipeline_wrote_its_facts(tmp_path):
    # The fixture's model removes its first 50 positions (drop mode): the pipeline must do so too, and name the
    # outputs by the run report's labels, once `add_pipeline` has written them into config.json.
    folder = old_checkpoint(tmp_path / "old")
    add_pipeline(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["training_masking"]["strategy"] == "first" and config["training_masking"]["mask_length"] == 50
    assert config["feature_names"] == ["half_life_a", "half_life_b"]
    sequences = {
        record.split("\n")[0]: record.split("\n")[1]
        for record in FIXTURE.joinpath("promoters.fa").read_text().split(">")[1:]
    }
    features = {
        row["gene_id"]: [float(row["half_life_a"]), float(row["half_life_b"])]
        for row in read_tsv(FIXTURE / "features.tsv")
    }
    regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    for row in read_tsv(FIXTURE / "expected_predictions.tsv"):
        answer = regress({"sequence": sequences[row["id"]], "features": features[row["id"]]})
        assert list(answer["predictions"]) == ["mrna_tpm", "protein_level"]
        for name, value in answer["predictions"].items():
            assert value == pytest.approx(float(row[f"predicted_{name}"]), rel=1e-6, abs=1e-6), (row["id"], name)


def test_the_pipeline_refuses_a_model_trained_with_random_spans_removed(tmp_path):
    folder = old_checkpoint(tmp_path / "random")
    add_pipeline(folder)
    config = json.loads((folder / "config.json").read_text())
    config["training_masking"].update(strategy="random_span", mask_length=10)
    (folder / "config.json").write_text(json.dumps(config))
    regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    with pytest.raises(ValueError, match="random spans removed .*`expression-perceiver predict`"):
        regress({"sequence": "ACGT" * 50, "features": [0.0, 0.0]})
