"""`expression-perceiver <command>`: the package's command line."""

import argparse
import sys

from .baseline import add_baseline_parser
from .data.prepare import add_prepare_parser


def add_train_parser(subparsers) -> None:
    # Listed for --help only: `main` hands everything after `train` to the recipe's HfArgumentParser.
    subparsers.add_parser(
        "train", help="train a Perceiver (same arguments as `accelerate launch train.py`: recipes, then flags)"
    )


def run_train(arguments: list[str]) -> int:
    from .training.run import main as train

    train(arguments)
    return 0


def add_generate_parser(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="write synthetic promoters or proteins with a planted signal")
    parser.add_argument("kind", choices=["promoters", "proteins"])
    parser.add_argument("output", help="TSV file to write (gzip if it ends with .gz)")
    parser.add_argument("--num", type=int, default=1_000, help="number of sequences")
    parser.add_argument("--length", type=int, default=2_000, help="bases per promoter")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from .data.synthetic import generate_promoters, generate_proteins, write_table

    generated = (
        generate_promoters(args.num, args.length, args.seed)
        if args.kind == "promoters"
        else generate_proteins(args.num, args.seed)
    )
    write_table(generated, args.output)
    print(f"wrote {len(generated)} {args.kind} to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expression-perceiver",
        description="Predict mRNA levels from promoter DNA and protein levels from protein sequence with Perceivers.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    add_train_parser(subparsers)
    add_prepare_parser(subparsers)
    add_baseline_parser(subparsers)
    add_generate_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else None
    try:
        if command == "train":
            return run_train(argv[1:])
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (ValueError, OSError, KeyError) as error:  # bad input: one clear line, no traceback
        print(f"expression-perceiver {command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
