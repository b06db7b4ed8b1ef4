"""Input that used to end in a traceback or a silently wrong number: a FASTA index (`.fai`) that does not describe its
FASTA, and labels or features too large to be measurements (1e308, which log10 would turn into 308). Each is one
line naming the file, record and column (or the index and how to rebuild it), exit code 2, nothing written."""

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

from expression_perceiver.cli import main
from expression_perceiver.data.dataset_dict import SplitSpec, build_dataset_dict
from expression_perceiver.data.errors import LARGEST_VALUE, DataError, ReadReport
from expression_perceiver.data.genome import Genome, rebuild_promoter_records
from expression_perceiver.data.tables import LabelSpec, read_label_table

from .helpers import random_dna, write_fasta, write_table

CHROMOSOMES = {
    name: random_dna(np.random.default_rng(i), length)
    for i, (name, length) in enumerate([("chr1", 30_000), ("chr2", 5_000), ("chr3", 2_000)])
}


def index_of(fasta: Path) -> Path:
    with Genome(fasta):
        pass  # pyfaidx writes the index beside the FASTA
    return Path(f"{fasta}.fai")


def newer(index: Path) -> None:
    """The index written after the FASTA, so pyfaidx keeps it: a copied index, or one touched by a sync."""
    later = os.stat(index.with_suffix("")).st_mtime + 60
    os.utime(index, (later, later))


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if ".partial-" in path.name or ".scratch-" in path.name)


@pytest.fixture
def genome_inputs(tmp_path):
    fasta = write_fasta(tmp_path / "genome.fa", CHROMOSOMES, width=80)
    bed = tmp_path / "promoters.bed"
    windows = [("chr1", 1_000 * i, "+") for i in range(20)] + [("chr2", 200 * i, "-") for i in range(10)]
    bed.write_text("".join(f"{c}\t{s}\t{s + 1_000}\tg{i}\t0\t{strand}\n" for i, (c, s, strand) in enumerate(windows)))
    labels = write_table(tmp_path / "labels.tsv", ["gene_id", "label"], [[f"g{i}", i] for i in range(len(windows))])
    return fasta, bed, labels


def test_the_index_of_another_fasta_is_refused_where_it_ended_in_a_datasets_traceback(tmp_path, genome_inputs, capsys):
    # The index of a smaller genome with 60-letter lines, copied beside this one: its records lie inside the file,
    # so reading went on and a window came back with more letters than asked ("negative dimensions are not allowed").
    fasta, bed, labels = genome_inputs
    other = write_fasta(tmp_path / "other.fa", {"chr1": CHROMOSOMES["chr1"][:20_000], "chr2": CHROMOSOMES["chr2"]})
    index = Path(f"{fasta}.fai")
    index.write_bytes(index_of(other).read_bytes())
    newer(index)
    argv = ["prepare", "genome", "--genome", str(fasta), "--bed", str(bed), "--labels", str(labels), "--full-window"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr().err
    size = fasta.stat().st_size
    assert printed.splitlines() == [
        "expression-perceiver prepare: error: "
        f"genome.fa: its index {index} does not describe it: the file goes on after its last indexed sequence "
        f"chr2 (byte 25,464 of {size:,}): sequences the index does not list (an index of another FASTA, or of an "
        f"earlier version of this one?); delete {index} and run again to rebuild it"
    ]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    # Deleted, it is rebuilt and the windows are read right.
    index.unlink()
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    "rewrite, problem",
    [
        # the same sequences with longer lines: the file is shorter than the index says
        (
            lambda fasta: write_fasta(fasta, CHROMOSOMES, width=100),
            "sequence chr3 would end at byte",
        ),
        # the same sequences with shorter lines: the index ends before the file
        (lambda fasta: write_fasta(fasta, CHROMOSOMES, width=70), "the file goes on after its last indexed sequence"),
        # a sequence renamed: same bytes, another name
        (
            lambda fasta: write_fasta(
                fasta, {"chrX" if n == "chr2" else n: s for n, s in CHROMOSOMES.items()}, width=80
            ),
            "sequence chr2 starts after the line '>chrX some description', not after its header",
        ),
        # Windows line ends: every line one byte longer
        (
            lambda fasta: fasta.write_bytes(fasta.read_bytes().replace(b"\n", b"\r\n")),
            "the file goes on after its last indexed sequence",
        ),
    ],
    ids=["longer lines", "shorter lines", "renamed sequence", "CRLF"],
)
def test_an_index_of_an_earlier_version_of_the_fasta_is_refused(genome_inputs, rewrite, problem):
    fasta, _, _ = genome_inputs
    index = index_of(fasta)
    rewrite(fasta)
    newer(index)
    with pytest.raises(DataError) as error:
        Genome(fasta)
    message = str(error.value)
    assert message.startswith(f"genome.fa: its index {index} does not describe it: ") and problem in message
    assert message.endswith(f"delete {index} and run again to rebuild it") and "\n" not in message


