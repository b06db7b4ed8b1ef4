"""What `expression-perceiver prepare ...` does (its arguments: `cli/prepare.py`): biologists' files to a saved
`datasets.DatasetDict` (and Xpresso HDF5).

Subcommands:
    xpresso  a folder with train.h5 / valid.h5 / test.h5 -> dataset (the files' own splits)
    genome   genome FASTA + promoter BED + labels [+ half-life features] -> dataset and/or Xpresso HDF5 files
    table    TSV/CSV with id, sequence and label columns -> dataset; with --protein-table, promoters joined by gene
             id with their proteins (and optionally protein labels) -> a dataset for the Protein&DNAPerceiver
    fasta    FASTA + label table joined by id -> dataset

Outputs are written atomically: into a temporary folder beside the target, renamed at the end; after an error
nothing half-written is left. Bad input ends with one line on stderr and exit code 2.
"""

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np

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
    DEFAULT_PROTEIN_MAX_LENGTH,
    LabelRow,
    LabelSpec,
    ProteinTable,
    read_fasta_with_labels,
    read_feature_table,
    read_label_table,
    read_protein_table,
    read_sequence_table,
)
from .xpresso import (
    XPRESSO_FULL_WINDOW,
    XPRESSO_SPLIT_FILES,
    XpressoH5File,
    XpressoH5Writer,
    read_xpresso_h5,
    xpresso_split_files,
)


def _window(args: argparse.Namespace) -> tuple[int, int] | None:
    """The window to keep, or None for the whole one."""
    if args.full_window:
        return None
    start, end = args.window
    if not 0 <= start < end <= XPRESSO_FULL_WINDOW[1]:
        raise DataError(f"--window {start} {end}: must satisfy 0 <= START < END <= {XPRESSO_FULL_WINDOW[1]:,}")
    return start, end


def _label_spec(args: argparse.Namespace) -> LabelSpec:
    if args.pseudocount and not args.log10:
        raise DataError("--pseudocount is only used with --log10")
    return LabelSpec(tuple(args.label_column or ["label"]), args.log10, args.pseudocount, args.drop_missing_labels)


def _split_spec(args: argparse.Namespace) -> SplitSpec:
    try:
        return SplitSpec(
            method=args.split,
            fractions=tuple(args.fractions),
            seed=args.seed,
            validation_chromosomes=tuple(args.validation_chromosomes),
            test_chromosomes=tuple(args.test_chromosomes),
        )
    except ValueError as error:
        raise DataError(f"split options: {error}") from None


def _max_length(args: argparse.Namespace) -> int | None:
    if args.max_length is None:
        return DEFAULT_PROTEIN_MAX_LENGTH if args.alphabet == "protein" else None
    if args.max_length < 0:
        raise DataError(f"--max-length {args.max_length}: must be >= 0 (0 for no limit)")
    return args.max_length or None


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


def prepare_xpresso(args: argparse.Namespace) -> None:
    _check_writable(args.output, args.overwrite)
    window = _window(args) or XPRESSO_FULL_WINDOW
    folder = Path(args.folder)
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
        args.output,
        args.overwrite,
        reports=[],
        alphabet="dna",
        source=f"Xpresso HDF5 files in {folder.name or folder} (promoter indices {window[0]}..{window[1]})",
        feature_names=feature_names["train"],
        split=SplitSpec(method="given"),
    )


