"""`expression-perceiver prepare xpresso|genome|table|fasta`: biologists' files to a dataset folder.

Subcommands:
    xpresso  a folder with train.h5 / valid.h5 / test.h5 -> dataset (the files' own splits)
    genome   genome FASTA + promoter BED + labels [+ half-life features] -> dataset and/or Xpresso HDF5 files
    table    TSV/CSV with id, sequence and label columns -> dataset; with --protein-table, promoters joined by gene
             id with their proteins (and optionally protein labels) -> a dataset for the Protein&DNAPerceiver
    fasta    FASTA + label table joined by id -> dataset

Outputs are written atomically: into a temporary folder beside the target, renamed at the end; after an error
nothing half-written is left. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..formats import DEFAULT_PROTEIN_MAX_LENGTH, XPRESSO_BEST_WINDOW, XPRESSO_FEATURE_NAMES, XPRESSO_FULL_WINDOW

if TYPE_CHECKING:  # the data layer is imported when a command runs
    from ..data import LabelSpec, SplitSpec
    from ..data.prepare import ProteinTableSource, TableSource


def _add_output_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, required=required, help="folder to write the dataset to (save_to_disk + JSON)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--window",
        type=int,
        nargs=2,
        metavar=("START", "END"),
        default=XPRESSO_BEST_WINDOW,
        help="indices of the 20,000-base window to keep, TSS at 10,000 (default: 3000 13500, Xpresso's best "
        "-7,000..+3,500)",
    )
    group.add_argument("--full-window", action="store_true", help="keep the whole window")


def _add_label_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id-column", default="gene_id", help="column of record ids (default: %(default)s)")
    parser.add_argument(
        "--label-column",
        action="append",
        help="label column; repeat for several outputs (default: label)",
    )
    parser.add_argument("--log10", action="store_true", help="store log10(label + pseudocount)")
    parser.add_argument("--pseudocount", type=float, default=0.0, help="added before log10 (default: %(default)s)")
    parser.add_argument(
        "--drop-missing-labels",
        action="store_true",
        help="drop rows with an empty/NaN label and count them (default: such a row is an error)",
    )


def _add_split_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("random", "chromosomes"), default="random", help="how to split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split by gene (default: 0)")
    parser.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="fractions of genes per split (default: 0.8 0.1 0.1)",
    )
    parser.add_argument(
        "--validation-chromosomes", nargs="+", default=(), metavar="CHROM", help="held out for validation"
    )
    parser.add_argument("--test-chromosomes", nargs="+", default=(), metavar="CHROM", help="held out for test")


def _add_sequence_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--alphabet", choices=("dna", "protein"), required=required, help="sequence letters")
    parser.add_argument(
        "--max-length",
        type=int,
        help=f"truncate longer sequences and count them (default: {DEFAULT_PROTEIN_MAX_LENGTH:,} for proteins, "
        "none for DNA; 0 for none)",
    )


def _add_protein_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "proteins (Protein&DNAPerceiver)",
        "Join a protein table onto the promoter table by gene id: each row gains its gene's protein sequence "
        "(column protein_sequence) and, with --protein-label-column, its protein label as a second output. Rows "
        "whose gene has no protein are dropped and reported, and so are proteins whose gene has no row.",
    )
    group.add_argument("--protein-table", type=Path, help="TSV/CSV of proteins by gene id, optionally gzip")
    group.add_argument("--protein-id-column", default="gene_id", help="gene ids of the proteins (default: %(default)s)")
    group.add_argument("--protein-sequence-column", default="sequence", help="(default: %(default)s)")
    group.add_argument(
        "--protein-label-column", action="append", help="protein label column, an extra output; repeatable"
    )
    group.add_argument("--protein-log10", action="store_true", help="store log10(protein label + pseudocount)")
    group.add_argument(
        "--protein-pseudocount", type=float, default=0.0, help="added before --protein-log10 (default: %(default)s)"
    )
    group.add_argument(
        "--protein-max-length",
        type=int,
        default=DEFAULT_PROTEIN_MAX_LENGTH,
        help="truncate longer proteins and count them (default: %(default)s; 0 for none)",
    )


def add_prepare_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds `prepare` and its subcommands; the parsed namespace's `run` is `run_prepare`."""
    prepare = subparsers.add_parser(
        "prepare",
        help="turn Xpresso HDF5, genome + BED, tables or FASTA into a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = prepare.add_subparsers(dest="prepare_command", required=True, metavar="SOURCE")

    xpresso = commands.add_parser("xpresso", help="folder with train.h5, valid.h5, test.h5 -> dataset")
    xpresso.add_argument("folder", type=Path, help="folder holding the three Xpresso HDF5 files")
    _add_output_arguments(xpresso)
    _add_window_arguments(xpresso)

    genome = commands.add_parser("genome", help="genome FASTA + promoter BED + labels -> dataset / Xpresso HDF5")
    genome.add_argument("--genome", type=Path, required=True, help="reference FASTA (plain or bgzip)")
    genome.add_argument(
        "--bed", type=Path, required=True, help="promoter windows: chrom start end gene_id score strand"
    )
    genome.add_argument("--labels", type=Path, required=True, help="TSV/CSV table of labels by gene id")
    _add_label_arguments(genome)
    genome.add_argument("--half-life", type=Path, help="TSV/CSV table of mRNA half-life features by gene id")
    genome.add_argument(
        "--half-life-columns",
        nargs="+",
        default=list(XPRESSO_FEATURE_NAMES),
        metavar="COLUMN",
        help="feature columns of the half-life table (default: Xpresso's 8)",
    )
    _add_output_arguments(genome, required=False)
    genome.add_argument("--h5-dir", type=Path, help="also (or only) write train.h5, valid.h5, test.h5 here")
    _add_window_arguments(genome)
    _add_split_arguments(genome)

    table = commands.add_parser("table", help="TSV/CSV with ids, sequences and labels -> dataset")
    table.add_argument("table", type=Path, help="TSV/CSV file, optionally gzip")
    add_table_arguments(table)
    _add_protein_arguments(table)
    _add_output_arguments(table)

    fasta = commands.add_parser("fasta", help="FASTA + label table joined by id -> dataset")
    fasta.add_argument("fasta", type=Path, help="FASTA file, plain or gzip; the id is the header's first word")
    fasta.add_argument("--labels", type=Path, required=True, help="TSV/CSV table of labels by id")
    _add_sequence_arguments(fasta)
    _add_label_arguments(fasta)
    fasta.add_argument("--feature-column", action="append", default=[], help="numeric feature column; repeatable")
    _add_output_arguments(fasta)
    _add_split_arguments(fasta)

    prepare.set_defaults(run=run_prepare)
    return prepare


def add_table_arguments(parser: argparse.ArgumentParser, alphabet_required: bool = True) -> None:
    """How a sequence table is read and split: shared by `prepare table` and `baseline --table`."""
    _add_sequence_arguments(parser, required=alphabet_required)
    parser.add_argument("--sequence-column", default="sequence", help="(default: %(default)s)")
    _add_label_arguments(parser)
    parser.add_argument("--feature-column", action="append", default=[], help="numeric feature column; repeatable")
    parser.add_argument("--chrom-column", help="column of chromosomes (needed by --split chromosomes)")
    _add_split_arguments(parser)


# From the parsed arguments to the data layer's options. Each translation checks what only the command line can get
# wrong (flags given together, sentinel values), naming the flags; the data layer is imported when a command runs.


def window_option(args: argparse.Namespace) -> tuple[int, int] | None:
    """The window to keep, or None for the whole one."""
    from ..data import DataError

    if args.full_window:
        return None
    start, end = args.window
    if not 0 <= start < end <= XPRESSO_FULL_WINDOW[1]:
        raise DataError(f"--window {start} {end}: must satisfy 0 <= START < END <= {XPRESSO_FULL_WINDOW[1]:,}")
    return start, end


def label_spec(args: argparse.Namespace) -> LabelSpec:
    """The label columns and transform of --label-column, --log10, --pseudocount and --drop-missing-labels."""
    from ..data import DataError, LabelSpec

    if args.pseudocount and not args.log10:
        raise DataError("--pseudocount is only used with --log10")
    return LabelSpec(tuple(args.label_column or ["label"]), args.log10, args.pseudocount, args.drop_missing_labels)


def split_spec(args: argparse.Namespace) -> SplitSpec:
    """The split of --split, --seed, --fractions and the held-out chromosomes."""
    from ..data import DataError, SplitSpec

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


def max_length_option(args: argparse.Namespace) -> int | None:
    """--max-length as a limit: unset, the alphabet's default; 0, None (no limit)."""
    from ..data import DataError

    if args.max_length is None:
        return DEFAULT_PROTEIN_MAX_LENGTH if args.alphabet == "protein" else None
    if args.max_length < 0:
        raise DataError(f"--max-length {args.max_length}: must be >= 0 (0 for no limit)")
    return args.max_length or None


def table_source(args: argparse.Namespace) -> TableSource:
    """The table of `prepare table` and `baseline --table` (the options of `add_table_arguments`)."""
    from ..data.prepare import TableSource

    max_length = max_length_option(args)  # a bad limit stops before any file is read
    return TableSource(
        path=args.table,
        alphabet=args.alphabet,
        id_column=args.id_column,
        sequence_column=args.sequence_column,
        labels=label_spec(args),
        feature_columns=tuple(args.feature_column),
        chrom_column=args.chrom_column,
        max_length=max_length,
    )


def _protein_label_spec(args: argparse.Namespace) -> LabelSpec | None:
    """The protein labels of --protein-label-column, --protein-log10 and --protein-pseudocount, if any."""
    from ..data import DataError, LabelSpec

    if not args.protein_label_column:
        if args.protein_log10 or args.protein_pseudocount:
            raise DataError("--protein-log10 and --protein-pseudocount need --protein-label-column")
        return None
    if args.protein_pseudocount and not args.protein_log10:
        raise DataError("--protein-pseudocount is only used with --protein-log10")
    return LabelSpec(
        tuple(args.protein_label_column), args.protein_log10, args.protein_pseudocount, args.drop_missing_labels
    )


def protein_source(args: argparse.Namespace) -> ProteinTableSource | None:
    """The proteins to join onto the promoter table, or None without --protein-table."""
    from ..data import DataError
    from ..data.prepare import ProteinTableSource

    if args.protein_table is None:
        if args.protein_label_column or args.protein_log10 or args.protein_pseudocount:
            raise DataError("--protein-label-column, --protein-log10 and --protein-pseudocount need --protein-table")
        return None
    if args.alphabet != "dna":
        raise DataError("--protein-table joins proteins onto promoters: the table needs --alphabet dna")
    if args.protein_max_length < 0:
        raise DataError(f"--protein-max-length {args.protein_max_length}: must be >= 0 (0 for no limit)")
    return ProteinTableSource(
        path=args.protein_table,
        id_column=args.protein_id_column,
        sequence_column=args.protein_sequence_column,
        labels=_protein_label_spec(args),
        max_length=args.protein_max_length or None,
    )


def _prepare_xpresso(args: argparse.Namespace) -> None:
    from ..data.prepare import prepare_xpresso

    prepare_xpresso(args.folder, args.output, window=window_option(args), overwrite=args.overwrite)


def _prepare_genome(args: argparse.Namespace) -> None:
    from ..data.prepare import GenomeSource, prepare_genome

    window = window_option(args)
    source = GenomeSource(
        genome=args.genome,
        bed=args.bed,
        label_table=args.labels,
        id_column=args.id_column,
        labels=label_spec(args),
        half_life=args.half_life,
        half_life_columns=tuple(args.half_life_columns),
    )
    prepare_genome(
        source,
        args.output,
        h5_dir=args.h5_dir,
        window=window,
        split=split_spec(args),
        overwrite=args.overwrite,
    )


def _prepare_table(args: argparse.Namespace) -> None:
    from ..data.prepare import prepare_table

    source, proteins, split = table_source(args), protein_source(args), split_spec(args)
    prepare_table(source, args.output, split=split, proteins=proteins, overwrite=args.overwrite)


def _prepare_fasta(args: argparse.Namespace) -> None:
    from ..data.prepare import FastaSource, prepare_fasta

    max_length = max_length_option(args)  # a bad limit stops before any file is read
    source = FastaSource(
        path=args.fasta,
        label_table=args.labels,
        alphabet=args.alphabet,
        id_column=args.id_column,
        labels=label_spec(args),
        feature_columns=tuple(args.feature_column),
        max_length=max_length,
    )
    prepare_fasta(source, args.output, split=split_spec(args), overwrite=args.overwrite)


PREPARE_COMMANDS = {
    "xpresso": _prepare_xpresso,
    "genome": _prepare_genome,
    "table": _prepare_table,
    "fasta": _prepare_fasta,
}


@contextmanager
def _progress_bars_at_a_terminal() -> Iterator[None]:
    """datasets' progress bars while the block runs only when stderr is a terminal: in logs and pipes they would
    bury the one line that matters."""
    import datasets

    show_progress = sys.stderr.isatty()
    progress_was_enabled = datasets.is_progress_bar_enabled()
    if not show_progress:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if progress_was_enabled and not show_progress:
            datasets.enable_progress_bars()


def run_prepare(args: argparse.Namespace) -> int:
    """Runs a parsed `prepare` command; bad input is one line on stderr and exit code 2."""
    from ..data import DataError

    with _progress_bars_at_a_terminal():
        try:
            PREPARE_COMMANDS[args.prepare_command](args)
        except (DataError, FileExistsError) as error:
            print(f"expression-perceiver prepare: error: {error}", file=sys.stderr)
            return 2
    return 0
