"""What prediction reads: examples (an id, a sequence, optionally per-gene features and a protein) from strings,
records and files, and how they are made to fit a model.

Files are read only through `expression_perceiver.data`, one record at a time (a FASTA of any size streams):

- FASTA, plain, gzip or bgzip (`read_fasta`; the id is the header's first word);
- a sequence table, TSV or CSV, optionally gzip, with id and sequence columns (`iter_table_rows`), and optionally
  feature columns and a protein column;
- an Xpresso HDF5 file (`read_xpresso_h5`), cut to a window of its 20,000 bases (3000..13500 by default, as
  `prepare xpresso` does), with its half-life features;
- a prepared dataset folder (`load_dataset_dir`): one split, `test` by default, or all three;
- promoter windows of a BED file cut from a genome FASTA (`read_promoter_bed`, `Genome`, `iter_window_sequences`):
  strand-aware, `chr` aliases resolved, N beyond chromosome ends, cut to the same window as `prepare genome`.

Per-gene features can come from a feature table matched by id (`read_feature_table`), and proteins for the
Protein&DNAPerceiver from a protein table matched by gene id (`read_protein_table`).

`InputPreparer` then fits each example to the model: a sequence longer than the model reads (its
`max_sequence_length`) is cropped, by default to its first positions (what `prepare --max-length` and the
ProteinPerceiver's 6,000-residue limit do); a shorter one is read at its own length, right-padded with [PAD] and
masked out of attention and convolutions, as the training collator pads; letters are checked against the model's
alphabet; a missing feature vector is an error, or filled on request. Everything it changes is counted.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..data import load_dataset_dir
from ..data.errors import DataError, ReadReport, file_label
from ..data.genome import Genome, iter_window_sequences, read_promoter_bed, select_genome_windows
from ..data.tables import (
    ProteinTable,
    SequenceChecker,
    iter_table_rows,
    open_text,
    parse_features,
    read_fasta,
    read_feature_table,
    read_protein_table,
)
from ..data.xpresso import XPRESSO_BEST_WINDOW, XpressoH5File, check_window
from ..formats import CROP_RULES, DATASET_SPLITS, INPUT_KINDS

InputKind = Literal["auto", "fasta", "table", "xpresso", "dataset", "genome"]
CropRule = Literal["start", "center", "end"]

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa", ".fas", ".ffn", ".frn", ".mpfa")
TABLE_SUFFIXES = (".tsv", ".csv", ".tab", ".txt")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
COMPRESSION_SUFFIXES = (".gz", ".bgz", ".bgzf")


@dataclass(frozen=True)
class Example:
    """One input of a model: `sequence` is the promoter (DNA models) or the protein (ProteinPerceiver);
    `protein_sequence` the gene's protein beside its promoter (Protein&DNAPerceiver); `features` the per-gene
    feature vector (e.g. Xpresso's 8 mRNA half-life features) when the model reads one. `features_filled` marks
    features that were missing and filled in."""

    id: str
    sequence: str
    features: tuple[float, ...] | None = None
    protein_sequence: str | None = None
    features_filled: bool = False


def example_from(item: Any, position: int) -> Example:
    """An `Example` from a string (id `seq<position + 1>`), an `(id, sequence)` pair, a mapping with `sequence`
    and `id` or `gene_id` (optionally `features`, `protein_sequence`), or an `Example`."""
    if isinstance(item, Example):
        return item
    if isinstance(item, str):
        return Example(f"seq{position + 1}", item)
    if isinstance(item, Mapping):
        if "sequence" not in item:
            raise DataError(f"input {position + 1} is a mapping without a 'sequence' (keys: {', '.join(item)})")
        record_id = item.get("id", item.get("gene_id"))
        features = item.get("features")
        return Example(
            str(record_id) if record_id is not None else f"seq{position + 1}",
            item["sequence"],
            tuple(float(value) for value in features) if features is not None else None,
            item.get("protein_sequence"),
        )
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(value, str) for value in item):
        return Example(item[0], item[1])
    raise DataError(
        f"input {position + 1} is a {type(item).__name__}; give a sequence string, an (id, sequence) pair, a "
        "mapping with 'sequence', or an Example"
    )


def examples_from(items: Iterable[Any]) -> Iterator[Example]:
    """`example_from` over an iterable of inputs, lazily."""
    for position, item in enumerate(items):
        yield example_from(item, position)


def _bare_suffix(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def detect_kind(path: Path) -> str:
    """`dataset` for a folder, else by the name (compression suffixes aside), else `fasta` when the first line
    starts with `>` and `table` otherwise."""
    if path.is_dir():
        return "dataset"
    if not path.exists():
        raise DataError(f"{file_label(path)}: file not found ({path})")
    suffix = _bare_suffix(path)
    if suffix in HDF5_SUFFIXES:
        return "xpresso"
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in TABLE_SUFFIXES:
        return "table"
    with open_text(path) as handle:
        try:
            first = next((line for line in handle if line.strip()), "")
        except (UnicodeDecodeError, OSError, EOFError) as error:
            raise DataError(f"{file_label(path)}: cannot be read as text ({error})") from None
    return "fasta" if first.lstrip().startswith(">") else "table"


@dataclass
class InputFile:
    """Where examples come from and how to read them (see the module docstring for each kind).

    Args:
        path: the FASTA, table, HDF5 file or dataset folder; None for `bed` + `genome`.
        kind: `auto` (from the path), `fasta`, `table`, `xpresso`, `dataset` or `genome`.
        id_column, sequence_column: columns of a table.
        feature_columns: feature columns of a table (in the model's feature order).
        protein_sequence_column: a table's column of proteins (Protein&DNAPerceiver).
        split: the split of a dataset folder to read: `train`, `validation`, `test` or `all` (in that order).
        window: (start, end) indices kept of each Xpresso HDF5 promoter or BED window, None for all of it.
        bed, genome: promoter windows (chrom, start, end, gene_id, score, strand) and the genome FASTA.
    """

    path: str | os.PathLike | None = None
    kind: InputKind = "auto"
    id_column: str = "gene_id"
    sequence_column: str = "sequence"
    feature_columns: Sequence[str] = ()
    protein_sequence_column: str | None = None
    split: str = "test"
    window: tuple[int, int] | None = XPRESSO_BEST_WINDOW
    bed: str | os.PathLike | None = None
    genome: str | os.PathLike | None = None
    report: ReadReport = field(init=False)

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {', '.join(INPUT_KINDS)}, not {self.kind!r}")
        if (self.bed is None) != (self.genome is None):
            raise DataError("promoter windows need both a BED file (--bed) and a genome FASTA (--genome)")
        if self.bed is not None:
            if self.path is not None:
                raise DataError("give either an input file or --bed with --genome, not both")
            self.kind = "genome"
        elif self.path is None:
            raise DataError("no input: give a FASTA, table, HDF5 file or dataset folder, or --bed with --genome")
        else:
            self.path = Path(self.path)
            if self.kind == "auto":
                self.kind = detect_kind(self.path)
        if self.split not in DATASET_SPLITS:
            raise DataError(f"split must be one of {', '.join(DATASET_SPLITS)}, not {self.split!r}")
        if self.window is not None:
            self.window = check_window(self.window)
        self.report = ReadReport(self.name)

    @property
    def name(self) -> str:
        if self.kind == "genome":
            return f"{file_label(self.genome)} + {file_label(self.bed)}"
        return file_label(self.path)

    def describe(self) -> dict[str, Any]:
        """What was read, for the sidecar JSON."""
        described: dict[str, Any] = {"kind": self.kind}
        if self.kind == "genome":
            described.update(bed=str(self.bed), genome=str(self.genome), window=self.window)
        else:
            described["path"] = str(self.path)
        if self.kind == "table":
            described.update(id_column=self.id_column, sequence_column=self.sequence_column)
            if self.feature_columns:
                described["feature_columns"] = list(self.feature_columns)
            if self.protein_sequence_column:
                described["protein_sequence_column"] = self.protein_sequence_column
        if self.kind == "dataset":
            described["split"] = self.split
        if self.kind == "xpresso":
            described["window"] = self.window
        return described

    def count(self) -> int | None:
        """How many examples the input holds when that is known without reading it (HDF5, dataset), else None."""
        if self.kind == "xpresso":
            with XpressoH5File(self.path) as xpresso_file:
                return xpresso_file.num_rows
        if self.kind == "dataset":
            dataset_dict, _ = load_dataset_dir(self.path)
            return sum(len(dataset_dict[name]) for name in self._dataset_splits())
        return None

    def _dataset_splits(self) -> list[str]:
        return ["train", "validation", "test"] if self.split == "all" else [self.split]

    def examples(self) -> Iterator[Example]:
        """Streams the examples of the input; `report` counts them and what was dropped or noted."""
        readers = {
            "fasta": self._fasta,
            "table": self._table,
            "xpresso": self._xpresso,
            "dataset": self._dataset,
            "genome": self._genome,
        }
        counts_itself = self.kind == "genome"  # `iter_window_sequences` counts its windows in the report
        for example in readers[self.kind]():
            if not counts_itself:
                self.report.records += 1
            yield example

    def _fasta(self) -> Iterator[Example]:
        for record in read_fasta(self.path):
            yield Example(record.id, record.sequence)

    def _table(self) -> Iterator[Example]:
        name = file_label(self.path)
        protein = [self.protein_sequence_column] if self.protein_sequence_column else []
        required = [self.id_column, self.sequence_column, *self.feature_columns, *protein]
        for line, row in iter_table_rows(self.path, required):
            record_id = row[self.id_column].strip()
            if not record_id:
                raise DataError(f"{name}: line {line} has an empty {self.id_column!r}")
            where = f"{name}: line {line} (id {record_id})"
            features = parse_features(row, self.feature_columns, where) if self.feature_columns else None
            yield Example(
                record_id,
                row[self.sequence_column],
                tuple(features) if features is not None else None,
                row[self.protein_sequence_column] if self.protein_sequence_column else None,
            )

    def _xpresso(self) -> Iterator[Example]:
        with XpressoH5File(self.path) as xpresso_file:
            has_features = xpresso_file.features.shape[1] > 0
            for record in xpresso_file.iter_records(self.window or (0, xpresso_file.promoter.shape[1])):
                features = tuple(record["features"]) if has_features else None
                yield Example(record["gene_id"], record["sequence"], features)

    def _dataset(self) -> Iterator[Example]:
        dataset_dict, metadata = load_dataset_dir(self.path)
        columns = ["gene_id", "sequence"]
        if metadata.num_features:
            columns.append("features")
        if metadata.with_protein:
            columns.append("protein_sequence")
        for split in self._dataset_splits():
            for rows in dataset_dict[split].select_columns(columns).iter(batch_size=256):
                for row in range(len(rows["gene_id"])):
                    features = rows["features"][row] if metadata.num_features else None
                    yield Example(
                        rows["gene_id"][row],
                        rows["sequence"][row],
                        tuple(float(value) for value in features) if features is not None else None,
                        rows["protein_sequence"][row] if metadata.with_protein else None,
                    )

    def _genome(self) -> Iterator[Example]:
        windows = read_promoter_bed(self.bed)
        with Genome(self.genome) as genome:
            selected = select_genome_windows(windows, genome, self.report)
            for window, sequence in iter_window_sequences(genome, selected, self.window, self.report):
                yield Example(window.gene_id, sequence)


@dataclass(frozen=True)
class FeatureTable:
    """Per-gene features from a TSV/CSV table, matched to examples by id."""

    path: str | os.PathLike
    id_column: str = "gene_id"
    columns: Sequence[str] = ()

    def read(self) -> dict[str, list[float]]:
        if not self.columns:
            raise DataError(f"{file_label(self.path)}: name the feature columns to read (--feature-columns)")
        return read_feature_table(self.path, self.id_column, list(self.columns))


def default_feature_columns(
    path: str | os.PathLike, id_column: str, width: int, feature_names: Sequence[str] | None = None
) -> list[str]:
    """The feature columns of a table when none are named: the checkpoint's feature names when the table has them
    all, else every column but the id when they are as many as the model reads."""
    header = next((list(row) for _line, row in iter_table_rows(path, [id_column])), None)
    if header is None:
        raise DataError(f"{file_label(path)}: no rows")
    if feature_names and set(feature_names) <= set(header):
        return list(feature_names)
    others = [column for column in header if column != id_column]
    if len(others) != width:
        raise DataError(
            f"{file_label(path)}: {len(others)} columns besides {id_column!r} ({', '.join(others)}), the model reads "
            f"{width} features: name them, in the model's order, with --feature-columns"
        )
    return others


@dataclass(frozen=True)
class ProteinSource:
    """Proteins by gene id from a TSV/CSV table (`read_protein_table`), joined onto promoters."""

    path: str | os.PathLike
    id_column: str = "gene_id"
    sequence_column: str = "sequence"

    def read(self) -> ProteinTable:
        # Not truncated here: the model's own limit crops them, and the crop is counted.
        return read_protein_table(
            self.path, id_column=self.id_column, sequence_column=self.sequence_column, max_length=None
        )


def join_inputs(
    examples: Iterable[Example],
    report: ReadReport,
    features: Mapping[str, Sequence[float]] | None = None,
    features_source: str = "the feature table",
    proteins: ProteinTable | None = None,
) -> Iterator[Example]:
    """Examples with their features (from `features` by id, replacing any the input carried) and proteins (from
    `proteins` by gene id); an example whose gene has no protein is dropped and counted in `report`."""
    for example in examples:
        if features is not None:
            row = features.get(example.id)
            example = replace(example, features=tuple(row) if row is not None else None)
        if proteins is not None:
            protein = proteins.proteins.get(example.id)
            if protein is None:
                report.drop(f"no protein in {proteins.source}", example.id)
                continue
            example = replace(example, protein_sequence=protein.sequence)
        yield example


@dataclass(frozen=True)
class ModelInputs:
    """What the models of a predictor read: the alphabet and longest input of the main sequence, the width of the
    feature vector, the longest protein (None when no protein is read), and the values that fill missing features
    (None: filling is impossible)."""

    alphabet: str
    max_length: int
    num_features: int = 0
    protein_max_length: int | None = None
    feature_fill: tuple[float, ...] | None = None
    feature_fill_source: str = ""


def crop_sequence(sequence: str, length: int, rule: CropRule = "start") -> str:
    """`sequence` cut to `length` positions: its first (`start`), central (`center`, extra position dropped at the
    end) or last (`end`) ones; a sequence not longer is returned as it is."""
    if len(sequence) <= length:
        return sequence
    if rule == "start":
        return sequence[:length]
    if rule == "end":
        return sequence[len(sequence) - length :]
    if rule == "center":
        start = (len(sequence) - length) // 2
        return sequence[start : start + length]
    raise ValueError(f"crop rule must be one of {', '.join(CROP_RULES)}, not {rule!r}")


class InputPreparer:
    """Fits examples to a model (see the module docstring) and counts what it changed:

    - `records`: examples prepared;
    - `cropped` / `protein_cropped`: sequences / proteins longer than the model reads, cropped by `crop`;
    - `padded` / `protein_padded`: shorter than the model's `max_sequence_length`: read at their own length,
      right-padded with [PAD] and masked, as in training (no N added);
    - `features_filled`: missing features filled (with `fill_missing_features`);
    - `features_ignored`: features given to a model that reads none;
    - `all_n` (DNA models): sequences with no known base (every letter N): scored all the same, and noted, since
      their prediction says nothing of a promoter;
    - `repeated_ids` (with `count_repeated_ids`): examples whose id an earlier example had: scored all the same (each
      row is its own input), and noted, since a table joined by id would mix them up.
    """

    def __init__(
        self,
        inputs: ModelInputs,
        crop: CropRule = "start",
        fill_missing_features: bool = False,
        source: str = "input",
        report: ReadReport | None = None,
        count_repeated_ids: bool = False,
    ):
        if crop not in CROP_RULES:
            raise ValueError(f"crop rule must be one of {', '.join(CROP_RULES)}, not {crop!r}")
        if fill_missing_features and inputs.num_features and inputs.feature_fill is None:
            raise ValueError("the models read features but give no values to fill missing ones with")
        self.inputs = inputs
        self.crop = crop
        self.fill_missing_features = fill_missing_features
        self.source = source
        self.report = report if report is not None else ReadReport(source)
        self.counts: Counter[str] = Counter()
        self.checker = SequenceChecker(inputs.alphabet)
        self.protein_checker = SequenceChecker("protein") if inputs.protein_max_length is not None else None
        self.seen_ids: set[str] | None = set() if count_repeated_ids else None

    def counts_dict(self) -> dict[str, int]:
        keys = ("records", "cropped", "padded", "features_filled", "features_ignored")
        if self.inputs.protein_max_length is not None:
            keys += ("protein_cropped", "protein_padded")
        if self.inputs.alphabet == "dna":
            keys += ("all_n",)
        if self.seen_ids is not None:
            keys += ("repeated_ids",)
        return {key: int(self.counts[key]) for key in keys}

    def _fit(self, sequence: str, checker: SequenceChecker, limit: int, where: str, kind: str, record_id: str) -> str:
        sequence = sequence.strip()
        if checker.alphabet == "protein" and sequence.endswith("*"):
            sequence = sequence[:-1]
        checker.token_ids(sequence, where)  # an invalid letter is a DataError naming the record and position
        if len(sequence) > limit:
            self.counts[f"{kind}cropped"] += 1
            self.report.note(f"{kind.replace('_', ' ')}cropped to {limit:,} positions ({self.crop})", record_id)
            return crop_sequence(sequence, limit, self.crop)
        if len(sequence) < limit:
            self.counts[f"{kind}padded"] += 1
        return sequence

    def __call__(self, example: Example) -> Example:
        where = f"{self.source}: record {example.id!r}"
        sequence = self._fit(example.sequence, self.checker, self.inputs.max_length, where, "", example.id)
        if self.inputs.alphabet == "dna" and sequence and not sequence.upper().strip("N"):
            self.counts["all_n"] += 1
            self.report.note("sequence all N (no known base), scored", example.id)
        if self.seen_ids is not None:
            if example.id in self.seen_ids:
                self.counts["repeated_ids"] += 1
                self.report.note("id repeated (an earlier record has it), scored", example.id)
            else:
                self.seen_ids.add(example.id)
        protein = example.protein_sequence
        if self.inputs.protein_max_length is not None:
            if not protein:
                raise DataError(
                    f"{where} has no protein sequence; this model reads a protein beside the promoter (give a table "
                    "with a protein column, a dataset with proteins, or a protein table)"
                )
            limit = self.inputs.protein_max_length
            protein = self._fit(protein, self.protein_checker, limit, f"{where} protein", "protein_", example.id)
        features, filled = self._features(example, where)
        self.counts["records"] += 1
        return replace(example, sequence=sequence, protein_sequence=protein, features=features, features_filled=filled)

    def _features(self, example: Example, where: str) -> tuple[tuple[float, ...] | None, bool]:
        width = self.inputs.num_features
        if not width:
            if example.features:
                self.counts["features_ignored"] += 1
            return None, False
        if example.features is None:
            if not self.fill_missing_features:
                raise DataError(
                    f"{where} has no features; the model reads {width} per-gene features (give a feature table, "
                    "or pass --fill-missing-features to fill them with "
                    f"{self.inputs.feature_fill_source or 'the models fill values'})"
                )
            self.counts["features_filled"] += 1
            self.report.note("features filled", example.id)
            return self.inputs.feature_fill, True
        if len(example.features) != width:
            raise DataError(f"{where} has {len(example.features)} features; the model reads {width}")
        return tuple(float(value) for value in example.features), False


__all__ = [
    "CROP_RULES",
    "DATASET_SPLITS",
    "INPUT_KINDS",
    "Example",
    "FeatureTable",
    "InputFile",
    "InputPreparer",
    "ModelInputs",
    "ProteinSource",
    "crop_sequence",
    "detect_kind",
    "example_from",
    "examples_from",
    "default_feature_columns",
    "join_inputs",
]
