"""What `expression-perceiver prepare ...` does (its arguments, and their translation into the options below:
`cli/prepare.py`): biologists' files to a saved `datasets.DatasetDict` (and Xpresso HDF5).

Sources:
    xpresso  a folder with train.h5 / valid.h5 / test.h5 -> dataset (the files' own splits): `prepare_xpresso`
    genome   genome FASTA + promoter BED + labels [+ half-life features] -> dataset and/or Xpresso HDF5 files:
             `prepare_genome` with a `GenomeSource`
    table    TSV/CSV with id, sequence and label columns -> dataset: `prepare_table` with a `TableSource`; with a
             `ProteinTableSource`, promoters joined by gene id with their proteins (and optionally protein labels)
             -> a dataset for the Protein&DNAPerceiver
    fasta    FASTA + label table joined by id -> dataset: `prepare_fasta` with a `FastaSource`

Labels are read as a `LabelSpec` says and split as a `SplitSpec` says. Outputs are written atomically: into a
temporary folder beside the target, renamed at the end; after an error nothing half-written is left. Bad input is a
`DataError`, an existing output without `overwrite` a `FileExistsError` (checked before any work). Each function
prints what it wrote.
"""

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..formats import DEFAULT_PROTEIN_MAX_LENGTH, XPRESSO_BEST_WINDOW, XPRESSO_FEATURE_NAMES, XPRESSO_FULL_WINDOW
from .dataset_dict import (
    SPLIT_NAMES,
    DatasetMetadata,
    SplitSpec,
    atomic_output_dir,
    build_dataset_dict,
    joint_label_transform,
    save_dataset,
    scratch_dir_beside,
    split_by_chromosome,
    split_by_gene,
)
from .errors import DataError, ReadReport, file_label
from .genome import Genome, PromoterWindow, iter_promoter_records, read_promoter_bed, select_promoter_windows
from .tables import (
    Alphabet,
    LabelSpec,
    ProteinTable,
    read_fasta_with_labels,
    read_feature_table,
    read_label_table,
    read_protein_table,
    read_sequence_table,
)
from .xpresso import (
    XPRESSO_SPLIT_FILES,
    XpressoH5File,
    XpressoH5Writer,
    read_xpresso_h5,
    xpresso_split_files,
)

Window = tuple[int, int]  # (start, end) indices into the 20,000-base Xpresso window, TSS at 10,000
DEFAULT_SPLIT = SplitSpec()  # random by gene, 80/10/10, seed 0: `prepare`'s default


@dataclass(frozen=True)
class TableSource:
    """A TSV/CSV table (optionally gzip) of ids, sequences and labels in named columns, and how to read it.

    `max_length` truncates longer sequences (counted in the report); None keeps every sequence whole.
    """

    path: Path
    alphabet: Alphabet
    id_column: str = "gene_id"
    sequence_column: str = "sequence"
    labels: LabelSpec = LabelSpec()
    feature_columns: tuple[str, ...] = ()
    chrom_column: str | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class ProteinTableSource:
    """A TSV/CSV table of proteins by gene id to join onto a promoter `TableSource` (see `read_protein_table`).

    With `labels`, each protein's label(s) become outputs after the promoter labels. `max_length` truncates longer
    proteins (counted in the report); None keeps every protein whole.
    """

    path: Path
    id_column: str = "gene_id"
    sequence_column: str = "sequence"
    labels: LabelSpec | None = None
    max_length: int | None = DEFAULT_PROTEIN_MAX_LENGTH

    def read(self) -> ProteinTable:
        return read_protein_table(
            self.path,
            id_column=self.id_column,
            sequence_column=self.sequence_column,
            labels=self.labels,
            max_length=self.max_length,
        )


@dataclass(frozen=True)
class GenomeSource:
    """Promoter windows cut from a genome FASTA at the windows of a BED file, with labels by gene id from
    `label_table` and, with `half_life`, mRNA half-life features by gene id from that table's `half_life_columns`."""

    genome: Path
    bed: Path
    label_table: Path
    id_column: str = "gene_id"
    labels: LabelSpec = LabelSpec()
    half_life: Path | None = None
    half_life_columns: tuple[str, ...] = XPRESSO_FEATURE_NAMES


