"""Turn records into a `datasets.DatasetDict` (train / validation / test), save it with its metadata, load it back.

Schema of every split:
    gene_id           string
    sequence          string (DNA or protein letters, as the metadata's `alphabet` says)
    protein_sequence  string of amino-acid letters (only for the Protein&DNAPerceiver: the promoter is `sequence`,
                      the gene's protein this column; `with_protein` in the metadata)
    label             float64, in the source's units after the optional log10 (a list of float64 with several
                      outputs; `label_names` and `label_transform` in the metadata say which is which)
    features          list of float32 (only when the source has features, e.g. the 8 mRNA half-life features)
    chrom             string (only when the source knows the chromosome)

Labels are stored untransformed by standardisation; the train split's mean and standard deviation (ddof=0) are kept
in a JSON sidecar, `expression_perceiver.json`, beside the Arrow files, for training code to standardise with.
Records stream into Arrow files through `Dataset.from_generator`, so a set larger than memory never sits in a list.
"""

import glob
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np

from .errors import DataError, ReadReport, check_value

SPLIT_NAMES = ("train", "validation", "test")
METADATA_FILE = "expression_perceiver.json"
METADATA_FORMAT_VERSION = 1

RecordFactory = Callable[[], Iterable[dict[str, Any]]]
SplitMethod = Literal["given", "random", "chromosomes"]


@dataclass(frozen=True)
class SplitSpec:
    """How records are split.

    - `given`: the source has its own splits (Xpresso's three files).
    - `random`: by gene: the distinct gene ids, in order of first appearance, are permuted with
      `numpy.random.default_rng(seed).permutation`; the first `int(f_train * n)` go to train, up to
      `int((f_train + f_validation) * n)` to validation, the rest to test. All rows of a gene share a split. With
      one row per gene this is a seeded permutation of the rows cut at 80% and 90%.
    - `chromosomes`: leave chromosomes out: genes on `validation_chromosomes` / `test_chromosomes` (matched with or
      without a `chr` prefix) form those splits; the rest is train.
    """

    method: SplitMethod = "random"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    validation_chromosomes: tuple[str, ...] = ()
    test_chromosomes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.method not in ("given", "random", "chromosomes"):
            raise ValueError(f"split method must be given, random or chromosomes, not {self.method!r}")
        if self.method == "random":
            if len(self.fractions) != 3 or min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6:
                raise ValueError(f"split fractions {self.fractions} must be three non-negative numbers summing to 1")
        if self.method == "chromosomes":
            if not self.validation_chromosomes and not self.test_chromosomes:
                raise ValueError("a chromosome split needs validation and/or test chromosomes")
            overlap = {chromosome_key(c) for c in self.validation_chromosomes} & {
                chromosome_key(c) for c in self.test_chromosomes
            }
            if overlap:
                raise ValueError(f"chromosomes {sorted(overlap)} are listed for both validation and test")

    def describe(self) -> dict[str, Any]:
        if self.method == "random":
            return {"method": "random by gene", "seed": self.seed, "fractions": list(self.fractions)}
        if self.method == "chromosomes":
            return {
                "method": "leave chromosomes out",
                "validation_chromosomes": list(self.validation_chromosomes),
                "test_chromosomes": list(self.test_chromosomes),
            }
        return {"method": "given by the source"}


def chromosome_key(name: str) -> str:
    """Chromosome name without a `chr` prefix, upper case: `chr1` and `1` are one chromosome."""
    bare = name[3:] if name.lower().startswith("chr") else name
    return bare.upper()


