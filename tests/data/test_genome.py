import importlib.util

import numpy as np
import pytest

from expression_perceiver.data.errors import DataError, ReadReport
from expression_perceiver.data.genome import (
    Genome,
    read_promoter_bed,
    rebuild_promoter_records,
    reverse_complement,
)
from expression_perceiver.data.tables import LabelSpec, read_feature_table, read_label_table
from expression_perceiver.data.xpresso import read_xpresso_h5, write_xpresso_h5

from .helpers import SHARED_DATA, as_acgtn, hand_reverse_complement, random_dna, write_fasta, write_table

# gene, chrom, start, end, strand: 1,000-base windows in the middle and off both ends of chromosomes, both strands.
WINDOWS = [
    ("plus_middle", "chr1", 1_000, 2_000, "+"),
    ("minus_middle", "chr1", 5_000, 6_000, "-"),
    ("plus_off_start", "chr2", -300, 700, "+"),
    ("minus_off_start", "chr2", -200, 800, "-"),
    ("plus_off_end", "chr3", 2_000, 3_000, "+"),
    ("minus_off_end", "chr3", 1_800, 2_800, "-"),
    ("bare_chrom_name", "2", 100, 1_100, "+"),
    ("no_label", "chr1", 0, 1_000, "+"),
    ("missing_chrom", "chr9", 0, 1_000, "+"),
]
LABELLED = [gene for gene, *_ in WINDOWS if gene != "no_label"]


