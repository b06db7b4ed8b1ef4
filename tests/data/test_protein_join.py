"""Promoter tables joined by gene id with protein tables: the data of the Protein&DNAPerceiver."""

import csv
import gzip
import math
import statistics

import numpy as np
import pytest

from expression_perceiver.cli import main as cli
from expression_perceiver.data.dataset_dict import load_dataset_dir
from expression_perceiver.data.errors import DataError, ReadReport
from expression_perceiver.data.tables import LabelSpec, read_protein_table, read_sequence_table

from .helpers import random_dna, write_table


def prepare(argv: list[str]) -> int:
    """`expression-perceiver prepare ...`, in this process."""
    return cli(["prepare", *argv])


AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if ".partial-" in path.name or ".scratch-" in path.name)


@pytest.fixture
def joined_inputs(tmp_path):
    """40 promoters G0..G39 and 38 proteins: G0..G2 have no protein, P1 and P2 have no promoter, G5's protein ends
    with a stop and G7's is 7,000 residues long."""
    rng = np.random.default_rng(5)
    promoter_rows = [[f"G{i}", random_dna(rng, 60), f"{rng.normal(1, 1):.6f}"] for i in range(40)]
    protein_rows = []
    for i in [*range(3, 40), "P1", "P2"]:
        gene = f"G{i}" if isinstance(i, int) else i
        length = 7_000 if gene == "G7" else int(rng.integers(20, 80))
        sequence = "M" + random_dna(rng, length - 1, AMINO_ACIDS) + ("*" if gene == "G5" else "")
        protein_rows.append([gene, sequence, f"{10 ** rng.normal(1, 1):.6g}"])
    promoters = write_table(tmp_path / "promoters.tsv", ["gene_id", "sequence", "label_human"], promoter_rows)
    proteins = write_table(tmp_path / "proteins.tsv.gz", ["gene", "protein", "abundance_ppm"], protein_rows)
    return promoters, proteins, promoter_rows, protein_rows


def join_arguments(promoters, proteins, out, *extra):
    return [
        "table", str(promoters), "--alphabet", "dna", "--label-column", "label_human",
        "--protein-table", str(proteins), "--protein-id-column", "gene", "--protein-sequence-column", "protein",
        "-o", str(out), *extra,
    ]  # fmt: skip


def test_join_reads_proteins_and_reports_both_unmatched_sides(joined_inputs):
    promoters, proteins, promoter_rows, protein_rows = joined_inputs
    table = read_protein_table(
        proteins, id_column="gene", sequence_column="protein", labels=LabelSpec(("abundance_ppm",), log10=True)
    )
    assert len(table.proteins) == 39 and table.report.records == 39
    assert table.proteins["G5"].sequence == protein_rows[2][1][:-1]  # the stop is gone
    assert len(table.proteins["G7"].sequence) == 6_000
    assert table.report.noted["truncated to 6,000 letters"].examples == ["G7"]
    assert table.proteins["G3"].label == pytest.approx(math.log10(float(protein_rows[0][2])))

    report = ReadReport(promoters.name)
    records = list(read_sequence_table(promoters, alphabet="dna", labels=LabelSpec(("label_human",)), report=report))
    assert len(records) == 40 and "protein_sequence" not in records[0]
    report = ReadReport(promoters.name)
    records = list(
        read_sequence_table(
            promoters, alphabet="dna", labels=LabelSpec(("label_human",)), report=report, proteins=table
        )
    )
    assert [r["gene_id"] for r in records] == [f"G{i}" for i in range(3, 40)]
    assert report.records == 37
    assert report.dropped["no protein in proteins.tsv.gz"].examples == ["G0", "G1", "G2"]
    assert table.report.dropped["no promoter row in promoters.tsv"].examples == ["P1", "P2"]
    first = records[0]
    assert first["sequence"] == promoter_rows[3][1] and first["protein_sequence"] == protein_rows[0][1]
    # Two labels: the promoter's as given, then the protein's after log10.
    assert first["label"] == pytest.approx([float(promoter_rows[3][2]), math.log10(float(protein_rows[0][2]))])