def prepare_genome(args: argparse.Namespace) -> None:
    if args.output is None and args.h5_dir is None:
        raise DataError("nothing to write: pass --output and/or --h5-dir")
    _check_writable(args.output, args.overwrite)
    _check_writable(args.h5_dir, args.overwrite)
    crop = _window(args)
    labels_spec, split = _label_spec(args), _split_spec(args)
    report = ReadReport(f"{file_label(args.genome)} + {file_label(args.bed)}")
    labels = read_label_table(args.labels, args.id_column, labels_spec, report=report)
    half_life = read_feature_table(args.half_life, args.id_column, args.half_life_columns) if args.half_life else None
    windows = read_promoter_bed(args.bed)
    with Genome(args.genome) as genome:
        selected = select_promoter_windows(
            windows,
            genome,
            labels,
            half_life,
            report,
            labels_name=file_label(args.labels),
            half_life_name=file_label(args.half_life) if args.half_life else "",
        )
        if args.h5_dir is not None:
            # The dataset pass, if any, counts into the report; this pass must not count twice.
            h5_report = ReadReport(report.source) if args.output is not None else report
            _write_xpresso_splits(genome, selected, labels, half_life, split, args, h5_report)
        if args.output is not None:
            _build_and_save(
                lambda: iter_promoter_records(genome, selected, labels, half_life, crop, report),
                args.output,
                args.overwrite,
                reports=[report],
                alphabet="dna",
                source=f"genome {file_label(args.genome)}, promoters {file_label(args.bed)}, "
                f"labels {file_label(args.labels)}" + (f" (window {crop[0]}..{crop[1]})" if crop else ""),
                label_names=labels_spec.columns,
                label_transform=labels_spec.transform,
                feature_names=args.half_life_columns if half_life is not None else (),
                with_chrom=True,
                split=split,
            )
        else:
            report.log()
            for line in report.summary_lines():
                print(f"  {line}")


def _write_xpresso_splits(
    genome: Genome,
    selected: list[PromoterWindow],
    labels: dict[str, LabelRow],
    half_life: dict[str, list[float]] | None,
    split: SplitSpec,
    args: argparse.Namespace,
    report: ReadReport,
) -> None:
    """Writes the full 20,000-base windows as Xpresso train/valid/test files, split like the dataset."""
    if split.method == "random":
        split_names = split_by_gene([window.gene_id for window in selected], split.fractions, split.seed)
    else:
        chroms = [window.chrom for window in selected]
        try:
            split_names = split_by_chromosome(chroms, split.validation_chromosomes, split.test_chromosomes)
        except DataError as error:
            raise DataError(f"{file_label(args.bed)}: {error}") from None
    with atomic_output_dir(args.h5_dir, args.overwrite) as partial:
        writers = {name: XpressoH5Writer(partial / XPRESSO_SPLIT_FILES[name]) for name in SPLIT_NAMES}
        try:
            records = iter_promoter_records(genome, selected, labels, half_life, None, report)
            for record, split_name in zip(records, split_names, strict=True):
                writers[split_name].add(record)
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        for writer in writers.values():
            writer.close()
    counts = "  ".join(f"{XPRESSO_SPLIT_FILES[name]} {writers[name].num_rows:,}" for name in SPLIT_NAMES)
    print(f"wrote {args.h5_dir}: {counts}")


def _protein_label_spec(args: argparse.Namespace) -> LabelSpec | None:
    if not args.protein_label_column:
        if args.protein_log10 or args.protein_pseudocount:
            raise DataError("--protein-log10 and --protein-pseudocount need --protein-label-column")
        return None
    if args.protein_pseudocount and not args.protein_log10:
        raise DataError("--protein-pseudocount is only used with --protein-log10")
    return LabelSpec(
        tuple(args.protein_label_column), args.protein_log10, args.protein_pseudocount, args.drop_missing_labels
    )


def _protein_table(args: argparse.Namespace) -> ProteinTable | None:
    """The proteins to join onto the promoter table, or None without --protein-table."""
    if args.protein_table is None:
        if args.protein_label_column or args.protein_log10 or args.protein_pseudocount:
            raise DataError("--protein-label-column, --protein-log10 and --protein-pseudocount need --protein-table")
        return None
    if args.alphabet != "dna":
        raise DataError("--protein-table joins proteins onto promoters: the table needs --alphabet dna")
    if args.protein_max_length < 0:
        raise DataError(f"--protein-max-length {args.protein_max_length}: must be >= 0 (0 for no limit)")
    return read_protein_table(
        args.protein_table,
        id_column=args.protein_id_column,
        sequence_column=args.protein_sequence_column,
        labels=_protein_label_spec(args),
        max_length=args.protein_max_length or None,
    )