@dataclass(frozen=True)
class FastaSource:
    """A FASTA file (the id is the header's first word) joined by id with a TSV/CSV table of labels (and optionally
    numeric feature columns). `max_length` truncates longer sequences; None keeps every sequence whole."""

    path: Path
    label_table: Path
    alphabet: Alphabet
    id_column: str = "gene_id"
    labels: LabelSpec = LabelSpec()
    feature_columns: tuple[str, ...] = ()
    max_length: int | None = None


def _check_writable(path: Path | None, overwrite: bool) -> None:
    """Fails before any work when an output exists and is not to be replaced."""
    if path is not None and path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")


def _print_summary(metadata: DatasetMetadata, output: Path, reports: Sequence[ReadReport]) -> None:
    counts = "  ".join(f"{name} {metadata.counts[name]:,}" for name in SPLIT_NAMES)
    print(f"wrote {output}: {counts}")
    mean, std = np.round(metadata.label_mean, 4).tolist(), np.round(metadata.label_std, 4).tolist()
    print(
        f"  label {', '.join(metadata.label_names)} (transform {metadata.label_transform}): train mean {mean}, "
        f"std {std}"
    )
    if metadata.feature_names:
        print(f"  features: {metadata.num_features} ({', '.join(metadata.feature_names)})")
    for report in reports:
        for line in report.summary_lines():
            print(f"  {line}")


def _build_and_save(records, output: Path, overwrite: bool, reports: Sequence[ReadReport], **build_options) -> None:
    with scratch_dir_beside(output) as cache_dir:
        dataset_dict, metadata = build_dataset_dict(records, cache_dir=cache_dir, reports=reports, **build_options)
        save_dataset(dataset_dict, metadata, output, overwrite)
    _print_summary(metadata, output, reports)


def _check_xpresso_gene_ids(paths: dict[str, Path], gene_ids: dict[str, list[str]]) -> None:
    """A gene in two of the given splits would be tested on what it was trained on: refuse. A gene repeated within
    one file is kept (its rows stay in that split) and reported."""
    splits = list(paths)
    for i, first in enumerate(splits):
        for second in splits[i + 1 :]:
            shared = sorted(set(gene_ids[first]) & set(gene_ids[second]))
            if shared:
                more = ", ..." if len(shared) > 3 else ""
                raise DataError(
                    f"{paths[first].name} and {paths[second].name}: {len(shared):,} gene(s) in both (key 'geneName', "
                    f"first: {', '.join(shared[:3])}{more}); a split must not share genes with another"
                )
    for split, ids in gene_ids.items():
        counts = Counter(ids)
        repeated = [gene for gene, count in counts.items() if count > 1]
        if repeated:
            print(
                f"  {paths[split].name}: {len(repeated):,} gene id(s) repeated within the file (kept in that split; "
                f"first: {', '.join(repeated[:3])})"
            )


def prepare_xpresso(
    folder: Path, output: Path, *, window: Window | None = XPRESSO_BEST_WINDOW, overwrite: bool = False
) -> None:
    """Writes the dataset of a folder of Xpresso train.h5 / valid.h5 / test.h5, keeping those splits and the
    promoter indices `window` (None for the whole 20,000 bases)."""
    _check_writable(output, overwrite)
    window = window or XPRESSO_FULL_WINDOW
    folder = Path(folder)
    paths = xpresso_split_files(folder)
    # Open all three first: a structural problem in any file stops before anything is written.
    feature_names, gene_ids = {}, {}
    for split, path in paths.items():
        with XpressoH5File(path) as xpresso_file:
            feature_names[split] = xpresso_file.feature_names
            gene_ids[split] = xpresso_file.gene_ids
    _check_xpresso_gene_ids(paths, gene_ids)
    if len({len(names) for names in feature_names.values()}) > 1:
        widths = ", ".join(f"{paths[split].name} {len(names)}" for split, names in feature_names.items())
        raise DataError(f"{folder}: the files' key 'data' have different numbers of columns ({widths})")
    records = {split: (lambda path=path: read_xpresso_h5(path, window)) for split, path in paths.items()}
    _build_and_save(
        records,
        output,
        overwrite,
        reports=[],
        alphabet="dna",
        source=f"Xpresso HDF5 files in {folder.name or folder} (promoter indices {window[0]}..{window[1]})",
        feature_names=feature_names["train"],
        split=SplitSpec(method="given"),
    )


