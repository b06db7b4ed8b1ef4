"""`expression-perceiver baseline`: the k-mer ridge baseline (`training.baseline`) on a dataset or a table."""

import argparse
import json
from pathlib import Path

from .prepare import add_table_arguments, split_spec, table_source


def add_baseline_parser(subparsers: argparse._SubParsersAction) -> None:
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


def _baseline_results(args: argparse.Namespace) -> dict:
    """The baseline on --dataset-dir, or on --table read and split with `prepare table`'s options."""
    from ..data import DataError
    from ..training.baseline import baseline_on_dataset_dir, baseline_on_table

    if args.dataset_dir is not None:
        return baseline_on_dataset_dir(args.dataset_dir, args.k, args.alphas)
    if args.alphabet is None:
        raise DataError("--alphabet (dna or protein) is needed with --table")
    return baseline_on_table(table_source(args), split_spec(args), args.k, args.alphas)


def _write_results(results: dict, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


def run_baseline(args: argparse.Namespace) -> int:
    """Runs a parsed `baseline` command: prints the test scores and, with --output, writes the results as JSON."""
    from ..training.baseline import summary_lines

    results = _baseline_results(args)
    for line in summary_lines(results):
        print(line)
    if args.output is not None:
        _write_results(results, args.output)
    return 0