def split_by_gene(gene_ids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[str]:
    """The split name of each row, from a seeded random split of the distinct gene ids (see `SplitSpec`)."""
    distinct = list(dict.fromkeys(gene_ids))
    order = np.random.default_rng(seed).permutation(len(distinct))
    train_end = int(fractions[0] * len(distinct))
    validation_end = int((fractions[0] + fractions[1]) * len(distinct))
    split_of_gene = {}
    for rank, index in enumerate(order):
        split_of_gene[distinct[index]] = (
            "train" if rank < train_end else "validation" if rank < validation_end else "test"
        )
    return [split_of_gene[gene_id] for gene_id in gene_ids]


def split_by_chromosome(
    chroms: Sequence[str | None], validation_chromosomes: Sequence[str], test_chromosomes: Sequence[str]
) -> list[str]:
    """The split name of each row from its chromosome; every listed chromosome must occur in the data."""
    missing = [row for row, chrom in enumerate(chroms) if not chrom]
    if missing:
        raise DataError(f"row {missing[0]} has no chromosome; a chromosome split needs one for every row")
    present = {chromosome_key(chrom) for chrom in chroms}
    held_out = {chromosome_key(c): "validation" for c in validation_chromosomes}
    held_out |= {chromosome_key(c): "test" for c in test_chromosomes}
    absent = [c for c in [*validation_chromosomes, *test_chromosomes] if chromosome_key(c) not in present]
    if absent:
        raise DataError(
            f"chromosome {', '.join(map(repr, absent))} is not in the data (chromosomes: {', '.join(sorted(present))})"
        )
    return [held_out.get(chromosome_key(chrom), "train") for chrom in chroms]


def expression_features(
    num_labels: int = 1, num_features: int = 0, with_chrom: bool = False, with_protein: bool = False
) -> datasets.Features:
    """The `datasets` schema of a split (see the module docstring)."""
    label = datasets.Value("float64") if num_labels == 1 else datasets.List(datasets.Value("float64"))
    columns = {"gene_id": datasets.Value("string"), "sequence": datasets.Value("string")}
    if with_protein:
        columns["protein_sequence"] = datasets.Value("string")
    columns["label"] = label
    if num_features:
        columns["features"] = datasets.List(datasets.Value("float32"))
    if with_chrom:
        columns["chrom"] = datasets.Value("string")
    return datasets.Features(columns)


def _conforming_records(
    records: Iterable[dict[str, Any]],
    num_labels: int,
    num_features: int,
    with_chrom: bool,
    source: str,
    with_protein: bool = False,
    label_names: Sequence[str] = (),
    feature_names: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """Records reduced to the schema's columns, each checked to have the declared number of labels/features, every
    label and feature a finite number within +-`errors.LARGEST_VALUE` (whatever reader made it) and, with
    `with_protein`, a protein sequence. A stream with no record at all is an error naming the source."""
    empty = True
    for record in records:
        empty = False
        gene_id = str(record["gene_id"])
        label = record["label"]
        labels = list(label) if isinstance(label, list | tuple) else [label]
        if len(labels) != num_labels:
            raise DataError(f"{source}: record {gene_id!r} has {len(labels)} labels, expected {num_labels}")
        features = record.get("features") or []
        if len(features) != num_features:
            raise DataError(f"{source}: record {gene_id!r} has {len(features)} features, expected {num_features}")
        for kind, values, names in (("label", labels, label_names), ("feature", features, feature_names)):
            for i, value in enumerate(values):
                where = f"{source}: record {gene_id!r} {kind} {names[i] if i < len(names) else i!r}"
                if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                    raise DataError(f"{where} is {value!r}, not a number")
                check_value(float(value), where)
        row = {"gene_id": gene_id, "sequence": record["sequence"], "label": label}
        if with_protein:
            protein = record.get("protein_sequence")
            if not isinstance(protein, str) or not protein:
                raise DataError(f"{source}: record {gene_id!r} has no protein_sequence")
            row["protein_sequence"] = protein
        if num_features:
            row["features"] = features
        if with_chrom:
            row["chrom"] = record.get("chrom")
        yield row
    if empty:
        raise DataError(
            f"{source}: no records to read (an empty file, a header without rows, or no id that matches a label)"
        )


def dataset_from_records(
    records: RecordFactory, features: datasets.Features, cache_dir: str | PathLike
) -> datasets.Dataset:
    """A memory-mapped `datasets.Dataset` written from a record stream into Arrow files under `cache_dir`."""
    try:
        # A fresh fingerprint: every build is new data, and hashing a generator over open files is pointless.
        return datasets.Dataset.from_generator(
            records, features=features, cache_dir=str(cache_dir), fingerprint=uuid.uuid4().hex
        )
    except datasets.exceptions.DatasetGenerationError as error:
        # Surface the reader's own message instead of the generic "error while generating the dataset".
        if isinstance(error.__cause__, DataError):
            raise error.__cause__ from None
        raise


def joint_label_transform(label_names: Sequence[str], transforms: Sequence[str]) -> str:
    """One `label_transform` string for outputs transformed alike (`"log10(x)"`), else one entry per output:
    `"label_human: none; abundance_ppm: log10(x)"` (read back by `DatasetMetadata.label_transforms`)."""
    if len(label_names) != len(transforms):
        raise ValueError(f"{len(transforms)} label transforms for {len(label_names)} labels")
    if len(set(transforms)) <= 1:
        return transforms[0] if transforms else "none"
    return "; ".join(f"{name}: {transform}" for name, transform in zip(label_names, transforms, strict=True))


@dataclass
class DatasetMetadata:
    """What `expression_perceiver.json` holds beside the Arrow files.

    `alphabet` is that of `sequence`; `with_protein` says the splits also hold `protein_sequence` (amino acids), as
    the Protein&DNAPerceiver needs (absent, i.e. False, in datasets saved before the column existed).
    `label_transform` is one transform for every output, or one per output as `"name: transform; ..."`.
    """

    alphabet: str
    source: str
    label_names: list[str]
    label_transform: str
    label_mean: float | list[float]
    label_std: float | list[float]
    feature_names: list[str]
    split: dict[str, Any]
    counts: dict[str, int]
    with_protein: bool = False
    reports: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = METADATA_FORMAT_VERSION

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def label_transforms(self) -> list[str]:
        """The transform of each output, in the order of `label_names`."""
        prefixes = [f"{name}: " for name in self.label_names]
        parts = self.label_transform.split("; ")
        if len(parts) == len(prefixes) > 1 and all(
            part.startswith(prefix) for part, prefix in zip(parts, prefixes, strict=True)
        ):
            return [part.removeprefix(prefix) for part, prefix in zip(parts, prefixes, strict=True)]
        return [self.label_transform] * len(self.label_names)

    @property
    def label_units(self) -> list[str]:
        """Each output's units in words: `label_human`, `log10(abundance_ppm)`, `log10(ppm + 0.1)`."""
        units = []
        for name, transform in zip(self.label_names, self.label_transforms, strict=True):
            if transform == "none":
                units.append(name)
            elif len(pieces := re.split(r"\bx\b", transform)) > 1:  # "log10(x + 0.1)": x stands for the value
                units.append(name.join(pieces))
            else:
                units.append(f"{transform} of {name}")
        return units

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_labels": self.num_labels, "num_features": self.num_features}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DatasetMetadata":
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in values.items() if key in known})


