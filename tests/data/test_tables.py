import math

import pytest

from expression_perceiver.data.errors import DataError, ReadReport
from expression_perceiver.data.tables import (
    LabelSpec,
    read_fasta,
    read_fasta_with_labels,
    read_label_table,
    read_sequence_table,
)

from .helpers import write_fasta, write_table

PROTEINS = [
    ["P1", "MKTAYIAK*", 100.0, "chr1"],
    ["P2", "mkvlaag", 0.5, "chr2"],
    ["P3", "MXUKLL", 20.0, "chr1"],
]


def read_all(path, **options):
    report = options.pop("report", ReadReport(path.name))
    return list(read_sequence_table(path, report=report, **options)), report


@pytest.mark.parametrize("name", ["proteins.tsv", "proteins.csv", "proteins.tsv.gz", "proteins.txt"])
def test_tsv_csv_and_gzip_tables_read_alike(tmp_path, name):
    delimiter = "," if name.endswith(".csv") else "\t"
    path = write_table(tmp_path / name, ["id", "seq", "ppm", "chromosome"], PROTEINS, delimiter)
    records, report = read_all(
        path,
        alphabet="protein",
        id_column="id",
        sequence_column="seq",
        labels=LabelSpec(columns=("ppm",), log10=True),
        chrom_column="chromosome",
    )
    assert [r["gene_id"] for r in records] == ["P1", "P2", "P3"]
    # Trailing stop dropped; case kept (the tokenizer folds it).
    assert [r["sequence"] for r in records] == ["MKTAYIAK", "mkvlaag", "MXUKLL"]
    assert [r["label"] for r in records] == pytest.approx([2.0, math.log10(0.5), math.log10(20)])
    assert [r["chrom"] for r in records] == ["chr1", "chr2", "chr1"]
    assert report.records == 3
    assert report.noted["has X B Z U O (kept)"].examples == ["P3"]


def test_pseudocount_several_labels_and_features(tmp_path):
    path = write_table(
        tmp_path / "promoters.tsv",
        ["gene_id", "sequence", "human", "mouse", "gc"],
        [["G1", "acgtN", 0, 9.9, 0.5], ["G2", "ACGTR", 0.9, 0.0, 0.25]],
    )
    records, _ = read_all(
        path,
        alphabet="dna",
        labels=LabelSpec(columns=("human", "mouse"), log10=True, pseudocount=0.1),
        feature_columns=["gc"],
    )
    assert records[0]["label"] == pytest.approx([-1.0, 1.0])
    assert records[1]["label"] == pytest.approx([0.0, -1.0])
    assert [r["features"] for r in records] == [[0.5], [0.25]]


def test_non_positive_value_before_log10_names_the_line(tmp_path):
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], [["A", "ACGT", 1], ["B", "ACGT", 0]])
    with pytest.raises(DataError, match=r"t.tsv: line 3 \(id B\) column 'label' is '0': log10 needs value \+ pseudo"):
        read_all(path, alphabet="dna", labels=LabelSpec(log10=True))


def test_nan_label_is_an_error_or_dropped_and_counted(tmp_path):
    rows = [["A", "ACGT", 1], ["B", "ACGT", "NaN"], ["C", "ACGT", ""], ["D", "ACGT", 2]]
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], rows)
    with pytest.raises(DataError, match=r"t.tsv: line 3 \(id B\) column 'label' is empty or NaN"):
        read_all(path, alphabet="dna")
    records, report = read_all(path, alphabet="dna", labels=LabelSpec(drop_missing=True))
    assert [r["gene_id"] for r in records] == ["A", "D"]
    assert report.dropped["missing label"].count == 2


def test_non_numeric_label_names_the_value(tmp_path):
    path = write_table(tmp_path / "t.csv", ["gene_id", "sequence", "label"], [["A", "ACGT", "high"]], ",")
    with pytest.raises(DataError, match=r"t.csv: line 2 \(id A\) column 'label' is 'high', not a number"):
        read_all(path, alphabet="dna")


def test_invalid_letters_are_named_with_id_and_position(tmp_path):
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], [["A", "ACGT", 1], ["B", "ACGTUU", 1]])
    with pytest.raises(DataError) as caught:
        read_all(path, alphabet="dna")
    assert str(caught.value) == (
        "t.tsv: line 3 (id B) has letter 'U' at position 5 (1-based), not a dna letter (2 invalid letters in all)"
    )
    path = write_table(tmp_path / "p.tsv", ["gene_id", "sequence", "label"], [["P", "MK*L", 1]])
    with pytest.raises(DataError, match=r"has letter '\*' at position 3 \(1-based\), not a protein letter"):
        read_all(path, alphabet="protein")


def test_long_proteins_are_truncated_and_counted(tmp_path):
    rows = [["long", "M" * 7_000, 1], ["short", "M" * 10, 1], ["exact", "M" * 6_000, 1]]
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], rows)
    records, report = read_all(path, alphabet="protein", max_length=6_000)
    assert [len(r["sequence"]) for r in records] == [6_000, 10, 6_000]
    assert report.noted["truncated to 6,000 letters"].examples == ["long"]


def test_repeated_ids_are_kept_and_reported(tmp_path):
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], [["A", "ACGT", 1], ["A", "GGCC", 2]])
    records, report = read_all(path, alphabet="dna")
    assert len(records) == 2
    assert report.noted_count("repeated id (kept; all rows of an id go to one split)") == 1


