"""`expression-perceiver <command>`: the package's command line, the one layer that parses arguments.

Parsers are built from the standard library and `expression_perceiver.formats` alone: torch, transformers and
datasets are imported by the command that runs, so `--help` and argument errors answer at once.
"""

import argparse
import sys
from pathlib import Path

from ..allocator import keep_freed_memory
from .baseline import add_baseline_parser
from .interpret import add_attribute_parser, add_motifs_parser, add_profile_parser
from .predict import add_embed_parser, add_predict_parser
from .prepare import add_prepare_parser
from .study import add_study_parser
from .variants import add_mutagenesis_parser, add_variant_effect_parser


def add_train_parser(subparsers) -> None:
    # Listed for --help only: `main` hands everything after `train` to the recipe's HfArgumentParser.
    subparsers.add_parser(
        "train", help="train a Perceiver (same arguments as `accelerate launch train.py`: recipes, then flags)"
    )


def run_train(arguments: list[str]) -> int:
    from ..training.run import main as train

    train(arguments)
    return 0


def add_generate_parser(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="write synthetic promoters or proteins with a planted signal")
    parser.add_argument(
        "kind",
        choices=["promoters", "proteins", "positional", "xpresso"],
        help="positional: the label comes from elements at known distances from the TSS (a masking check); "
        "xpresso: the same set as Xpresso HDF5 files",
    )
    parser.add_argument(
        "output", help="TSV file to write (gzip if it ends with .gz); for xpresso, a folder for train/valid/test.h5"
    )
    parser.add_argument("--num", type=int, default=1_000, help="number of sequences")
    parser.add_argument(
        "--length", type=int, help="bases per promoter (default 2,000; xpresso needs and defaults to 20,000)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run_generate)


def _generate_length(args: argparse.Namespace) -> int:
    """The window length asked for, checked: at least 1,000 bases, exactly the format's 20,000 for xpresso."""
    from ..formats import XPRESSO_WINDOW_LENGTH

    if args.kind == "xpresso":
        length = XPRESSO_WINDOW_LENGTH if args.length is None else args.length
        if length != XPRESSO_WINDOW_LENGTH:
            raise ValueError(
                f"--length must be {XPRESSO_WINDOW_LENGTH:,} for xpresso (the format's window), got {length}"
            )
        return length
    length = 2_000 if args.length is None else args.length
    if length < 1_000 and args.kind != "proteins":
        raise ValueError(f"--length must be at least 1,000 bases to hold the planted elements, got {length}")
    return length


def run_generate(args: argparse.Namespace) -> int:
    from ..data.synthetic import (
        generate_positional_promoters,
        generate_promoters,
        generate_proteins,
        write_table,
        write_xpresso_folder,
    )

    # Xpresso's three files each need a gene: 80/10/10 of at least 10.
    minimum = 10 if args.kind == "xpresso" else 1
    if args.num < minimum:
        raise ValueError(f"--num must be at least {minimum} for {args.kind}, got {args.num}")
    length = _generate_length(args)
    if args.kind == "promoters":
        generated = generate_promoters(args.num, length, args.seed)
    elif args.kind == "proteins":
        generated = generate_proteins(args.num, args.seed)
    else:
        generated = generate_positional_promoters(args.num, length, args.seed)

    if args.kind == "xpresso":
        written = write_xpresso_folder(generated, args.output)
        counts = ", ".join(f"{split} {rows:,}" for split, rows in written.items())
        print(f"wrote {len(generated)} positional promoters of {length:,} bases to {args.output} ({counts})")
    else:
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
    add_study_parser(subparsers)
    add_predict_parser(subparsers)
    add_embed_parser(subparsers)
    add_variant_effect_parser(subparsers)
    add_mutagenesis_parser(subparsers)
    add_attribute_parser(subparsers)
    add_profile_parser(subparsers)
    add_motifs_parser(subparsers)
    return parser


# Arguments that name files or folders a command reads: checked before the command imports torch, transformers or
# datasets, so that a mistyped path is answered at once.
INPUT_PATH_ARGUMENTS = (
    "input", "folder", "table", "fasta", "genome", "bed", "labels", "half_life", "protein_table", "features",
    "proteins", "vcf", "tss_table", "dataset_dir", "study_file", "study_dir", "other_study_dir", "attributions",
    "motif_db",
)  # fmt: skip


def check_input_paths(args: argparse.Namespace) -> None:
    for name in INPUT_PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if value is not None and not Path(value).exists():
            raise FileNotFoundError(f"{Path(value).name or value}: file not found ({value})")


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv else None
    try:
        if command == "train":
            return run_train(argv[1:])
        args = build_parser().parse_args(argv)
        check_input_paths(args)
        return args.run(args)
    except Exception as error:
        if is_hub_push_failure(error):  # the run itself finished: its results are local
            print(f"expression-perceiver {command}: error: {error}", file=sys.stderr)
            return 3
        if isinstance(error, (ValueError, OSError, KeyError)):  # bad input: one clear line, no traceback
            print(f"expression-perceiver {command}: error: {error}", file=sys.stderr)
            return 2
        raise


def is_hub_push_failure(error: BaseException) -> bool:
    """A failed final push to the Hub (`training.trainer.HubPushFailed`), recognised without importing the trainer:
    only a training run, which has imported it, can raise one."""
    trainer = sys.modules.get("expression_perceiver.training.trainer")
    return trainer is not None and isinstance(error, trainer.HubPushFailed)