def _joined_labels(labels_spec: LabelSpec, proteins: ProteinTable | None) -> tuple[list[str], str]:
    """Label names and transform of the promoter labels followed by the protein labels (renamed `protein_<column>`
    when a promoter label has the same name)."""
    names, transforms = list(labels_spec.columns), [labels_spec.transform] * len(labels_spec.columns)
    if proteins is not None and proteins.labels is not None:
        for column in proteins.label_columns:
            names.append(f"protein_{column}" if column in names else column)
            transforms.append(proteins.labels.transform)
    return names, joint_label_transform(names, transforms)


def table_dataset(
    args: argparse.Namespace, cache_dir: Path, proteins: ProteinTable | None = None
) -> tuple[datasets.DatasetDict, DatasetMetadata, list[ReadReport]]:
    """The dataset `prepare table` writes, built in `cache_dir` from the options of `add_table_arguments` (and
    proteins to join): `baseline --table` fits on exactly this, so the two never read or split a table apart."""
    labels_spec, split, name = _label_spec(args), _split_spec(args), file_label(args.table)
    label_names, label_transform = _joined_labels(labels_spec, proteins)
    report = ReadReport(name)
    source = f"table {name} (ids {args.id_column}, sequences {args.sequence_column})"
    if proteins is not None:
        source += (
            f" joined by gene id with proteins {proteins.source} (ids {args.protein_id_column}, sequences "
            f"{args.protein_sequence_column})"
        )
    reports = [report] if proteins is None else [report, proteins.report]
    dataset_dict, metadata = build_dataset_dict(
        lambda: read_sequence_table(
            args.table,
            alphabet=args.alphabet,
            id_column=args.id_column,
            sequence_column=args.sequence_column,
            labels=labels_spec,
            feature_columns=args.feature_column,
            chrom_column=args.chrom_column,
            max_length=_max_length(args),
            report=report,
            proteins=proteins,
        ),
        cache_dir=cache_dir,
        reports=reports,
        alphabet=args.alphabet,
        source=source,
        label_names=label_names,
        label_transform=label_transform,
        feature_names=args.feature_column,
        with_chrom=args.chrom_column is not None,
        with_protein=proteins is not None,
        split=split,
    )
    return dataset_dict, metadata, reports


def prepare_table(args: argparse.Namespace) -> None:
    _check_writable(args.output, args.overwrite)
    proteins = _protein_table(args)
    with scratch_dir_beside(args.output) as cache_dir:
        dataset_dict, metadata, reports = table_dataset(args, cache_dir, proteins)
        save_dataset(dataset_dict, metadata, args.output, args.overwrite)
    _print_summary(metadata, args.output, reports)


def prepare_fasta(args: argparse.Namespace) -> None:
    _check_writable(args.output, args.overwrite)
    labels_spec, split = _label_spec(args), _split_spec(args)
    report = ReadReport(f"{file_label(args.fasta)} + {file_label(args.labels)}")
    _build_and_save(
        lambda: read_fasta_with_labels(
            args.fasta,
            args.labels,
            alphabet=args.alphabet,
            id_column=args.id_column,
            labels=labels_spec,
            feature_columns=args.feature_column,
            max_length=_max_length(args),
            report=report,
        ),
        args.output,
        args.overwrite,
        reports=[report],
        alphabet=args.alphabet,
        source=f"FASTA {file_label(args.fasta)}, labels {file_label(args.labels)} (ids {args.id_column})",
        label_names=labels_spec.columns,
        label_transform=labels_spec.transform,
        feature_names=args.feature_column,
        split=split,
    )


PREPARE_COMMANDS = {
    "xpresso": prepare_xpresso,
    "genome": prepare_genome,
    "table": prepare_table,
    "fasta": prepare_fasta,
}


def run_prepare(args: argparse.Namespace) -> int:
    """Runs a parsed `prepare` command; bad input is one line on stderr and exit code 2."""
    # Progress bars help at a terminal; in logs and pipes they would bury the one line that matters.
    show_progress = sys.stderr.isatty()
    progress_was_enabled = datasets.is_progress_bar_enabled()
    if not show_progress:
        datasets.disable_progress_bars()
    try:
        if hasattr(args, "max_length"):
            _max_length(args)  # a bad limit stops before any file is read
        PREPARE_COMMANDS[args.prepare_command](args)
    except (DataError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if progress_was_enabled and not show_progress:
            datasets.enable_progress_bars()
    return 0