def test_an_index_with_a_sequence_left_out_or_impossible_numbers_is_refused(genome_inputs):
    fasta, _, _ = genome_inputs
    index = index_of(fasta)
    lines = index.read_text().splitlines()
    index.write_text(f"{lines[0]}\n{lines[2]}\n")  # chr2 left out: its genes would be "missing from the genome"
    newer(index)
    # chr1 ends at byte 23 + 30,000 + 375 (its header, letters and line ends); chr2's header and 5,000 letters in
    # 63 lines follow up to chr3's header
    with pytest.raises(
        DataError, match=r"bytes 30,398\.\.35,484 before sequence chr3 hold a sequence it does not list"
    ):
        Genome(fasta)
    index.write_text("chr1\t30000\t-5\t80\t81\n")
    newer(index)
    with pytest.raises(DataError, match="sequence chr1 has impossible numbers: 30000 letters at byte -5"):
        Genome(fasta)
    index.write_text("chr1\tthirty\n")
    newer(index)
    with pytest.raises(DataError, match=rf"genome.fa: its index {index} cannot be read \(.*\); delete it and run"):
        Genome(fasta)


@pytest.mark.skipif(
    importlib.util.find_spec("Bio") is None, reason="pyfaidx reads bgzip FASTA only through Biopython's Bio.bgzf"
)
def test_the_index_of_another_bgzip_fasta_is_refused_when_a_window_reads_wrong(tmp_path, genome_inputs):
    from Bio import bgzf

    _, bed, labels = genome_inputs

    def bgzip(records: dict[str, str], name: str, width: int) -> Path:
        plain = write_fasta(tmp_path / f"{name}.plain", records, width=width)
        with bgzf.BgzfWriter(tmp_path / name, "wb") as writer:
            writer.write(plain.read_bytes())
        return tmp_path / name

    other = bgzip({"chr1": CHROMOSOMES["chr1"][:20_000], "chr2": CHROMOSOMES["chr2"]}, "other.fa.gz", 60)
    fasta = bgzip(CHROMOSOMES, "genome.fa.gz", 80)
    index_of(other)
    for suffix in (".fai", ".gzi"):
        Path(f"{fasta}{suffix}").write_bytes(Path(f"{other}{suffix}").read_bytes())
        newer(Path(f"{fasta}{suffix}"))
    with pytest.raises(DataError) as error:
        list(rebuild_promoter_records(fasta, bed, read_label_table(labels)))
    assert str(error.value) == (
        f"genome.fa.gz: its index {fasta}.fai does not describe it: sequence 'chr1' bases 1..1,000 read as 1,004 "
        "letters, not 1,000 (window of gene g0) (an index of another FASTA, or of an earlier version of this one?); "
        f"delete {fasta}.fai and {fasta}.gzi and run again to rebuild it"
    )