def prepare_genome(
    source: GenomeSource,
    output: Path | None = None,
    *,
    h5_dir: Path | None = None,
    window: Window | None = XPRESSO_BEST_WINDOW,
    split: SplitSpec = DEFAULT_SPLIT,
    overwrite: bool = False,
) -> None:
    """Cuts the promoter windows of `source` from its genome and writes them as a dataset to `output` (cropped to
    `window`; None keeps the whole 20,000 bases) and/or as Xpresso train/valid/test HDF5 files (whole windows) to
    `h5_dir`, both split by `split`."""
    if output is None and h5_dir is None:
        raise DataError("nothing to write: pass --output and/or --h5-dir")
    _check_writable(output, overwrite)
    _check_writable(h5_dir, overwrite)
    report = ReadReport(f"{file_label(source.genome)} + {file_label(source.bed)}")
    labels = read_label_table(source.label_table, source.id_column, source.labels, report=report)
    half_life = (
        read_feature_table(source.half_life, source.id_column, source.half_life_columns) if source.half_life else None
    )
    windows = read_promoter_bed(source.bed)
    with Genome(source.genome) as genome:
        selected = select_promoter_windows(
            windows,
            genome,
            labels,
            half_life,
            report,
            labels_name=file_label(source.label_table),
            half_life_name=file_label(source.half_life) if source.half_life else "",
        )
        if h5_dir is not None:
            # The dataset pass, if any, counts into the report; this pass must not count twice.
            h5_report = ReadReport(report.source) if output is not None else report
            records = iter_promoter_records(genome, selected, labels, half_life, None, h5_report)
            _write_xpresso_splits(records, selected, split, file_label(source.bed), h5_dir, overwrite)
        if output is not None:
            _build_and_save(
                lambda: iter_promoter_records(genome, selected, labels, half_life, window, report),
                output,
                overwrite,
                reports=[report],
                alphabet="dna",
                source=f"genome {file_label(source.genome)}, promoters {file_label(source.bed)}, "
                f"labels {file_label(source.label_table)}" + (f" (window {window[0]}..{window[1]})" if window else ""),
                label_names=source.labels.columns,
                label_transform=source.labels.transform,
                feature_names=source.half_life_columns if half_life is not None else (),
                with_chrom=True,
                split=split,
            )
        else:
            report.log()
            for line in report.summary_lines():
                print(f"  {line}")


def _xpresso_split_names(selected: list[PromoterWindow], split: SplitSpec, bed_name: str) -> list[str]:
    """The split of each selected window, as the dataset splits them."""
    if split.method == "random":
        return split_by_gene([window.gene_id for window in selected], split.fractions, split.seed)
    try:
        return split_by_chromosome(
            [window.chrom for window in selected], split.validation_chromosomes, split.test_chromosomes
        )
    except DataError as error:
        raise DataError(f"{bed_name}: {error}") from None


def _write_xpresso_splits(
    records: Iterator[dict[str, Any]],
    selected: list[PromoterWindow],
    split: SplitSpec,
    bed_name: str,
    h5_dir: Path,
    overwrite: bool,
) -> None:
    """Writes the full 20,000-base windows (`records`, one per selected window) as Xpresso train/valid/test files,
    split like the dataset."""
    split_names = _xpresso_split_names(selected, split, bed_name)
    with atomic_output_dir(h5_dir, overwrite) as partial:
        writers = {name: XpressoH5Writer(partial / XPRESSO_SPLIT_FILES[name]) for name in SPLIT_NAMES}
        try:
            for record, split_name in zip(records, split_names, strict=True):
                writers[split_name].add(record)
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        for writer in writers.values():
            writer.close()
    counts = "  ".join(f"{XPRESSO_SPLIT_FILES[name]} {writers[name].num_rows:,}" for name in SPLIT_NAMES)
    print(f"wrote {h5_dir}: {counts}")


