"""`expression-perceiver attribute`, `profile` and `motifs`: why a model predicts what it does. Argument parsing
around `inference.attribution.attribute` and `interpretation` (imported only when a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .predict import _add_input_arguments, input_file, run_options

ATTRIBUTE_DESCRIPTION = """\
Attribute every input's prediction to its positions and letters with one model or an ensemble (repeat --model;
attributions are the members' mean, their spread kept). Inputs as for `predict`.

Methods: ism (every substitution scored), gradient_x_input, integrated_gradients and deeplift_shap (Captum, against
dinucleotide-shuffled references by default), cross_attention (the model's own attention weights over the
positions, per layer and head, averaged over the latents).

Writes one .npz (one_hot and attributions as positions x letters, hypothetical contributions, ids, positions
relative to the TSS where known, predictions, completeness for methods with references) and <output>.json beside
it. --profile also writes the positional profile (<output stem>.profile.tsv and .png)."""

PROFILE_DESCRIPTION = """\
The positional profile of an attribution file: mean absolute and mean signed attribution per position (relative to
the TSS, or from the sequence's start or end), with bootstrap 95% intervals over sequences, as a TSV and a PNG with
the first, middle and last halves of the window marked."""

MOTIFS_DESCRIPTION = """\
Motifs in an attribution file of DNA sequences: TF-MoDISco-lite patterns (positive and negative kept apart), each
matched to a motif database with TOMTOM (default: JASPAR CORE vertebrates non-redundant, from pyjaspar; any MEME
file with --motif-db). Writes motifs.tsv, logos, position histograms and report.md into the output folder."""


def add_attribute_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "attribute",
        help="attributions of predictions to positions and letters (ISM, gradients, IG, DeepLIFT/SHAP, attention)",
        description=ATTRIBUTE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_input_arguments(parser)
    parser.set_defaults(batch_size=8)
    method = parser.add_argument_group("attribution")
    method.add_argument(
        "--method", default="integrated_gradients",
        choices=("ism", "gradient_x_input", "integrated_gradients", "deeplift_shap", "cross_attention"),
        help="(default: %(default)s)",
    )  # fmt: skip
    method.add_argument("--target", type=int, default=0, help="which output to explain (default: %(default)s)")
    method.add_argument(
        "--references", choices=("shuffle", "uniform", "zero"), default="shuffle",
        help="references of integrated gradients and DeepLIFT/SHAP: dinucleotide shuffles of each sequence (residue "
        "shuffles for proteins), 1/letters at every position, or all zero (N) (default: %(default)s)",
    )  # fmt: skip
    method.add_argument("--num-references", type=int, default=10, help="shuffles per sequence (default: %(default)s)")
    method.add_argument(
        "--steps", type=int, default=50, help="integration points of integrated gradients (default: %(default)s)"
    )
    method.add_argument("--seed", type=int, default=0, help="seed of the shuffles (default: %(default)s)")
    method.add_argument(
        "--tss-index", type=int,
        help="index of the TSS in the input sequences, so positions are written relative to it (known for Xpresso "
        "HDF5 and BED + genome windows)",
    )  # fmt: skip
    method.add_argument("--profile", action="store_true", help="also write the positional profile (TSV and PNG)")
    parser.set_defaults(run=run_attribute)
    return parser


def add_profile_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "profile", help="positional profile of an attribution file (TSV and PNG)", description=PROFILE_DESCRIPTION
    )
    parser.add_argument("attributions", type=Path, help="attribution .npz written by `attribute`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="TSV to write (the PNG beside it)")
    parser.add_argument(
        "--track", choices=("attributions", "cross_attention"), default=None,
        help="which track (default: attributions, or cross_attention for files of that method)",
    )  # fmt: skip
    parser.add_argument(
        "--anchor", choices=("start", "end"), default="start",
        help="align sequences of different lengths at their start (N-terminus) or end (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(run=run_profile)
    return parser


def add_motifs_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "motifs",
        help="TF-MoDISco-lite motifs of an attribution file, matched with TOMTOM",
        description=MOTIFS_DESCRIPTION,
    )
    parser.add_argument("attributions", type=Path, help="attribution .npz of DNA sequences written by `attribute`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the report into")
    parser.add_argument("--motif-db", type=Path, help="MEME motif file (default: JASPAR CORE vertebrates)")
    parser.add_argument("--max-seqlets", type=int, default=2000, help="seqlets per metacluster (default: %(default)s)")
    parser.add_argument("--top-matches", type=int, default=3, help="TOMTOM matches per pattern (default: %(default)s)")
    parser.add_argument(
        "--seqlet-window", type=int, default=21,
        help="MoDISco's sliding window (sliding_window_size); its flank is half of it, and its trimming window and "
        "initial flank scale with it. Short sequences need a short window: 11 for 60-base core promoters "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    parser.set_defaults(run=run_motifs)
    return parser


def profile_paths(output: Path) -> tuple[Path, Path]:
    tsv = output if output.suffix.lower() == ".tsv" else output.with_name(output.name + ".tsv")
    return tsv, tsv.with_suffix(".png")


def write_profile_files(attributions: Path, tsv: Path, track: str | None, anchor: str, bootstrap: int, seed: int):
    from ..inference.attribution_files import AttributionFile
    from ..interpretation.profiles import positional_profile, write_profile

    opened = AttributionFile.open(attributions)
    if track is None:
        track = "cross_attention" if opened.method == "cross_attention" else "attributions"
    table = positional_profile(opened, track=track, anchor=anchor, bootstrap=bootstrap, seed=seed)
    png = tsv.with_suffix(".png")
    write_profile(table, tsv, png, title=f"{opened.method} ({track})")
    return table, png


def run_attribute(args: argparse.Namespace) -> int:
    from ..inference.attribution import attribute

    if args.output.suffix.lower() != ".npz":
        raise ValueError(f"{args.output.name}: write attributions to a .npz file")
    options = run_options(args)
    options.pop("dtype")
    if options.pop("proteins") is not None:
        raise ValueError("attribute reads single-sequence models; --proteins is for the Protein&DNAPerceiver")
    profile_tsv = args.output.with_name(args.output.stem + ".profile.tsv")
    if args.profile and not args.overwrite:
        for path in (profile_tsv, profile_tsv.with_suffix(".png")):
            if path.exists():
                raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    summary = attribute(
        input_file(args), args.model, method=args.method, output=args.output, target=args.target,
        references=args.references, num_references=args.num_references, steps=args.steps, seed=args.seed,
        tss_index=args.tss_index, crop=args.crop, **options,
    )  # fmt: skip
    if summary is None:  # not rank 0 of a launched run
        return 0
    if not args.quiet:
        for line in summary.summary_lines():
            print(line)
        completeness = summary.record.get("completeness")
        if completeness:
            print(
                f"  completeness: median error {completeness['median']:.3g}, max {completeness['max']:.3g}; "
                f"{completeness['flagged']:,} of {completeness['n']:,} sequences above {completeness['tolerance']:.3g}"
            )
    if args.profile:
        _, png = write_profile_files(args.output, profile_tsv, None, "start", 1000, args.seed)
        if not args.quiet:
            print(f"wrote {profile_tsv} and {png}")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    if args.bootstrap < 1:
        raise ValueError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    tsv, png = profile_paths(args.output)
    for path in (tsv, png):
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    from ..inference.attribution_files import AttributionFile
    from ..interpretation.profiles import (
        letter_contributions,
        relative_halves,
        summarise_regions,
        write_letter_table,
    )

    table, png = write_profile_files(args.attributions, tsv, args.track, args.anchor, args.bootstrap, args.seed)
    regions = summarise_regions(table)
    print(f"wrote {tsv} and {png}")
    shares = ", ".join(f"{name} {regions[name]:.3f}" for name in ("first", "middle", "last"))
    print(f"  share of mean |attribution| by half of the window: {shares}; peak at {regions['peak_position']}")
    opened = AttributionFile.open(args.attributions)
    if table.track == "attributions":
        letters = tsv.with_name(tsv.stem + ".letters.tsv")
        contributions = letter_contributions(opened)
        write_letter_table(contributions, letters)
        top = ", ".join(f"{row[0]} {row[2]:+.3g}" for row in contributions.rows()[:3])
        bottom = ", ".join(f"{row[0]} {row[2]:+.3g}" for row in contributions.rows()[-3:])
        print(f"wrote {letters}: highest mean contribution {top}; lowest {bottom}")
        if not opened.uniform:  # sequences of several lengths: halves of each one's own length
            halves = relative_halves(opened, args.bootstrap, args.seed)
            own = ", ".join(
                f"{name} {halves[name]['mean']:.3f} [{halves[name]['low']:.3f}, {halves[name]['high']:.3f}]"
                for name in ("first", "middle", "last")
            )
            print(f"  share of each sequence's |attribution| by half of its own length (95% interval): {own}")
            from ..data.atomic import write_json

            halves_path = tsv.with_name(tsv.stem + ".own_halves.json")
            write_json(halves_path, {"source": str(args.attributions), "bootstrap": args.bootstrap, **halves})
            print(f"wrote {halves_path}")
    return 0


def seqlet_options(window: int) -> dict:
    """MoDISco's window options scaled from its sliding window (its defaults: 21, flank 10, trimming to 30 with 10
    added)."""
    if window < 5:
        raise ValueError(f"--seqlet-window must be at least 5, got {window}")
    if window == 21:
        return {}
    flank = window // 2
    return dict(
        sliding_window_size=window,
        flank_size=flank,
        trim_to_window_size=window + 2 * (flank // 2),
        initial_flank_to_add=flank,
    )


def run_motifs(args: argparse.Namespace) -> int:
    if args.output.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} already exists (pass --overwrite to replace it)")
    from ..data.motifs import motif_database
    from ..inference.attribution_files import AttributionFile
    from ..interpretation.motifs import discover_motifs

    opened = AttributionFile.open(args.attributions)
    database = motif_database(str(args.motif_db) if args.motif_db is not None else None)
    report = discover_motifs(
        opened, args.output, motif_db=database, max_seqlets=args.max_seqlets, top_matches=args.top_matches,
        seed=args.seed, overwrite=args.overwrite, **seqlet_options(args.seqlet_window),
    )  # fmt: skip
    for line in report.summary_lines():
        print(line)
    return 0


__all__ = ["add_attribute_parser", "add_motifs_parser", "add_profile_parser"]