def make_genome(seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    chromosomes = {"chr1": random_dna(rng, 25_000), "chr2": random_dna(rng, 3_000), "chr3": random_dna(rng, 2_500)}
    chr1 = chromosomes["chr1"]
    # Soft-masked repeat, a run of N and IUPAC codes inside windows.
    chromosomes["chr1"] = chr1[:1_200] + chr1[1_200:1_500].lower() + "N" * 50 + chr1[1_550:5_100] + "RYK" + chr1[5_103:]
    return chromosomes


def expected_window(chromosomes: dict[str, str], chrom: str, start: int, end: int, strand: str) -> str:
    sequence = chromosomes["chr" + chrom if not chrom.startswith("chr") else chrom]
    left = "N" * max(0, -start)
    right = "N" * max(0, end - len(sequence))
    window = as_acgtn(left + sequence[max(start, 0) : min(end, len(sequence))] + right)
    return hand_reverse_complement(window) if strand == "-" else window


@pytest.fixture(scope="module")
def chromosomes():
    return make_genome()


@pytest.fixture
def inputs(tmp_path, chromosomes):
    fasta = write_fasta(tmp_path / "genome.fa", chromosomes, width=70)
    bed = tmp_path / "promoters.bed"
    bed.write_text("".join(f"{c}\t{s}\t{e}\t{g}\t0\t{strand}\n" for g, c, s, e, strand in WINDOWS))
    labels = write_table(
        tmp_path / "labels.tsv",
        ["gene_id", "expression"],
        [[gene, i + 0.5] for i, gene in enumerate(LABELLED)] + [["not_in_bed", 1.0]],
    )
    return fasta, bed, labels


def rebuild(fasta, bed, labels, **options):
    report = ReadReport("test")
    label_rows = read_label_table(labels, labels=LabelSpec(columns=("expression",)))
    records = list(rebuild_promoter_records(fasta, bed, label_rows, report=report, **options))
    return records, report


def test_windows_match_slicing_and_hand_reverse_complement(inputs, chromosomes):
    records, _ = rebuild(*inputs)
    by_gene = {record["gene_id"]: record for record in records}
    for gene, chrom, start, end, strand in WINDOWS[:7]:
        assert by_gene[gene]["sequence"] == expected_window(chromosomes, chrom, start, end, strand), gene
        assert len(by_gene[gene]["sequence"]) == 1_000
    assert by_gene["minus_off_start"]["sequence"].endswith("N" * 200)
    assert by_gene["plus_off_end"]["sequence"].endswith("N" * 500)
    assert by_gene["minus_off_end"]["sequence"].startswith("N" * 300)
    assert by_gene["plus_middle"]["chrom"] == "chr1" and by_gene["bare_chrom_name"]["chrom"] == "2"
    assert by_gene["plus_middle"]["label"] == 0.5


def test_dropped_genes_and_chromosomes_are_reported(inputs):
    records, report = rebuild(*inputs)
    assert len(records) == report.records == 7
    assert report.dropped["no label in the label table"].examples == ["no_label"]
    assert report.dropped["chromosome not in genome.fa"].examples == ["missing_chrom"]
    assert report.noted["chromosomes missing from genome.fa"].examples == ["chr9"]
    assert report.dropped["label without a BED window"].examples == ["not_in_bed"]
    assert report.noted_count("padded with N (window runs off its chromosome)") == 4
    assert any("no_label" in line for line in report.summary_lines())


def test_crop_keeps_indices_on_the_gene_strand(inputs, chromosomes):
    records, _ = rebuild(*inputs, crop=(400, 600))
    minus = next(record for record in records if record["gene_id"] == "minus_middle")
    assert minus["sequence"] == expected_window(chromosomes, "chr1", 5_000, 6_000, "-")[400:600]
    with pytest.raises(DataError, match=r"window 0..2000 does not fit its 1,000-base window"):
        rebuild(*inputs, crop=(0, 2_000))


def test_half_life_features_attach_and_missing_ones_are_reported(inputs, tmp_path):
    columns = ["UTR5LEN", "CDSLEN"]
    half_life = write_table(tmp_path / "half_life.tsv", ["gene_id", *columns], [["plus_middle", 1, 2]])
    features = read_feature_table(half_life, "gene_id", columns)
    report = ReadReport("test")
    label_rows = read_label_table(inputs[2], labels=LabelSpec(columns=("expression",)))
    records = list(rebuild_promoter_records(*inputs[:2], label_rows, half_life=features, report=report))
    assert [(r["gene_id"], r["features"]) for r in records] == [("plus_middle", [1.0, 2.0])]
    assert report.dropped_count("no half-life features in the half-life table") == 6


def test_rebuilt_20kb_windows_round_trip_through_xpresso_files(tmp_path, chromosomes):
    fasta = write_fasta(tmp_path / "genome.fa", chromosomes)
    bed = tmp_path / "xpresso.bed"
    bed.write_text("chr1\t2000\t22000\tgene_plus\t0\t+\nchr1\t-5000\t15000\tgene_minus\t0\t-\n")
    labels = write_table(tmp_path / "labels.tsv", ["gene_id", "label"], [["gene_plus", 1.5], ["gene_minus", -1]])
    records = list(rebuild_promoter_records(fasta, bed, read_label_table(labels)))
    write_xpresso_h5(tmp_path / "train.h5", records)
    read = list(read_xpresso_h5(tmp_path / "train.h5", window=(0, 20_000)))
    assert read[0]["sequence"] == expected_window(chromosomes, "chr1", 2_000, 22_000, "+")
    assert read[1]["sequence"] == expected_window(chromosomes, "chr1", -5_000, 15_000, "-")
    assert [r["label"] for r in read] == [1.5, -1.0]


def test_reverse_complement_folds_case_and_iupac():
    assert reverse_complement("aaCGtN") == "NACGTT"
    assert reverse_complement("ACGR") == "NCGT"


def test_bad_bed_lines_are_named(tmp_path):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t0\t100\tg1\t0\t+\nchr1\t0\t100\tg2\n")
    with pytest.raises(DataError, match="bad.bed: line 2 has 4 tab-separated columns; a promoter BED needs 6"):
        read_promoter_bed(bed)
    bed.write_text("chr1\t0\t100\tg1\t0\t.\n")
    with pytest.raises(DataError, match=r"bad.bed: line 1 \(gene g1\) has strand '.'; it must be \+ or -"):
        read_promoter_bed(bed)
    bed.write_text("# comment\nchr1\tzero\t100\tg1\t0\t+\n")
    with pytest.raises(DataError, match="bad.bed: line 2 has start 'zero' and end '100'; both must be integers"):
        read_promoter_bed(bed)


def test_invalid_genome_letter_names_sequence_and_position(tmp_path, inputs, chromosomes):
    broken = dict(chromosomes, chr1=chromosomes["chr1"][:1_499] + "J" + chromosomes["chr1"][1_500:])
    fasta = write_fasta(tmp_path / "broken.fa", broken)
    with pytest.raises(DataError, match=r"broken.fa: sequence 'chr1' position 1,500 \(1-based\) has letter 'J'"):
        rebuild(fasta, *inputs[1:])


def test_wrong_genome_or_ids_are_errors(tmp_path, inputs):
    other = write_fasta(tmp_path / "other.fa", {"scaffold_1": "ACGT" * 100})
    with pytest.raises(DataError, match="none of the BED chromosomes .* is in the genome .*scaffold_1"):
        rebuild(other, *inputs[1:])
    labels = write_table(tmp_path / "versioned.tsv", ["gene_id", "expression"], [["plus_middle.3", 1.0]])
    with pytest.raises(DataError, match="no BED gene has a label .*'plus_middle.3'"):
        rebuild(inputs[0], inputs[1], labels)


def test_plain_gzip_genome_is_refused_with_advice(tmp_path, chromosomes):
    fasta = write_fasta(tmp_path / "genome.fa.gz", chromosomes, compress=True)
    with pytest.raises(DataError, match=r"genome.fa.gz: .*(bgzip|Biopython)"):
        Genome(fasta)


@pytest.mark.skipif(
    importlib.util.find_spec("Bio") is None,
    reason="Biopython is not installed; pyfaidx reads bgzip FASTA only through Bio.bgzf",
)
def test_bgzip_genome_gives_the_same_windows(tmp_path, inputs, chromosomes):
    from Bio import bgzf

    plain = inputs[0].read_text()
    with bgzf.BgzfWriter(tmp_path / "genome.fa.gz", "wb") as handle:
        handle.write(plain.encode())
    records, _ = rebuild(tmp_path / "genome.fa.gz", *inputs[1:])
    for record, (gene, chrom, start, end, strand) in zip(records, WINDOWS[:7], strict=False):
        assert record["sequence"] == expected_window(chromosomes, chrom, start, end, strand), gene


def test_real_xpresso_bed_reads_as_20kb_windows():
    path = SHARED_DATA / "xpresso_hg38_promoters.bed"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data folder sits beside the repository on development machines)")
    windows = read_promoter_bed(path)
    assert len(windows) == len({window.gene_id for window in windows}) == 18_413
    assert {window.length for window in windows} == {20_000}
    assert sum(window.strand == "+" for window in windows) == 9_316
    assert {window.chrom for window in windows} == {str(i) for i in range(1, 23)} | {"X"}