def _joined_labels(labels_spec: LabelSpec, proteins: ProteinTable | None) -> tuple[list[str], str]:
    """Label names and transform of the promoter labels followed by the protein labels (renamed `protein_<column>`
    when a promoter label has the same name)."""
    names, transforms = list(labels_spec.columns), [labels_spec.transform] * len(labels_spec.columns)
    if proteins is not None and proteins.labels is not None:
        for column in proteins.label_columns:
            names.append(f"protein_{column}" if column in names else column)
            transforms.append(proteins.labels.transform)
    return names, joint_label_transform(names, transforms)


def _describe_table(source: TableSource, proteins: ProteinTableSource | None) -> str:
    """The dataset's `source` text: the table, and the proteins joined onto it."""
    text = f"table {file_label(source.path)} (ids {source.id_column}, sequences {source.sequence_column})"
    if proteins is not None:
        text += (
            f" joined by gene id with proteins {file_label(proteins.path)} (ids {proteins.id_column}, sequences "
            f"{proteins.sequence_column})"
        )
    return text


def table_dataset(
    source: TableSource,
    cache_dir: Path,
    *,
    split: SplitSpec = DEFAULT_SPLIT,
    proteins: ProteinTableSource | None = None,
) -> tuple[datasets.DatasetDict, DatasetMetadata, list[ReadReport]]:
    """The dataset `prepare_table` writes, built in `cache_dir` from a table (and the proteins to join onto it),
    split by `split`: `baseline --table` fits on exactly this, so the two never read or split a table apart."""
    protein_table = proteins.read() if proteins is not None else None
    label_names, label_transform = _joined_labels(source.labels, protein_table)
    report = ReadReport(file_label(source.path))
    reports = [report] if protein_table is None else [report, protein_table.report]
    dataset_dict, metadata = build_dataset_dict(
        lambda: read_sequence_table(
            source.path,
            alphabet=source.alphabet,
            id_column=source.id_column,
            sequence_column=source.sequence_column,
            labels=source.labels,
            feature_columns=source.feature_columns,
            chrom_column=source.chrom_column,
            max_length=source.max_length,
            report=report,
            proteins=protein_table,
        ),
        cache_dir=cache_dir,
        reports=reports,
        alphabet=source.alphabet,
        source=_describe_table(source, proteins),
        label_names=label_names,
        label_transform=label_transform,
        feature_names=source.feature_columns,
        with_chrom=source.chrom_column is not None,
        with_protein=protein_table is not None,
        split=split,
    )
    return dataset_dict, metadata, reports


def prepare_table(
    source: TableSource,
    output: Path,
    *,
    split: SplitSpec = DEFAULT_SPLIT,
    proteins: ProteinTableSource | None = None,
    overwrite: bool = False,
) -> None:
    """Writes the dataset of a sequence table (with `proteins` joined onto it by gene id) to `output`."""
    _check_writable(output, overwrite)
    with scratch_dir_beside(output) as cache_dir:
        dataset_dict, metadata, reports = table_dataset(source, cache_dir, split=split, proteins=proteins)
        save_dataset(dataset_dict, metadata, output, overwrite)
    _print_summary(metadata, output, reports)


def prepare_fasta(
    source: FastaSource, output: Path, *, split: SplitSpec = DEFAULT_SPLIT, overwrite: bool = False
) -> None:
    """Writes the dataset of a FASTA file joined by id with its label table to `output`."""
    _check_writable(output, overwrite)
    report = ReadReport(f"{file_label(source.path)} + {file_label(source.label_table)}")
    _build_and_save(
        lambda: read_fasta_with_labels(
            source.path,
            source.label_table,
            alphabet=source.alphabet,
            id_column=source.id_column,
            labels=source.labels,
            feature_columns=source.feature_columns,
            max_length=source.max_length,
            report=report,
        ),
        output,
        overwrite,
        reports=[report],
        alphabet=source.alphabet,
        source=f"FASTA {file_label(source.path)}, labels {file_label(source.label_table)} (ids {source.id_column})",
        label_names=source.labels.columns,
        label_transform=source.labels.transform,
        feature_names=source.feature_columns,
        split=split,
    )


__all__ = [
    "DEFAULT_SPLIT",
    "FastaSource",
    "GenomeSource",
    "ProteinTableSource",
    "TableSource",
    "Window",
    "prepare_fasta",
    "prepare_genome",
    "prepare_table",
    "prepare_xpresso",
    "table_dataset",
]