def label_statistics(labels: np.ndarray) -> tuple[float | list[float], float | list[float]]:
    """Mean and standard deviation (ddof=0) of labels, per output when there are several."""
    mean, std = labels.mean(axis=0), labels.std(axis=0)
    if labels.ndim == 1:
        return float(mean), float(std)
    return mean.tolist(), std.tolist()


def _labels_of(dataset: datasets.Dataset) -> np.ndarray:
    # Python values, not the numpy formatter: that one returns float64 columns as float32.
    return np.asarray(dataset.select_columns(["label"])[:]["label"], dtype=np.float64)


def build_dataset_dict(
    records: RecordFactory | Mapping[str, RecordFactory],
    *,
    cache_dir: str | PathLike,
    alphabet: str,
    source: str,
    label_names: Sequence[str] = ("label",),
    label_transform: str = "none",
    feature_names: Sequence[str] = (),
    with_chrom: bool = False,
    with_protein: bool = False,
    split: SplitSpec = SplitSpec(),
    reports: Sequence[ReadReport] = (),
) -> tuple[datasets.DatasetDict, DatasetMetadata]:
    """Builds the train/validation/test `DatasetDict` and its metadata from records.

    `records` is a callable returning an iterable of records (read once), or, with `split.method == "given"`, a
    mapping from each split name to such a callable. The Arrow files are written under `cache_dir`, which must
    outlive the returned datasets (e.g. until `save_dataset` has written them elsewhere). `reports` are the readers'
    reports, filled while the records stream, stored in the metadata. With `with_protein`, every record must carry
    a `protein_sequence` (e.g. from `read_sequence_table(..., proteins=read_protein_table(...))`).
    """
    features = expression_features(len(label_names), len(feature_names), with_chrom, with_protein)

    def conform(factory: RecordFactory) -> RecordFactory:
        return lambda: _conforming_records(
            factory(),
            len(label_names),
            len(feature_names),
            with_chrom,
            source,
            with_protein,
            label_names,
            feature_names,
        )

    if split.method == "given":
        if not isinstance(records, Mapping) or set(records) != set(SPLIT_NAMES):
            raise ValueError(f"a given split needs records for each of {SPLIT_NAMES}")
        splits = {name: dataset_from_records(conform(records[name]), features, cache_dir) for name in SPLIT_NAMES}
    else:
        if isinstance(records, Mapping):
            raise ValueError("records by split need split method 'given'")
        everything = dataset_from_records(conform(records), features, cache_dir)
        splits = _split_dataset(everything, split, source)
    train_labels = _labels_of(splits["train"])
    if len(train_labels) == 0:
        raise DataError(f"{source}: the train split is empty")
    label_mean, label_std = label_statistics(train_labels)
    if np.any(np.asarray(label_std) == 0):
        raise DataError(f"{source}: the train split's labels are all equal (standard deviation 0)")
    metadata = DatasetMetadata(
        alphabet=alphabet,
        source=source,
        label_names=list(label_names),
        label_transform=label_transform,
        label_mean=label_mean,
        label_std=label_std,
        feature_names=list(feature_names),
        split=split.describe(),
        counts={name: len(dataset) for name, dataset in splits.items()},
        with_protein=with_protein,
        reports=[report.to_dict() for report in reports],
    )
    for report in reports:
        report.log()
    return datasets.DatasetDict(splits), metadata


