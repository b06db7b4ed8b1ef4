import csv
import gzip
import json
import math
import os
import statistics
import subprocess

import datasets
import numpy as np
import pytest

from expression_perceiver.data.dataset_dict import (
    METADATA_FILE,
    DatasetMetadata,
    SplitSpec,
    build_dataset_dict,
    expression_features,
    joint_label_transform,
    load_dataset_dir,
    save_dataset,
    split_by_chromosome,
    split_by_gene,
)
from expression_perceiver.data.errors import DataError, ReadReport
from expression_perceiver.data.tables import LabelSpec, read_sequence_table

from .helpers import SHARED_DATA

datasets.disable_progress_bars()


def promoter_records(count: int, with_chrom: bool = False, num_features: int = 0) -> list[dict]:
    rng = np.random.default_rng(3)
    records = []
    for row in range(count):
        record = {"gene_id": f"G{row // 2}", "sequence": "ACGTN"[row % 5] * 8, "label": float(rng.normal(3, 2))}
        if with_chrom:
            record["chrom"] = f"chr{row % 4 + 1}"
        if num_features:
            record["features"] = rng.normal(size=num_features).tolist()
        records.append(record)
    return records


def build(records, tmp_path, **options):
    options.setdefault("alphabet", "dna")
    options.setdefault("source", "generated")
    return build_dataset_dict(lambda: iter(records), cache_dir=tmp_path / "cache", **options)


def expected_gene_split(gene_ids, fractions=(0.8, 0.1, 0.1), seed=0):
    """The documented rule, written out: permute distinct genes, cut at the floor of cumulative fractions."""
    genes = list(dict.fromkeys(gene_ids))
    order = np.random.default_rng(seed).permutation(len(genes))
    first_cut = math.floor(fractions[0] * len(genes))
    second_cut = math.floor((fractions[0] + fractions[1]) * len(genes))
    return {
        "train": {genes[i] for i in order[:first_cut]},
        "validation": {genes[i] for i in order[first_cut:second_cut]},
        "test": {genes[i] for i in order[second_cut:]},
    }


def test_split_by_gene_is_seeded_grouped_and_sized():
    gene_ids = [f"G{i // 2}" for i in range(200)]
    names = split_by_gene(gene_ids, seed=5)
    assert names == split_by_gene(gene_ids, seed=5) != split_by_gene(gene_ids, seed=6)
    assert all(names[i] == names[i + 1] for i in range(0, 200, 2))
    assert [names.count(split) for split in ("train", "validation", "test")] == [160, 20, 20]
    expected = expected_gene_split(gene_ids, seed=5)
    assert {gene for gene, name in zip(gene_ids, names, strict=True) if name == "test"} == expected["test"]


def test_split_by_chromosome_matches_with_or_without_prefix():
    assert split_by_chromosome(["chr1", "2", "chrX", "1"], ["X"], ["chr2"]) == ["train", "test", "validation", "train"]
    with pytest.raises(DataError, match=r"chromosome 'chr8' is not in the data \(chromosomes: 1, 2\)"):
        split_by_chromosome(["chr1", "chr2"], ["chr8"], [])
    with pytest.raises(DataError, match="row 1 has no chromosome"):
        split_by_chromosome(["chr1", ""], ["chr1"], [])


