import argparse
from pathlib import Path

import h5py
import numpy as np
import pytest

from expression_perceiver.cli import main as cli
from expression_perceiver.cli.prepare import add_prepare_parser, run_prepare
from expression_perceiver.data.dataset_dict import load_dataset_dir
from expression_perceiver.data.xpresso import XPRESSO_FEATURE_NAMES, write_xpresso_h5

from .helpers import hand_reverse_complement, random_dna, write_fasta, write_table, xpresso_records


def prepare(argv: list[str]) -> int:
    """`expression-perceiver prepare ...`, in this process."""
    return cli(["prepare", *argv])


REPOSITORY = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    """Temporary folders an interrupted write would leave behind."""
    return sorted(path.name for path in folder.iterdir() if ".partial-" in path.name or ".scratch-" in path.name)


@pytest.fixture
def protein_table(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[f"G{i}", "M" + random_dna(rng, 30, "ACDEFGHIKLMNPQRSTVWY"), 10 ** rng.normal(1, 1)] for i in range(40)]
    return write_table(tmp_path / "proteins.tsv", ["gene_id", "sequence", "ppm"], rows)


def test_parser_plugs_into_a_cli(tmp_path, protein_table):
    parser = argparse.ArgumentParser(prog="expression-perceiver")
    add_prepare_parser(parser.add_subparsers(dest="command", required=True))
    argv = ["prepare", "table", str(protein_table), "--alphabet", "protein", "--label-column", "ppm", "-o", "out"]
    args = parser.parse_args(argv)
    assert args.run is run_prepare and args.prepare_command == "table" and args.max_length is None


