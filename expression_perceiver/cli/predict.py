"""`expression-perceiver predict` and `expression-perceiver embed`: argument parsing around `inference.predict` and
`inference.embed`, which are imported only when a command runs. Bad input, a model that cannot be used or an existing
output is one line on stderr and exit code 2 (`cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..formats import CROP_RULES, DATASET_SPLITS, INPUT_KINDS, XPRESSO_BEST_WINDOW

if TYPE_CHECKING:
    from ..inference.inputs import InputFile

PREDICT_DESCRIPTION = """\
Predict expression with one model or an ensemble (repeat --model) for every input: a FASTA (plain, gzip or bgzip), a
sequence table (TSV/CSV with id and sequence columns), an Xpresso HDF5 file, a prepared dataset folder (--split), or
promoter windows of a BED file cut from a genome (--bed with --genome, as `prepare genome` builds them).

Writes a TSV (id, then one column per output; for an ensemble the mean and standard deviation over the models and
n_models) and <output>.json beside it: the models and their resolved revisions, weight hashes, versions, device,
precision and counts. Values are in the training labels' units when the checkpoint stores the label standardisation
(columns predicted_<label>), else z-scores (columns predicted_<label>_zscore).

A sequence longer than the model reads (its max_sequence_length) is cropped (--crop, default: its first positions,
as `prepare --max-length` truncates); a shorter one is read at its own length, padded and masked as in training."""

EMBED_DESCRIPTION = """\
Write the encoder's summary vector (pooler_output of the base model, what the regression head reads) of every
input, or its latents (--latents), to a .npy file (float32, with <name>.ids.txt) or a .parquet file (id,
embedding). Inputs as for `predict`."""


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", nargs="?", type=Path, help="FASTA, sequence table, Xpresso HDF5 file or prepared dataset folder"
    )
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    group = parser.add_argument_group("input")
    group.add_argument(
        "--input-format", choices=INPUT_KINDS[:-1], default="auto",
        help="how to read INPUT (default: from its name, else its first line)",
    )  # fmt: skip
    group.add_argument("--id-column", default="gene_id", help="table column of ids (default: %(default)s)")
    group.add_argument("--sequence-column", default="sequence", help="table column of sequences (default: %(default)s)")
    group.add_argument(
        "--feature-column", action="append", default=[], help="table column of a feature, in the model's order"
    )
    group.add_argument("--protein-sequence-column", help="table column of proteins (Protein&DNAPerceiver)")
    group.add_argument(
        "--split", choices=DATASET_SPLITS, default="test", help="split of a dataset folder (default: %(default)s)"
    )
    group.add_argument("--bed", type=Path, help="promoter windows: chrom start end gene_id score strand")
    group.add_argument("--genome", type=Path, help="genome FASTA (plain or bgzip) the --bed windows are cut from")
    window = group.add_mutually_exclusive_group()
    window.add_argument(
        "--window", type=int, nargs=2, metavar=("START", "END"), default=XPRESSO_BEST_WINDOW,
        help="indices kept of each Xpresso HDF5 promoter or BED window, TSS at 10,000 in Xpresso's (default: 3000 "
        "13500, -7,000..+3,500, as prepare)",
    )  # fmt: skip
    window.add_argument("--full-window", action="store_true", help="keep whole HDF5 / BED windows")
    group.add_argument(
        "--crop", choices=CROP_RULES, default="start",
        help="which part of a sequence longer than the model reads is kept (default: %(default)s)",
    )  # fmt: skip

    add_feature_arguments(parser.add_argument_group("per-gene features"))
    add_protein_arguments(parser.add_argument_group("proteins (Protein&DNAPerceiver)"))
    add_run_arguments(parser)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The models (one, or an ensemble) and whether outputs may be replaced (every inference command)."""
    parser.add_argument(
        "-m", "--model", action="append", required=True, metavar="MODEL",
        help="model folder or Hub id (org/name or org/name@revision); repeat for an ensemble",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def add_feature_arguments(group) -> None:
    """A per-gene feature table joined by id, and filling for genes it lacks (every inference command)."""
    group.add_argument("--features", type=Path, help="TSV/CSV table of per-gene features by id (replaces the input's)")
    group.add_argument("--features-id-column", default="gene_id", help="(default: %(default)s)")
    group.add_argument(
        "--feature-columns", nargs="+", metavar="COLUMN",
        help="feature columns of --features in the model's order (default: the training run's feature names, else "
        "every column but the id)",
    )  # fmt: skip
    group.add_argument(
        "--fill-missing-features", action="store_true",
        help="fill a gene's missing features with the training means (config feature_mean; zeros, the mean of "
        "z-scored features, for checkpoints without them) and mark it, instead of stopping or leaving it unscored",
    )  # fmt: skip


def add_protein_arguments(group) -> None:
    """The protein table of a Protein&DNAPerceiver, joined onto the inputs by gene id (every inference command)."""
    group.add_argument("--proteins", type=Path, help="TSV/CSV table of proteins by gene id, joined onto the input")
    group.add_argument("--proteins-id-column", default="gene_id", help="(default: %(default)s)")
    group.add_argument("--proteins-sequence-column", default="sequence", help="(default: %(default)s)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Batch size, device, precision and output verbosity (every inference command)."""
    run = parser.add_argument_group("running")
    run.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass (default: %(default)s)")
    run.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument(
        "--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
        help="precision (default: bf16 autocast on a GPU that supports it, else float32)",
    )  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="predict expression from FASTA, tables, Xpresso HDF5, datasets or BED + genome",
        description=PREDICT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(parser)
    parser.add_argument("--members", action="store_true", help="add each ensemble member's prediction")
    parser.set_defaults(run=run_predict)
    return parser


def add_embed_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "embed",
        help="write summary vectors (or latents) of the inputs as .npy or .parquet",
        description=EMBED_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(parser)
    parser.add_argument("--latents", action="store_true", help="the latents (last_hidden_state), not the summary")
    parser.set_defaults(run=run_embed)
    return parser


def input_file(args: argparse.Namespace) -> InputFile:
    from ..inference.inputs import InputFile

    return InputFile(
        path=args.input,
        kind="auto" if args.bed is not None else args.input_format,
        id_column=args.id_column,
        sequence_column=args.sequence_column,
        feature_columns=tuple(args.feature_column),
        protein_sequence_column=args.protein_sequence_column,
        split=args.split,
        window=None if args.full_window else tuple(args.window),
        bed=args.bed,
        genome=args.genome,
    )


def run_options(args: argparse.Namespace) -> dict:
    """What every inference command passes on from its arguments: features, proteins, filling and running."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    from ..inference.inputs import FeatureTable, ProteinSource

    if args.feature_columns and args.features is None:
        raise ValueError("--feature-columns names columns of --features; give --features too")
    features = (
        FeatureTable(args.features, args.features_id_column, tuple(args.feature_columns or ()))
        if args.features is not None
        else None
    )
    proteins = (
        ProteinSource(args.proteins, args.proteins_id_column, args.proteins_sequence_column)
        if args.proteins is not None
        else None
    )
    return dict(
        features=features,
        proteins=proteins,
        fill_missing_features=args.fill_missing_features,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )


def _common(args: argparse.Namespace) -> dict:
    return dict(output=args.output, crop=args.crop, **run_options(args))


def _report(summary, quiet: bool) -> None:
    if summary is not None and not quiet:  # None: a process of a multi-process run other than rank 0
        for line in summary.summary_lines():
            print(line)


def run_predict(args: argparse.Namespace) -> int:
    from ..inference.api import predict

    summary = predict(input_file(args), args.model, members=args.members, **_common(args))
    _report(summary, args.quiet)
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from ..inference.api import embed

    if len(args.model) > 1:
        raise ValueError("embed reads one model: give --model once")
    summary = embed(input_file(args), args.model[0], latents=args.latents, **_common(args))
    _report(summary, args.quiet)
    return 0


__all__ = [
    "add_embed_parser",
    "add_predict_parser",
    "add_feature_arguments",
    "add_model_arguments",
    "add_protein_arguments",
    "add_run_arguments",
    "run_embed",
    "run_options",
    "run_predict",
]