def test_split_spec_rejects_bad_settings():
    with pytest.raises(ValueError, match="summing to 1"):
        SplitSpec(fractions=(0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match="both validation and test"):
        SplitSpec(method="chromosomes", validation_chromosomes=("chr1",), test_chromosomes=("1",))


def test_schema_is_exact(tmp_path):
    records = promoter_records(40, with_chrom=True, num_features=3)
    dataset_dict, _ = build(records, tmp_path, feature_names=["a", "b", "c"], with_chrom=True)
    assert dataset_dict["train"].features == datasets.Features(
        {
            "gene_id": datasets.Value("string"),
            "sequence": datasets.Value("string"),
            "label": datasets.Value("float64"),
            "features": datasets.List(datasets.Value("float32")),
            "chrom": datasets.Value("string"),
        }
    )
    assert expression_features(num_labels=2)["label"] == datasets.List(datasets.Value("float64"))
    assert list(dataset_dict) == ["train", "validation", "test"]


def test_random_split_statistics_come_from_train_only(tmp_path):
    records = promoter_records(100)
    dataset_dict, metadata = build(records, tmp_path)
    expected = expected_gene_split([r["gene_id"] for r in records])
    for split, genes in expected.items():
        assert set(dataset_dict[split]["gene_id"]) == genes
    train_labels = [r["label"] for r in records if r["gene_id"] in expected["train"]]
    assert metadata.label_mean == pytest.approx(statistics.fmean(train_labels))
    assert metadata.label_std == pytest.approx(statistics.pstdev(train_labels))
    assert metadata.counts == {name: len(dataset_dict[name]) for name in ("train", "validation", "test")}
    assert sum(metadata.counts.values()) == 100


def test_given_and_chromosome_splits(tmp_path):
    records = promoter_records(20, with_chrom=True)
    given = {
        name: (lambda part=part: iter(part))
        for name, part in zip(
            ("train", "validation", "test"), (records[:10], records[10:15], records[15:]), strict=True
        )
    }
    dataset_dict, metadata = build_dataset_dict(
        given, cache_dir=tmp_path, alphabet="dna", source="given", with_chrom=True, split=SplitSpec("given")
    )
    assert metadata.counts == {"train": 10, "validation": 5, "test": 5}
    assert metadata.split == {"method": "given by the source"}
    split = SplitSpec("chromosomes", validation_chromosomes=("chr2",), test_chromosomes=("3",))
    dataset_dict, metadata = build(records, tmp_path, with_chrom=True, split=split)
    assert set(dataset_dict["validation"]["chrom"]) == {"chr2"} and set(dataset_dict["test"]["chrom"]) == {"chr3"}
    assert set(dataset_dict["train"]["chrom"]) == {"chr1", "chr4"}
    with pytest.raises(DataError, match="a chromosome split needs the chromosome of every record"):
        build(records, tmp_path, split=split)


def test_several_labels_have_statistics_per_output(tmp_path):
    records = [{"gene_id": f"G{i}", "sequence": "ACGT", "label": [float(i), float(i * i)]} for i in range(50)]
    dataset_dict, metadata = build(records, tmp_path, label_names=["human", "mouse"])
    train = np.array(dataset_dict["train"]["label"])
    assert train.shape[1] == 2
    np.testing.assert_allclose(metadata.label_mean, train.mean(axis=0))
    np.testing.assert_allclose(metadata.label_std, train.std(axis=0))


def test_reader_errors_surface_unwrapped(tmp_path):
    def records():
        yield {"gene_id": "G0", "sequence": "ACGT", "label": 1.0}
        raise DataError("t.tsv: line 3 (id G1) has letter 'J' at position 2 (1-based), not a dna letter")

    with pytest.raises(DataError, match="^t.tsv: line 3"):
        build_dataset_dict(records, cache_dir=tmp_path, alphabet="dna", source="t")
    with pytest.raises(DataError, match="record 'G0' has 2 features, expected 0"):
        build([{"gene_id": "G0", "sequence": "A", "label": 1.0, "features": [1, 2]}], tmp_path)


def test_degenerate_train_splits_are_errors(tmp_path):
    constant = [{"gene_id": f"G{i}", "sequence": "ACGT", "label": 2.0} for i in range(10)]
    with pytest.raises(DataError, match="labels are all equal"):
        build(constant, tmp_path)
    with pytest.raises(DataError, match="the train split is empty"):
        build(constant, tmp_path, split=SplitSpec(fractions=(0.0, 0.5, 0.5)))


def test_save_and_load_round_trip_with_sidecar(tmp_path):
    records = promoter_records(30, num_features=2)
    report = ReadReport("generated")
    report.drop("no label in labels.tsv", "G99")
    dataset_dict, metadata = build(
        records, tmp_path, feature_names=["x", "y"], reports=[report], split=SplitSpec(fractions=(0.9, 0.1, 0.0))
    )
    save_dataset(dataset_dict, metadata, tmp_path / "saved")
    sidecar = json.loads((tmp_path / "saved" / METADATA_FILE).read_text())
    assert set(sidecar) == {
        "alphabet", "source", "label_names", "num_labels", "label_transform", "label_mean", "label_std",
        "num_features", "feature_names", "split", "counts", "with_protein", "reports", "format_version",
    }  # fmt: skip
    assert sidecar["with_protein"] is False
    assert sidecar["num_features"] == 2 and sidecar["counts"]["test"] == 0
    assert sidecar["reports"][0]["dropped"]["no label in labels.tsv"] == {"count": 1, "examples": ["G99"]}
    loaded, loaded_metadata = load_dataset_dir(tmp_path / "saved")
    assert loaded_metadata == metadata
    assert len(loaded["test"]) == 0
    assert loaded["train"][:] == dataset_dict["train"][:]
    # Memory-mapped from the saved folder, not from the build's cache.
    assert all(str(tmp_path / "saved") in f["filename"] for f in loaded["train"].cache_files)


def test_save_is_atomic_and_does_not_overwrite_by_default(tmp_path, monkeypatch):
    dataset_dict, metadata = build(promoter_records(20), tmp_path)
    target = tmp_path / "out"
    save_dataset(dataset_dict, metadata, target)
    with pytest.raises(FileExistsError):
        save_dataset(dataset_dict, metadata, target)
    metadata.source = "second"
    save_dataset(dataset_dict, metadata, target, overwrite=True)
    assert load_dataset_dir(target)[1].source == "second"

    def failing_dumps(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", failing_dumps)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(dataset_dict, metadata, tmp_path / "never")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "out"]


def protein_records(count: int) -> list[dict]:
    return [
        {**record, "protein_sequence": "MKV" * (row % 7 + 1), "label": [record["label"], float(row)]}
        for row, record in enumerate(promoter_records(count))
    ]


def test_protein_column_is_carried_through_splits_saving_and_loading(tmp_path):
    records = protein_records(40)
    dataset_dict, metadata = build(
        records, tmp_path, label_names=["mrna", "protein"], label_transform="mrna: none; protein: log10(x)",
        with_protein=True,
    )  # fmt: skip
    assert dataset_dict["train"].features == datasets.Features(
        {
            "gene_id": datasets.Value("string"),
            "sequence": datasets.Value("string"),
            "protein_sequence": datasets.Value("string"),
            "label": datasets.List(datasets.Value("float64")),
        }
    )
    assert metadata.with_protein and metadata.label_transforms == ["none", "log10(x)"]
    protein_of = {(r["gene_id"], r["sequence"]): r["protein_sequence"] for r in records}
    for name in ("train", "validation", "test"):
        for row in dataset_dict[name]:
            assert row["protein_sequence"] == protein_of[(row["gene_id"], row["sequence"])]
    save_dataset(dataset_dict, metadata, tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / METADATA_FILE).read_text())["with_protein"] is True
    loaded, loaded_metadata = load_dataset_dir(tmp_path / "saved")
    assert loaded_metadata == metadata
    assert loaded["validation"][:] == dataset_dict["validation"][:]
    # Records without a protein do not fit a protein schema.
    with pytest.raises(DataError, match="generated: record 'G0' has no protein_sequence"):
        build(promoter_records(10), tmp_path, with_protein=True)


def test_datasets_saved_before_the_protein_column_still_load(tmp_path):
    dataset_dict, metadata = build(promoter_records(20), tmp_path)
    save_dataset(dataset_dict, metadata, tmp_path / "old")
    sidecar_path = tmp_path / "old" / METADATA_FILE
    sidecar = json.loads(sidecar_path.read_text())
    del sidecar["with_protein"]  # as written before the key existed
    sidecar_path.write_text(json.dumps(sidecar))
    loaded, loaded_metadata = load_dataset_dir(tmp_path / "old")
    assert loaded_metadata.with_protein is False and "protein_sequence" not in loaded["train"].column_names
    # Metadata claiming a protein column the splits lack is an error naming the splits.
    sidecar["with_protein"] = True
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(DataError, match="split\\(s\\) train, validation, test lack the protein_sequence column"):
        load_dataset_dir(tmp_path / "old")


def test_label_transform_per_output():
    assert joint_label_transform(["a", "b"], ["log10(x)", "log10(x)"]) == "log10(x)"
    assert joint_label_transform(["a", "b"], ["none", "log10(x + 0.1)"]) == "a: none; b: log10(x + 0.1)"
    with pytest.raises(ValueError, match="1 label transforms for 2 labels"):
        joint_label_transform(["a", "b"], ["none"])
    metadata = DatasetMetadata(
        alphabet="dna", source="s", label_names=["a", "b"], label_transform="a: none; b: log10(x + 0.1)",
        label_mean=[0, 0], label_std=[1, 1], feature_names=[], split={}, counts={},
    )  # fmt: skip
    assert metadata.label_transforms == ["none", "log10(x + 0.1)"]
    assert metadata.label_units == ["a", "log10(b + 0.1)"]
    metadata.label_transform = "z-scored log10(median + 0.1)"  # a source's own description, for every output
    assert metadata.label_transforms == ["z-scored log10(median + 0.1)"] * 2
    assert metadata.label_units == ["z-scored log10(median + 0.1) of a", "z-scored log10(median + 0.1) of b"]


def test_loading_a_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        load_dataset_dir(tmp_path)


def read_shared_table(name: str, label_column: str, log10: bool) -> tuple[list[str], list[float]]:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data folder sits beside the repository on development machines)")
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    labels = [math.log10(float(row[label_column])) if log10 else float(row[label_column]) for row in rows]
    return [row["gene_id"] for row in rows], labels