def test_table_to_dataset(tmp_path, protein_table, capsys):
    out = tmp_path / "proteins"
    argv = ["table", str(protein_table), "--alphabet", "protein", "--label-column", "ppm", "--log10", "-o", str(out)]
    assert prepare(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: train 32  validation 4  test 4" in printed
    assert "label ppm (transform log10(x)): train mean" in printed
    dataset_dict, metadata = load_dataset_dir(out)
    assert metadata.alphabet == "protein" and metadata.label_transform == "log10(x)"
    assert metadata.split == {"method": "random by gene", "seed": 0, "fractions": [0.8, 0.1, 0.1]}
    assert len(dataset_dict["train"]) == 32
    assert leftovers(tmp_path) == []


def test_fasta_to_dataset_prints_what_was_dropped(tmp_path, capsys):
    rng = np.random.default_rng(1)
    fasta = write_fasta(
        tmp_path / "p.fa", {f"P{i}": "M" + random_dna(rng, 20, "ACDEFGHIKLMNPQRSTVWY") for i in range(30)}
    )
    labels = write_table(tmp_path / "labels.csv", ["gene_id", "label"], [[f"P{i}", i] for i in range(1, 31)], ",")
    out = tmp_path / "out"
    assert prepare(["fasta", str(fasta), "--labels", str(labels), "--alphabet", "protein", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "dropped, no label in labels.csv: 1 (first: P0)" in printed
    assert "dropped, label without a record in p.fa: 1 (first: P30)" in printed
    assert sum(load_dataset_dir(out)[1].counts.values()) == 29


def test_iupac_ambiguity_codes_are_reported_in_the_summary_and_the_metadata(tmp_path, capsys):
    rng = np.random.default_rng(2)
    sequences = [random_dna(rng, 40) for _ in range(30)]
    sequences[3] = "RY" + sequences[3][2:] + "n"
    sequences[7] = sequences[7][:10] + "kmswb" + sequences[7][15:]
    rows = [[f"G{i}", sequence, i] for i, sequence in enumerate(sequences)]
    table = write_table(tmp_path / "promoters.tsv", ["gene_id", "sequence", "label"], rows)
    out = tmp_path / "out"
    assert prepare(["table", str(table), "--alphabet", "dna", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "IUPAC ambiguity codes read as N: 7 in 2 sequences (first: G3, G7)" in printed
    assert "has N (kept): 1 (first: G3)" in printed
    noted = load_dataset_dir(out)[1].reports[0]["noted"]
    assert noted["IUPAC ambiguity codes read as N"] == {"count": 2, "examples": ["G3", "G7"], "letters": 7}


@pytest.fixture
def xpresso_folder(tmp_path):
    folder = tmp_path / "xpresso"
    folder.mkdir()
    for offset, name in enumerate(("train.h5", "valid.h5", "test.h5")):
        prefix = f"ENSG{offset}"  # each split its own genes
        write_xpresso_h5(folder / name, xpresso_records(4 if name == "train.h5" else 2, seed=offset, id_prefix=prefix))
    return folder


def test_xpresso_splits_sharing_a_gene_are_refused_and_repeats_reported(tmp_path, xpresso_folder, capsys):
    write_xpresso_h5(xpresso_folder / "valid.h5", xpresso_records(2, seed=1, id_prefix="ENSG0"))  # as train's
    assert prepare(["xpresso", str(xpresso_folder), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "train.h5 and valid.h5: 2 gene(s) in both (key 'geneName', first: ENSG000000000000" in error
    assert not (tmp_path / "out").exists()
    records = xpresso_records(2, seed=1, id_prefix="ENSG1")
    records[1]["gene_id"] = records[0]["gene_id"]
    write_xpresso_h5(xpresso_folder / "valid.h5", records)
    assert prepare(["xpresso", str(xpresso_folder), "-o", str(tmp_path / "out")]) == 0
    assert "valid.h5: 1 gene id(s) repeated within the file (kept in that split; first: ENSG100000000000)" in (
        capsys.readouterr().out
    )


def test_a_split_left_empty_and_a_negative_length_are_refused(tmp_path, capsys):
    three = write_table(
        tmp_path / "three.tsv", ["gene_id", "sequence", "label"], [[f"G{i}", "ACGT", i] for i in range(3)]
    )
    assert prepare(["table", str(three), "--alphabet", "dna", "-o", str(tmp_path / "out")]) == 2
    assert (
        "the validation split(s) would be empty (train 2, validation 0, test 1 of 3 records)" in capsys.readouterr().err
    )
    table = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], [[f"G{i}", "ACGT", i] for i in range(30)])
    assert prepare(["table", str(table), "--alphabet", "dna", "--max-length", "-5", "-o", str(tmp_path / "out")]) == 2
    assert "--max-length -5: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_xpresso_files_to_dataset_with_windows(tmp_path, xpresso_folder, capsys):
    out = tmp_path / "best"
    assert prepare(["xpresso", str(xpresso_folder), "-o", str(out)]) == 0
    dataset_dict, metadata = load_dataset_dir(out)
    assert metadata.counts == {"train": 4, "validation": 2, "test": 2}
    assert metadata.feature_names == list(XPRESSO_FEATURE_NAMES)
    assert metadata.split == {"method": "given by the source"}
    expected = xpresso_records(2, seed=1)[1]["sequence"][3_000:13_500]
    assert dataset_dict["validation"][1]["sequence"] == expected
    assert len(dataset_dict["train"][0]["features"]) == 8
    assert prepare(["xpresso", str(xpresso_folder), "-o", str(tmp_path / "full"), "--full-window"]) == 0
    assert len(load_dataset_dir(tmp_path / "full")[0]["test"][0]["sequence"]) == 20_000


@pytest.fixture
def genome_inputs(tmp_path):
    rng = np.random.default_rng(2)
    chromosomes = {f"chr{i}": random_dna(rng, 45_000) for i in (1, 2, 3)}
    fasta = write_fasta(tmp_path / "genome.fa", chromosomes)
    bed_rows, label_rows = [], []
    for i in range(12):
        chrom, start, strand = f"{i % 3 + 1}", 1_000 + 2_000 * i, "+-"[i % 2]
        bed_rows.append(f"{chrom}\t{start}\t{start + 20_000}\tENSG{i}\t0\t{strand}\n")
        label_rows.append([f"ENSG{i}", rng.normal()])
    bed = tmp_path / "promoters.bed"
    bed.write_text("".join(bed_rows))
    labels = write_table(tmp_path / "labels.tsv", ["gene_id", "label"], label_rows)
    return chromosomes, fasta, bed, labels


def test_genome_to_dataset_and_xpresso_files(tmp_path, genome_inputs, capsys):
    chromosomes, fasta, bed, labels = genome_inputs
    out, h5_dir = tmp_path / "dataset", tmp_path / "h5"
    argv = ["genome", "--genome", str(fasta), "--bed", str(bed), "--labels", str(labels), "-o", str(out)]
    argv += ["--h5-dir", str(h5_dir), "--split", "chromosomes", "--validation-chromosomes", "chr2"]
    argv += ["--test-chromosomes", "3"]
    assert prepare(argv) == 0
    dataset_dict, metadata = load_dataset_dir(out)
    assert metadata.counts == {"train": 4, "validation": 4, "test": 4}
    assert set(dataset_dict["test"]["chrom"]) == {"3"}
    with h5py.File(h5_dir / "valid.h5") as handle:
        assert handle["promoter"].shape == (4, 20_000, 4)
        assert [name.decode() for name in handle["geneName"][()]] == dataset_dict["validation"]["gene_id"]
    # ENSG1: chrom 2, minus strand, window 3,000..23,000; the dataset keeps indices 3,000..13,500 of it.
    record = dataset_dict["validation"][0]
    assert record["gene_id"] == "ENSG1"
    assert record["sequence"] == hand_reverse_complement(chromosomes["chr2"][3_000:23_000])[3_000:13_500]
    assert f"wrote {h5_dir}: train.h5 4  valid.h5 4  test.h5 4" in capsys.readouterr().out


def test_genome_errors_leave_nothing_behind(tmp_path, genome_inputs, capsys):
    _, fasta, bed, labels = genome_inputs
    short = tmp_path / "short.bed"
    short.write_text("chr1\t0\t1000\tENSG0\t0\t+\nchr1\t0\t1000\tENSG1\t0\t+\n")
    argv = ["genome", "--genome", str(fasta), "--bed", str(short), "--labels", str(labels)]
    assert prepare([*argv, "--h5-dir", str(tmp_path / "h5"), "--full-window"]) == 2
    assert "has 1,000 bases; the Xpresso format needs 20,000" in capsys.readouterr().err
    assert prepare(argv) == 2
    assert "nothing to write: pass --output and/or --h5-dir" in capsys.readouterr().err
    assert not (tmp_path / "h5").exists() and leftovers(tmp_path) == []


def test_a_window_clipped_at_a_chromosome_start_is_refused_by_the_default_crop(tmp_path, genome_inputs, capsys):
    _, fasta, bed, labels = genome_inputs
    clipped = tmp_path / "clipped.bed"
    clipped.write_text(bed.read_text() + "chr1\t0\t15000\tENSG11b\t0\t+\n")  # as `bedtools slop` clips it
    write_table(labels, ["gene_id", "label"], [[f"ENSG{i}", i] for i in range(12)] + [["ENSG11b", 1.0]])
    argv = ["genome", "--genome", str(fasta), "--bed", str(clipped), "--labels", str(labels)]
    assert prepare([*argv, "-o", str(tmp_path / "out")]) == 2
    assert "BED line 13 (gene ENSG11b): a 15,000-base window where the others have 20,000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    table = write_table(
        tmp_path / "t.tsv",
        ["gene_id", "sequence", "label"],
        [[f"G{i}", "ACGT", i] for i in range(50)] + [["bad", "AJ", 1]],
    )
    out = tmp_path / "out"
    assert prepare(["table", str(table), "--alphabet", "dna", "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error == (
        "expression-perceiver prepare: error: "
        "t.tsv: line 52 (id bad) has letter 'J' at position 2 (1-based), not a dna letter\n"
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path, protein_table, capsys):
    out = tmp_path / "out"
    out.mkdir()
    argv = ["table", str(protein_table), "--alphabet", "protein", "--label-column", "ppm", "-o", str(out)]
    assert prepare(argv) == 2
    assert "already exists (pass --overwrite to replace it)" in capsys.readouterr().err
    assert prepare([*argv, "--overwrite"]) == 0
    assert load_dataset_dir(out)[1].counts["train"] == 32


def test_the_command_prints_one_line_on_bad_input(tmp_path, capsys):
    table = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], [["A", "ACGT", "NaN"]])
    assert prepare(["table", str(table), "--alphabet", "dna", "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "expression-perceiver prepare: error: t.tsv: line 2 (id A) column 'label' is empty or NaN "
        "(drop such rows with LabelSpec.drop_missing or --drop-missing-labels)"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["header only", "empty FASTA", "no id matches"])
def test_inputs_without_records_name_the_file(tmp_path, capsys, kind):
    labels = write_table(tmp_path / "labels.tsv", ["gene_id", "label"], [["X", 1]])
    if kind == "header only":
        command = [
            "table",
            str(write_table(tmp_path / "h.tsv", ["gene_id", "sequence", "label"], [])),
            "--alphabet",
            "dna",
        ]
    else:
        fasta = write_fasta(tmp_path / "f.fa", {} if kind == "empty FASTA" else {"Y": "ACGT"})
        command = ["fasta", str(fasta), "--labels", str(labels), "--alphabet", "dna"]
    assert prepare([*command, "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no records to read" in error and ("h.tsv" in error or "f.fa" in error)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
