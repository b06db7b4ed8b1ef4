"""`expression-perceiver baseline`: the k-mer ridge baseline (`training.baseline`) on a dataset or a table."""

from pathlib import Path

from .prepare import add_table_arguments


def add_baseline_parser(subparsers) -> None:
    """Adds `baseline`: the k-mer ridge baseline on a prepared dataset or on a table read and split exactly as
    `prepare table` reads and splits it, printing the metrics and writing them as JSON."""
    parser = subparsers.add_parser("baseline", help="ridge regression on k-mer frequencies (the reference baseline)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--table", type=Path, help="TSV/CSV (optionally .gz), read and split with `prepare table`'s options below"
    )
    source.add_argument(
        "--dataset-dir", help="a dataset written by `expression-perceiver prepare`: its own splits, labels, alphabet"
    )
    add_table_arguments(parser, alphabet_required=False)
    parser.add_argument("--k", type=int, nargs="+", help="k-mer sizes (default 1-4 for DNA, 1-2 for proteins)")
    parser.add_argument("--alphas", type=float, nargs="+", help="ridge penalties to try (default 1e-3 .. 1e4)")
    parser.add_argument("--output", type=Path, help="JSON file for the results")
    parser.set_defaults(run=run_baseline)


def run_baseline(args) -> int:
    from ..training.baseline import run_baseline_command

    return run_baseline_command(args)