def _split_dataset(dataset: datasets.Dataset, split: SplitSpec, source: str) -> dict[str, datasets.Dataset]:
    if split.method == "random":
        names = split_by_gene(dataset.data.column("gene_id").to_pylist(), split.fractions, split.seed)
    else:
        if "chrom" not in dataset.column_names:
            raise DataError(f"{source}: a chromosome split needs the chromosome of every record (none was read)")
        chroms = dataset.data.column("chrom").to_pylist()
        try:
            names = split_by_chromosome(chroms, split.validation_chromosomes, split.test_chromosomes)
        except DataError as error:
            raise DataError(f"{source}: {error}") from None
    names = np.asarray(names)
    # A split asked for (fraction > 0) that too few records leave empty would fail later, far from its cause.
    asked = [name for name, fraction in zip(SPLIT_NAMES, split.fractions, strict=True) if fraction > 0]
    empty = [name for name in asked if name != "train" and not (names == name).any()]
    if split.method == "random" and empty:
        counts = ", ".join(f"{name} {(names == name).sum()}" for name in SPLIT_NAMES)
        raise DataError(
            f"{source}: the {' and '.join(empty)} split(s) would be empty ({counts} of {len(names)} records); "
            "a model can be selected and tested only with records in every split"
        )
    return {name: dataset.select(np.flatnonzero(names == name)) for name in SPLIT_NAMES}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def owned_name(prefix: str) -> str:
    """A temporary name carrying this process's id, so that a later process can tell it was abandoned."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_abandoned(folder: str | PathLike, prefix: str) -> None:
    """Removes the temporary folders named by `owned_name(prefix)` in `folder` whose process has died (killed
    runs and preparations leave them), so that they never accumulate."""
    for entry in Path(folder).glob(f"{glob.escape(prefix)}*"):
        pid = entry.name.removeprefix(prefix).split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def atomic_output_dir(path: str | PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields an empty folder beside `path`; renames it to `path` when the block ends without error, and removes
    it otherwise, so `path` is never left half-written. An existing `path` is replaced only with `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (overwrite it explicitly to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: the folder becomes the output, so it takes the user's umask rather than mode 0700.
    for kind in ("partial", "old", "scratch"):
        remove_abandoned(path.parent, f".{path.name}.{kind}-")
    partial = path.with_name(owned_name(f".{path.name}.partial-"))
    partial.mkdir()
    try:
        yield partial
        if path.exists():
            retired = partial.with_name(owned_name(f".{path.name}.old-"))
            path.rename(retired)
            partial.rename(path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


@contextmanager
def scratch_dir_beside(path: str | PathLike) -> Iterator[Path]:
    """A temporary folder beside `path` (same file system, so Arrow files are not copied across disks), removed
    at the end of the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent, f".{path.name}.scratch-")
    scratch = Path(tempfile.mkdtemp(prefix=owned_name(f".{path.name}.scratch-") + "-", dir=path.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def save_dataset(
    dataset_dict: datasets.DatasetDict, metadata: DatasetMetadata, path: str | PathLike, overwrite: bool = False
) -> Path:
    """Saves the splits (`save_to_disk`) and `expression_perceiver.json` into `path`, atomically."""
    # datasets writes no Arrow file for an empty split and then cannot load it: give such a split one shard.
    num_shards = {name: 1 for name, dataset in dataset_dict.items() if len(dataset) == 0}
    with atomic_output_dir(path, overwrite) as partial:
        dataset_dict.save_to_disk(str(partial), num_shards=num_shards or None)
        (partial / METADATA_FILE).write_text(json.dumps(metadata.to_dict(), indent=2) + "\n")
    return Path(path)


def load_dataset_dir(path: str | PathLike) -> tuple[datasets.DatasetDict, DatasetMetadata]:
    """A saved dataset (memory-mapped Arrow via `datasets.load_from_disk`) and its metadata."""
    path = Path(path)
    metadata_path = path / METADATA_FILE
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset folder (`expression-perceiver prepare ... -o {path}` writes one)")
    if not metadata_path.is_file():
        raise DataError(f"{path}: not a prepared dataset ({METADATA_FILE} missing)")
    try:
        metadata = DatasetMetadata.from_dict(json.loads(metadata_path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise DataError(f"{metadata_path.name}: cannot be read as dataset metadata ({error})") from None
    dataset_dict = datasets.load_from_disk(str(path))
    if not isinstance(dataset_dict, datasets.DatasetDict):
        raise DataError(f"{path}: holds a single dataset, expected train/validation/test splits")
    has_protein = {name: "protein_sequence" in split.column_names for name, split in dataset_dict.items()}
    if len(set(has_protein.values())) > 1 or (metadata.with_protein and not all(has_protein.values())):
        missing = ", ".join(name for name, present in has_protein.items() if not present)
        raise DataError(f"{path}: split(s) {missing} lack the protein_sequence column")
    # The column decides: a dataset saved before `with_protein` existed has neither the column nor the key.
    metadata.with_protein = all(has_protein.values())
    return dataset_dict, metadata


__all__ = [
    "METADATA_FILE",
    "SPLIT_NAMES",
    "DatasetMetadata",
    "SplitSpec",
    "atomic_output_dir",
    "build_dataset_dict",
    "chromosome_key",
    "dataset_from_records",
    "expression_features",
    "joint_label_transform",
    "label_statistics",
    "load_dataset_dir",
    "save_dataset",
    "scratch_dir_beside",
    "split_by_chromosome",
    "split_by_gene",
]