def test_iupac_ambiguity_codes_are_counted_apart_from_n(tmp_path):
    rows = [
        ["amb", "ACRYKMswbdhvN", 1],  # 10 codes (either case) and one N as written
        ["plain", "ACGTACGT", 2],
        ["n_only", "ACGNNT", 3],
        ["one", "ACGTr", 4],
    ]
    path = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "label"], rows)
    records, report = read_all(path, alphabet="dna")
    assert [r["sequence"] for r in records] == [row[1] for row in rows]  # stored as given; the tokenizer reads N
    tally = report.noted["IUPAC ambiguity codes read as N"]
    assert (tally.letters, tally.count, tally.examples) == (11, 2, ["amb", "one"])
    assert report.noted["has N (kept)"].examples == ["amb", "n_only"]  # only where an N is written
    assert "  IUPAC ambiguity codes read as N: 11 in 2 sequences (first: amb, one)" in report.summary_lines()
    assert report.to_dict()["noted"]["IUPAC ambiguity codes read as N"] == {
        "count": 2, "examples": ["amb", "one"], "letters": 11
    }  # fmt: skip


def test_protein_letters_are_not_iupac_codes(tmp_path):
    path = write_table(tmp_path / "p.tsv", ["gene_id", "sequence", "label"], [["P", "MRYKSWDHV", 1]])
    _, report = read_all(path, alphabet="protein")
    assert report.noted == {}


def test_table_structure_errors(tmp_path):
    path = write_table(tmp_path / "t.tsv", ["gene_id", "seq", "label"], [["A", "ACGT", 1]])
    with pytest.raises(DataError, match="t.tsv: column 'sequence' missing \\(columns: gene_id, seq, label\\)"):
        read_all(path, alphabet="dna")
    path.write_text("gene_id\tsequence\tlabel\nA\tACGT\n")
    with pytest.raises(DataError, match="t.tsv: line 2 has 2 fields, the header has 3"):
        read_all(path, alphabet="dna")
    with pytest.raises(DataError, match="missing.tsv: file not found"):
        read_all(tmp_path / "missing.tsv", alphabet="dna")


def test_fasta_plain_and_gzip_multiline(tmp_path):
    sequences = {"P1": "M" + "A" * 150, "P2": "MKV"}
    for compress in (False, True):
        path = write_fasta(tmp_path / f"p{int(compress)}.fa", sequences, width=60, compress=compress)
        assert [(r.id, r.sequence) for r in read_fasta(path)] == list(sequences.items())


def test_fasta_joined_to_labels_reports_both_unmatched_sides(tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", {"P1": "MKV", "P2": "MAAA", "P9": "MLL"})
    labels = write_table(tmp_path / "l.tsv", ["id", "ppm"], [["P1", 10], ["P2", 1000], ["P5", 3]])
    report = ReadReport("join")
    records = list(
        read_fasta_with_labels(
            fasta, labels, alphabet="protein", id_column="id", labels=LabelSpec(("ppm",), log10=True), report=report
        )
    )
    assert [(r["gene_id"], r["sequence"], r["label"]) for r in records] == [("P1", "MKV", 1.0), ("P2", "MAAA", 3.0)]
    assert report.dropped["no label in l.tsv"].examples == ["P9"]
    assert report.dropped["label without a record in p.fa"].examples == ["P5"]


def test_fasta_and_label_table_errors(tmp_path):
    labels = write_table(tmp_path / "l.tsv", ["gene_id", "label"], [["P1", 1], ["P1", 2]])
    with pytest.raises(DataError, match=r"l.tsv: id 'P1' appears twice \(lines 2 and 3\)"):
        read_label_table(labels)
    bad = tmp_path / "bad.fa"
    bad.write_text("MKV\n>P1\nMKV\n")
    with pytest.raises(DataError, match="bad.fa: line 1 holds sequence before the first '>' header"):
        list(read_fasta(bad))
    bad.write_text(">P1\nMKV\n>\nMKV\n")
    with pytest.raises(DataError, match="bad.fa: line 3 is a '>' header without an id"):
        list(read_fasta(bad))
    fasta = write_fasta(tmp_path / "p.fa", {"P1": "MK1V"})
    labels = write_table(tmp_path / "ok.tsv", ["gene_id", "label"], [["P1", 1]])
    with pytest.raises(DataError, match=r"p.fa: record 'P1' \(line 1\) has letter '1' at position 3"):
        list(read_fasta_with_labels(fasta, labels, alphabet="protein"))


def test_a_byte_order_mark_is_not_part_of_the_first_column_or_header(tmp_path):
    table = write_table(tmp_path / "bom.tsv", ["id", "seq", "ppm", "chromosome"], PROTEINS)
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())  # as spreadsheet programs save UTF-8
    records, _ = read_all(
        table, alphabet="protein", id_column="id", sequence_column="seq", labels=LabelSpec(columns=("ppm",))
    )
    assert [r["gene_id"] for r in records] == ["P1", "P2", "P3"]
    fasta = write_fasta(tmp_path / "bom.fa", {"P1": "MKTAYIAK", "P2": "MKV"})
    fasta.write_bytes(b"\xef\xbb\xbf" + fasta.read_bytes())
    assert [record[0] for record in read_fasta(fasta)] == ["P1", "P2"]