def check_against_independent_split(dataset_dict, metadata, gene_ids, labels):
    expected = expected_gene_split(gene_ids)
    for split, genes in expected.items():
        assert metadata.counts[split] == sum(gene in genes for gene in gene_ids)
    assert set(dataset_dict["validation"]["gene_id"]) == expected["validation"]
    train_labels = [label for gene, label in zip(gene_ids, labels, strict=True) if gene in expected["train"]]
    assert metadata.label_mean == pytest.approx(statistics.fmean(train_labels), rel=1e-9)
    assert metadata.label_std == pytest.approx(statistics.pstdev(train_labels), rel=1e-9)


@pytest.mark.slow
def test_human_proteome_log10_abundance(tmp_path):
    gene_ids, labels = read_shared_table("human_proteome_paxdb.tsv.gz", "abundance_ppm", log10=True)
    report = ReadReport("proteome")
    dataset_dict, metadata = build_dataset_dict(
        lambda: read_sequence_table(
            SHARED_DATA / "human_proteome_paxdb.tsv.gz",
            alphabet="protein",
            labels=LabelSpec(("abundance_ppm",), log10=True),
            max_length=6_000,
            report=report,
        ),
        cache_dir=tmp_path,
        alphabet="protein",
        source="PaxDb human proteome",
        label_names=["abundance_ppm"],
        label_transform="log10(x)",
    )
    assert len(gene_ids) == 16_871 == report.records
    assert metadata.counts == {"train": 13_496, "validation": 1_687, "test": 1_688}
    check_against_independent_split(dataset_dict, metadata, gene_ids, labels)
    # Every letter is in the alphabet: 21 selenoproteins (U) and 3 proteins with X are kept and reported.
    assert report.noted_count("has X B Z U O (kept)") == 24
    assert report.noted_count("truncated to 6,000 letters") == 5
    assert max(len(sequence) for sequence in dataset_dict["train"]["sequence"]) == 6_000


