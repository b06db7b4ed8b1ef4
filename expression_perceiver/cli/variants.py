"""`expression-perceiver variant-effect` and `expression-perceiver mutagenesis`: argument parsing around
`inference.variant_effects` and `inference.mutagenesis`. Bad input is one line on stderr and exit code 2
(`cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..formats import XPRESSO_BEST_WINDOW
from .predict import (
    add_feature_arguments,
    add_model_arguments,
    add_protein_arguments,
    add_run_arguments,
    run_options,
)

VARIANT_EFFECT_DESCRIPTION = """\
Predict the effect of each VCF variant on the expression of the genes whose promoter windows hold it: the prediction
for the reference window (ref_pred), for the window carrying the ALT allele (alt_pred) and delta = alt_pred - ref_pred,
with one model or an ensemble (repeat --model: means, delta_std, n_models).

Windows are cut from --genome as `prepare genome` and `predict --bed` cut them: the --bed windows (or 20,000-base
windows centred on the TSSs of --tss-table), kept at --window indices (default 3000 13500: -7,000..+3,500 around the
TSS of Xpresso's windows), minus-strand genes reverse-complemented (the ALT is applied on the + strand first).

Indels keep the window anchored at the TSS: the sequence between the TSS and the variant stays in place, and the window
is trimmed or padded at its far end (away from the TSS) with the genome's own sequence beyond the window (N only past a
chromosome's end), so its length does not change.

One row per ALT allele and gene, in VCF order, with a status: ok, outside_windows, invalid_position (POS 0, or past
the chromosome's end), chromosome_not_in_genome, no_alt_allele, symbolic_allele, unsupported_allele, ref_mismatch,
no_features, no_protein. A bad record never stops the run; a file that cannot be read as VCF, a model that needs
per-gene features or proteins that are not given, and a run that scores no variant at all are one error line (exit
code 2, nothing written)."""

MUTAGENESIS_DESCRIPTION = """\
Saturation mutagenesis: every position of a scanned range replaced by each other base (19 other amino acids for a
protein model), scored with one model or an ensemble; the reference once and each mutant once, in batches.

Scan a gene's model window (--gene with --genome and --bed or --tss-table; by default the 2,000 positions around the
TSS, --scan -1000 1000), a genome region (--region chr1:1000-2000[:-] with --genome) or a sequence (--sequence, or
--fasta with --record); a region past its chromosome's end is refused. Writes a .npz (arrays; `positions` 0-based) or
.tsv (position 1-based, tss_offset, ref, alt, alt_pred, delta) with <output>.json, and a heatmap PNG with the TSS, the
strand and the importance track (mean |delta| per position).

--motifs marks known motifs on the heatmap (DNA models): the matches (FIMO, both strands, p < --motif-p-value) of JASPAR
CORE vertebrates (the flag alone; shipped with pyjaspar, read offline) or of a MEME file's motifs that overlap the
scanned positions are drawn as labelled bars on a track above the heatmap and listed in <output>.json (motif_hits),
with the mean |delta| inside and outside them."""


def _add_window_arguments(group) -> None:
    group.add_argument("--genome", type=Path, help="genome FASTA (plain or bgzip)")
    group.add_argument("--bed", type=Path, help="promoter windows: chrom start end gene_id score strand")
    group.add_argument(
        "--tss-table", type=Path,
        help="instead of --bed: a TSV/CSV with gene_id, chrom, tss (1-based) and strand; each gene gets a 20,000-base "
        "window centred on its TSS, as Xpresso's",
    )  # fmt: skip
    window = group.add_mutually_exclusive_group()
    window.add_argument(
        "--window", type=int, nargs=2, metavar=("START", "END"), default=XPRESSO_BEST_WINDOW,
        help="indices of each promoter window the model reads (default: 3000 13500, -7,000..+3,500 around the TSS of "
        "a 20,000-base window, as predict --bed)",
    )  # fmt: skip
    window.add_argument("--full-window", action="store_true", help="the whole promoter windows")
    group.add_argument(
        "--tss-index", type=int,
        help="index of the TSS in each promoter window (default: its centre, 10,000 for Xpresso's windows); for "
        "mutagenesis of a region or sequence, its index there",
    )  # fmt: skip


def add_variant_effect_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "variant-effect",
        help="predicted expression effects of VCF variants in promoter windows",
        description=VARIANT_EFFECT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--vcf", type=Path, required=True, help="VCF (plain or bgzip, tabix index optional) or BCF")
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="TSV to write (with <output>.json)")
    parser.add_argument(
        "--annotate-vcf", type=Path, metavar="VCF",
        help="also write the VCF back with an EP_EFFECT INFO field (.vcf, or .vcf.gz: bgzip, tabix-indexed when "
        "sorted)",
    )  # fmt: skip
    parser.add_argument("--members", action="store_true", help="add each ensemble member's delta")
    _add_window_arguments(parser.add_argument_group("promoter windows"))
    group = parser.add_argument_group("per-gene features and proteins")
    add_feature_arguments(group)
    add_protein_arguments(group)
    add_run_arguments(parser)
    parser.add_argument(
        "--no-incremental", action="store_true",
        help="run every ALT window through the full forward pass (by default SNVs and equal-length substitutions "
        "are scored at the cost of what each changes, the same numbers to float32 rounding, where that is exact)",
    )  # fmt: skip
    parser.set_defaults(run=run_variant_effect)
    return parser


def add_mutagenesis_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mutagenesis",
        help="saturation mutagenesis of a gene's window, a region or a sequence: deltas, heatmap, importance",
        description=MUTAGENESIS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help=".npz or .tsv to write (with <output>.json)")
    parser.add_argument("--tsv", type=Path, help="also a TSV, one row per substitution")
    plot = parser.add_mutually_exclusive_group()
    plot.add_argument("--plot", type=Path, help="heatmap PNG (default: the output's name with .png)")
    plot.add_argument("--no-plot", action="store_true", help="no heatmap")
    what = parser.add_argument_group("what to scan (one of)")
    what.add_argument("--gene", help="gene id of a --bed / --tss-table window (with --genome)")
    what.add_argument("--region", help="chrom:start-end, 1-based inclusive, :- for the minus strand (with --genome)")
    what.add_argument("--sequence", help="a sequence, as a string")
    what.add_argument("--fasta", type=Path, help="a FASTA file (plain or gzip): its record --record, or its first")
    what.add_argument("--record", help="the FASTA record's id (also names a --sequence)")
    _add_window_arguments(parser.add_argument_group("genome and windows"))
    parser.add_argument(
        "--scan", type=int, nargs=2, metavar=("START", "END"),
        help="offsets from the TSS to scan, END excluded (default: -1000 1000), or indices when there is no TSS "
        "(default: the whole sequence)",
    )  # fmt: skip
    parser.add_argument(
        "--no-incremental", action="store_true",
        help="run every mutant through the full forward pass (by default substitutions are scored at the cost of "
        "what each changes, the same numbers to float32 rounding, where that is exact)",
    )  # fmt: skip
    motifs = parser.add_argument_group("known motifs on the heatmap")
    motifs.add_argument(
        "--motifs", nargs="?", const="jaspar", metavar="MEME",
        help="mark motif matches on the heatmap and list them in <output>.json: the flag alone (or `jaspar`) for "
        "JASPAR CORE vertebrates, or a MEME motif file (DNA models only)",
    )  # fmt: skip
    motifs.add_argument(
        "--motif-p-value", type=float, default=1e-5, metavar="P",
        help="FIMO p-value threshold of a motif match (default: 1e-5)",
    )  # fmt: skip
    group = parser.add_argument_group("per-gene features and proteins")
    add_feature_arguments(group)
    add_protein_arguments(group)
    add_run_arguments(parser)
    parser.set_defaults(run=run_mutagenesis)
    return parser


def run_variant_effect(args: argparse.Namespace) -> int:
    from ..inference.variants import summary_lines, variant_effects

    if args.genome is None:
        raise ValueError("--genome is needed: the windows are cut from it")
    summary = variant_effects(
        args.vcf,
        args.model,
        genome=args.genome,
        bed=args.bed,
        tss_table=args.tss_table,
        window=None if args.full_window else tuple(args.window),
        tss_index=args.tss_index,
        output=args.output,
        annotate_vcf=args.annotate_vcf,
        members=args.members,
        incremental=not args.no_incremental,
        **run_options(args),
    )
    if summary is not None and not args.quiet:  # None: a process of a multi-process run other than rank 0
        print("\n".join(summary_lines(summary)))
    return 0


def run_mutagenesis(args: argparse.Namespace) -> int:
    motifs = args.motifs
    if motifs is not None and motifs != "jaspar" and not Path(motifs).exists():  # before the heavy imports
        raise FileNotFoundError(f"{Path(motifs).name or motifs}: file not found ({motifs})")
    from ..inference.mutagenesis import mutagenesis, summary_lines

    plot = None if args.no_plot else (args.plot or args.output.with_suffix(".png"))
    result = mutagenesis(
        args.model,
        sequence=args.sequence,
        fasta=args.fasta,
        record=args.record,
        gene=args.gene,
        region=args.region,
        genome=args.genome,
        bed=args.bed,
        tss_table=args.tss_table,
        window=None if args.full_window else tuple(args.window),
        tss_index=args.tss_index,
        scan=tuple(args.scan) if args.scan else None,
        output=args.output,
        tsv=args.tsv,
        plot=plot,
        motifs=motifs,
        motif_p_value=args.motif_p_value,
        incremental=not args.no_incremental,
        **run_options(args),
    )
    if "files" in result.record and not args.quiet:  # rank 0 of a multi-process run writes and reports
        print("\n".join(summary_lines(result, args.output)))
    return 0


__all__ = ["add_mutagenesis_parser", "add_variant_effect_parser", "run_mutagenesis", "run_variant_effect"]