def test_an_index_older_than_its_fasta_is_rebuilt_and_the_rebuild_noted(tmp_path, genome_inputs, capsys):
    fasta, bed, labels = genome_inputs
    index = index_of(fasta)
    hour_ago = time.time() - 3600
    write_fasta(fasta, CHROMOSOMES, width=60)  # the FASTA rewritten after its index
    os.utime(index, (hour_ago, hour_ago))
    report = ReadReport("test")
    records = list(rebuild_promoter_records(fasta, bed, read_label_table(labels), report=report))
    assert records[1]["sequence"] == CHROMOSOMES["chr1"][1_000:2_000]
    assert report.noted_count("index older than the FASTA, rebuilt") == 1
    with Genome(fasta) as genome:
        assert not genome.index_rebuilt  # rebuilt once, current since
    # The command's summary says so.
    write_fasta(fasta, CHROMOSOMES, width=70)
    os.utime(index, (hour_ago, hour_ago))
    argv = ["prepare", "genome", "--genome", str(fasta), "--bed", str(bed), "--labels", str(labels), "--full-window"]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 0
    assert "index older than the FASTA, rebuilt: 1 (first: genome.fa.fai)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "value, problem",
    [
        ("1e308", "is '1e308', beyond +-1e+30: no expression level or feature is that large"),
        ("-2e30", "is '-2e30', beyond +-1e+30"),
        ("inf", "is 'inf', not a finite number"),
        ("-Infinity", "is '-Infinity', not a finite number"),
    ],
)
@pytest.mark.parametrize("log10", [False, True], ids=["as is", "log10"])
def test_a_label_too_large_to_be_a_measurement_is_refused_naming_file_record_and_column(
    tmp_path, capsys, value, problem, log10
):
    rows = [[f"G{i}", "ACGTACGT", i + 1] for i in range(20)] + [["G_bad", "ACGTACGT", value]]
    table = write_table(tmp_path / "t.tsv", ["gene_id", "sequence", "tpm"], rows)
    argv = ["prepare", "table", str(table), "--alphabet", "dna", "--label-column", "tpm", "-o", str(tmp_path / "o")]
    assert main([*argv, *(["--log10"] if log10 else [])]) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and error[0].startswith(
        "expression-perceiver prepare: error: t.tsv: line 22 (id G_bad) column 'tpm' "
    ), error
    assert problem in error[0]
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


def test_the_bound_is_inclusive_and_features_are_bounded_too(tmp_path):
    table = write_table(tmp_path / "labels.tsv", ["gene_id", "label", "f"], [["a", "1e30", "1"], ["b", "-1e30", "1"]])
    rows = read_label_table(table, feature_columns=["f"])
    assert rows["a"].label == LARGEST_VALUE and rows["b"].label == -LARGEST_VALUE
    # A feature stored as float32 (largest 3.4e38) would become inf: refused as read.
    write_table(table, ["gene_id", "label", "half_life"], [["a", "1", "1e39"]])
    with pytest.raises(DataError, match=r"labels.tsv: line 2 \(id a\) column 'half_life' is '1e39', beyond"):
        read_label_table(table, feature_columns=["half_life"])


@pytest.mark.parametrize("pseudocount", [float("inf"), float("nan"), -1.0, 1e31])
def test_a_pseudocount_that_is_not_a_finite_number_in_range_is_refused(pseudocount):
    with pytest.raises(ValueError, match="the pseudocount must be a finite number in 0..1e[+]30"):
        LabelSpec(log10=True, pseudocount=pseudocount)


def test_any_reader_s_records_are_held_to_the_same_bound(tmp_path):
    # Records from a reader that does not parse text (Xpresso's HDF5 files, generated data): checked when built.
    records = [{"gene_id": f"G{i}", "sequence": "ACGT", "label": [float(i), 1.0]} for i in range(10)]
    records[7]["label"] = [7.0, 1e308]

    def build(items):
        return build_dataset_dict(
            lambda: iter(items),
            cache_dir=tmp_path / "cache",
            alphabet="dna",
            source="train.h5",
            label_names=("label_human", "label_mouse"),
            split=SplitSpec(fractions=(0.6, 0.2, 0.2)),
        )

    with pytest.raises(DataError) as error:
        build(records)
    assert str(error.value) == (
        "train.h5: record 'G7' label 'label_mouse' is 1e+308, beyond +-1e+30: no expression level or feature is that "
        "large (a typo, a unit slip or a missing-value code?)"
    )
    records[7]["label"] = [7.0, float("nan")]
    with pytest.raises(DataError, match="train.h5: record 'G7' label 'label_mouse' is nan, not a finite number"):
        build(records)
    records[7]["label"] = [7.0, "7"]
    with pytest.raises(DataError, match="train.h5: record 'G7' label 'label_mouse' is '7', not a number"):
        build(records)