def test_epd_promoters_xpresso_label(tmp_path):
    gene_ids, labels = read_shared_table("epd_core_promoters_xpresso.tsv.gz", "label_human", log10=False)
    report = ReadReport("epd")
    dataset_dict, metadata = build_dataset_dict(
        lambda: read_sequence_table(
            SHARED_DATA / "epd_core_promoters_xpresso.tsv.gz",
            alphabet="dna",
            labels=LabelSpec(("label_human",)),
            report=report,
        ),
        cache_dir=tmp_path,
        alphabet="dna",
        source="EPD core promoters",
        label_names=["label_human"],
    )
    assert len(gene_ids) == 12_642 == sum(metadata.counts.values())
    # Three genes have two primary promoters each: both rows kept, always in one split.
    assert len(set(gene_ids)) == 12_639
    assert report.noted_count("repeated id (kept; all rows of an id go to one split)") == 3
    check_against_independent_split(dataset_dict, metadata, gene_ids, labels)


def test_temporary_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    from expression_perceiver.data.dataset_dict import remove_abandoned

    ended = subprocess.Popen(["true"])
    ended.wait()  # reaped: its pid names no process now
    dead = tmp_path / f".out.scratch-{ended.pid}-abcd1234"
    living = tmp_path / f".out.scratch-{os.getppid()}-abcd1234"
    for folder in (dead, living):
        (folder / "data").mkdir(parents=True)
    remove_abandoned(tmp_path, ".out.scratch-")
    assert not dead.exists() and living.exists()