def test_prepare_table_with_proteins_writes_two_labels(tmp_path, joined_inputs, capsys):
    promoters, proteins, promoter_rows, protein_rows = joined_inputs
    out = tmp_path / "joined"
    argv = join_arguments(promoters, proteins, out, "--protein-label-column", "abundance_ppm", "--protein-log10")
    assert prepare(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: train 29  validation 4  test 4" in printed
    assert "label label_human, abundance_ppm (transform label_human: none; abundance_ppm: log10(x))" in printed
    assert "dropped, no protein in proteins.tsv.gz: 3 (first: G0, G1, G2)" in printed
    assert "dropped, no promoter row in promoters.tsv: 2 (first: P1, P2)" in printed
    assert "truncated to 6,000 letters: 1 (first: G7)" in printed

    dataset_dict, metadata = load_dataset_dir(out)
    assert metadata.with_protein and metadata.alphabet == "dna"
    assert metadata.label_names == ["label_human", "abundance_ppm"]
    assert metadata.label_transforms == ["none", "log10(x)"]
    assert metadata.label_units == ["label_human", "log10(abundance_ppm)"]
    assert [report["source"] for report in metadata.reports] == ["promoters.tsv", "proteins.tsv.gz"]
    expected = {row[0]: [float(row[2])] for row in promoter_rows}
    for row in protein_rows:
        if row[0] in expected:
            expected[row[0]].append(math.log10(float(row[2])))
    proteins_by_gene = {row[0]: row[1].removesuffix("*")[:6_000] for row in protein_rows}
    for name in ("train", "validation", "test"):
        split = dataset_dict[name]
        assert split.column_names == ["gene_id", "sequence", "protein_sequence", "label"]
        for record in split:
            assert record["label"] == pytest.approx(expected[record["gene_id"]])
            assert record["protein_sequence"] == proteins_by_gene[record["gene_id"]]
    train = np.array(dataset_dict["train"]["label"])
    np.testing.assert_allclose(metadata.label_mean, train.mean(axis=0))
    assert leftovers(tmp_path) == []


def test_prepare_table_with_proteins_only_adds_the_protein_column(tmp_path, joined_inputs):
    promoters, proteins, *_ = joined_inputs
    out = tmp_path / "joined"
    assert prepare(join_arguments(promoters, proteins, out, "--protein-max-length", "0")) == 0
    dataset_dict, metadata = load_dataset_dir(out)
    assert metadata.label_names == ["label_human"] and metadata.label_transform == "none"
    assert sum(metadata.counts.values()) == 37
    lengths = [len(p) for name in dataset_dict for p in dataset_dict[name]["protein_sequence"]]
    assert max(lengths) == 7_000  # no truncation with --protein-max-length 0


def test_same_label_column_on_both_sides_is_renamed(tmp_path):
    rng = np.random.default_rng(6)
    genes = [f"G{i}" for i in range(20)]
    promoters = write_table(
        tmp_path / "p.tsv", ["gene_id", "sequence", "label"], [[g, random_dna(rng, 30), i] for i, g in enumerate(genes)]
    )
    proteins = write_table(
        tmp_path / "q.tsv", ["gene_id", "sequence", "label"], [[g, "MKV", i * i] for i, g in enumerate(genes)]
    )
    out = tmp_path / "out"
    argv = ["table", str(promoters), "--alphabet", "dna", "--log10", "--pseudocount", "1", "-o", str(out)]
    argv += ["--protein-table", str(proteins), "--protein-label-column", "label", "--protein-log10"]
    argv += ["--protein-pseudocount", "1"]
    assert prepare(argv) == 0
    metadata = load_dataset_dir(out)[1]
    # Both outputs transformed alike: one transform string, as for a single table.
    assert metadata.label_names == ["label", "protein_label"] and metadata.label_transform == "log10(x + 1)"
    assert metadata.label_units == ["log10(label + 1)", "log10(protein_label + 1)"]


def test_invalid_protein_letters_name_file_id_and_position(tmp_path, joined_inputs, capsys):
    promoters, _, _, protein_rows = joined_inputs
    rows = [list(row) for row in protein_rows]
    rows[4][1] = "MKVJL"
    proteins = write_table(tmp_path / "bad.tsv", ["gene", "protein", "abundance_ppm"], rows)
    out = tmp_path / "out"
    assert prepare(join_arguments(promoters, proteins, out)) == 2
    assert capsys.readouterr().err == (
        "expression-perceiver prepare: error: "
        "bad.tsv: line 6 (id G7) has letter 'J' at position 4 (1-based), not a protein letter\n"
    )
    assert not out.exists() and leftovers(tmp_path) == []


def test_duplicate_protein_gene_id_is_an_error(tmp_path, joined_inputs, capsys):
    promoters, _, _, protein_rows = joined_inputs
    proteins = write_table(tmp_path / "dup.tsv", ["gene", "protein"], [r[:2] for r in protein_rows] + [["G9", "MKV"]])
    with pytest.raises(DataError, match=r"dup.tsv: gene id 'G9' appears twice \(lines 8 and 41\)"):
        read_protein_table(proteins, id_column="gene", sequence_column="protein")
    assert prepare(join_arguments(promoters, proteins, tmp_path / "out")) == 2
    assert "gene id 'G9' appears twice" in capsys.readouterr().err


def test_missing_protein_labels_are_an_error_or_dropped_and_counted(tmp_path, joined_inputs, capsys):
    promoters, _, _, protein_rows = joined_inputs
    rows = [list(row) for row in protein_rows]
    rows[1][2] = "NaN"  # G4
    proteins = write_table(tmp_path / "nan.tsv", ["gene", "protein", "abundance_ppm"], rows)
    argv = join_arguments(promoters, proteins, tmp_path / "out", "--protein-label-column", "abundance_ppm")
    assert prepare(argv) == 2
    assert "nan.tsv: line 3 (id G4) column 'abundance_ppm' is empty or NaN" in capsys.readouterr().err
    assert prepare([*argv, "--drop-missing-labels"]) == 0
    printed = capsys.readouterr().out
    assert "dropped, protein label missing in nan.tsv: 1 (first: G4)" in printed
    assert "dropped, missing label: 1 (first: G4)" in printed
    assert sum(load_dataset_dir(tmp_path / "out")[1].counts.values()) == 36


def test_protein_options_are_checked(tmp_path, joined_inputs, capsys):
    promoters, proteins, *_ = joined_inputs
    argv = ["table", str(promoters), "--alphabet", "dna", "--label-column", "label_human", "-o", str(tmp_path / "o")]
    assert prepare([*argv, "--protein-label-column", "abundance_ppm"]) == 2
    assert "need --protein-table" in capsys.readouterr().err
    protein_argv = ["--protein-table", str(proteins), "--protein-id-column", "gene"]
    assert prepare([*argv, *protein_argv, "--protein-sequence-column", "protein", "--protein-pseudocount", "1"]) == 2
    assert "need --protein-label-column" in capsys.readouterr().err
    assert prepare([*argv, *protein_argv]) == 2  # the protein table has no column 'sequence'
    assert "proteins.tsv.gz: column 'sequence' missing" in capsys.readouterr().err
    argv[3] = "protein"
    assert prepare([*argv, *protein_argv, "--protein-sequence-column", "protein"]) == 2
    assert "the table needs --alphabet dna" in capsys.readouterr().err


def read_gzip_table(path):
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.slow
def test_epd_promoters_joined_with_the_human_proteome(tmp_path, shared_data, capsys):
    promoter_file, protein_file = (
        shared_data / "epd_core_promoters_xpresso.tsv.gz",
        shared_data / "human_proteome_paxdb.tsv.gz",
    )
    if not promoter_file.is_file() or not protein_file.is_file():
        pytest.skip(f"{promoter_file.name} or {protein_file.name} is absent from {shared_data}")
    # The answer, computed without the package: promoter rows whose gene has a protein.
    promoter_rows, protein_rows = read_gzip_table(promoter_file), read_gzip_table(protein_file)
    abundance = {row["gene_id"]: float(row["abundance_ppm"]) for row in protein_rows}
    joined = [row for row in promoter_rows if row["gene_id"] in abundance]
    joined_genes = {row["gene_id"] for row in joined}
    assert (len(joined), len(joined_genes)) == (11_619, 11_617)  # two genes have two EPD primary promoters

    out = tmp_path / "epd_proteome"
    argv = ["table", str(promoter_file), "--alphabet", "dna", "--label-column", "label_human"]
    argv += ["--protein-table", str(protein_file), "--protein-label-column", "abundance_ppm", "--protein-log10"]
    assert prepare([*argv, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"dropped, no protein in human_proteome_paxdb.tsv.gz: {len(promoter_rows) - len(joined):,}" in printed
    without_promoter = len(set(abundance) - {row["gene_id"] for row in promoter_rows})
    assert f"dropped, no promoter row in epd_core_promoters_xpresso.tsv.gz: {without_promoter:,}" in printed
    assert "truncated to 6,000 letters: 5" in printed

    dataset_dict, metadata = load_dataset_dir(out)
    assert sum(metadata.counts.values()) == len(joined)
    assert metadata.with_protein and metadata.label_units == ["label_human", "log10(abundance_ppm)"]
    # The split and the train statistics, recomputed by the documented rule on the joined rows.
    gene_ids = [row["gene_id"] for row in joined]
    genes = list(dict.fromkeys(gene_ids))
    order = np.random.default_rng(0).permutation(len(genes))
    train_genes = {genes[i] for i in order[: int(0.8 * len(genes))]}
    assert set(dataset_dict["train"]["gene_id"]) == train_genes
    train = [row for row in joined if row["gene_id"] in train_genes]
    mrna = [float(row["label_human"]) for row in train]
    protein = [math.log10(abundance[row["gene_id"]]) for row in train]
    assert metadata.label_mean == pytest.approx([statistics.fmean(mrna), statistics.fmean(protein)], rel=1e-9)
    assert metadata.label_std == pytest.approx([statistics.pstdev(mrna), statistics.pstdev(protein)], rel=1e-9)
    assert max(len(p) for p in dataset_dict["train"]["protein_sequence"]) <= 6_000
