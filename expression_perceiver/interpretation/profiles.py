"""Positional profiles: how much each position of the window contributes, averaged over the sequences of an
attribution file, with bootstrap intervals over the sequences.

`positional_profile` reads the file's memory-mapped arrays a block of sequences by a block of positions at a time,
so memory stays bounded for 20,000 sequences of 20,000 bases; the bootstrap draws one (replicates, sequences)
multinomial weight matrix and turns every replicate's mean into a matrix product per block. Sequences of several
lengths (proteins) are aligned at their first position (`anchor="start"`, the N-terminus) or their last one
(`anchor="end"`, positions counted back from the C-terminus, -1 the last residue); each position's mean is taken
over the sequences that reach it.

`write_profile` writes the table (TSV) and a figure; `summarise_regions` gives the shares of the first, middle and
last halves of the window, the regions the masking study hides, so that the profile can be set beside its r2 losses.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import AtomicFile, write_json
from ..data.errors import DataError
from ..inference.attribution_files import AttributionFile

TRACKS = ("attributions", "cross_attention")
ANCHORS = ("start", "end")
# Bytes of values read per block (before the float64 copy) and of bootstrap sums kept per block of positions.
BLOCK_BYTES = 64 * 2**20
INTERVAL = (2.5, 97.5)  # percentiles of the bootstrap means: a 95% interval
STATISTICS = ("mean_abs", "mean_abs_low", "mean_abs_high", "mean_signed", "mean_signed_low", "mean_signed_high")


@dataclass
class ProfileTable:
    """One row per position (columns as arrays) and what they were computed from."""

    position: np.ndarray  # relative to the TSS, from the start, or (anchor "end") counted back from the end
    n: np.ndarray  # sequences covering the position
    mean_abs: np.ndarray
    mean_abs_low: np.ndarray
    mean_abs_high: np.ndarray
    mean_signed: np.ndarray
    mean_signed_low: np.ndarray
    mean_signed_high: np.ndarray
    heads: dict[str, np.ndarray] = field(default_factory=dict)  # cross-attention: `head{h}`, mean over layers
    source: str = ""
    track: str = "attributions"
    anchor: str = "start"
    origin: str = "start"  # the file's origin: `tss` or `start`
    letters: str = ""
    method: str = ""
    sequences: int = 0
    bootstrap: int = 0
    seed: int = 0

    def columns(self) -> dict[str, np.ndarray]:
        """The table's columns in file order."""
        names = ("position", "n", "mean_abs", "mean_abs_low", "mean_abs_high", "mean_signed")
        names += ("mean_signed_low", "mean_signed_high")
        return {**{name: getattr(self, name) for name in names}, **self.heads}

    def describe(self) -> dict[str, Any]:
        """What the table was computed from, for sidecars and reports."""
        return {
            "source": self.source,
            "track": self.track,
            "anchor": self.anchor,
            "origin": self.origin,
            "letters": self.letters,
            "method": self.method,
            "sequences": self.sequences,
            "positions": len(self.position),
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "interval": "bootstrap percentile 95% over sequences" if self.bootstrap else "none",
        }

    def __len__(self) -> int:
        return len(self.position)


@dataclass
class BlockSums:
    """Sums over the sequences for one block of positions: plain, and per bootstrap replicate."""

    count: np.ndarray  # (positions,)
    signed: np.ndarray
    absolute: np.ndarray
    heads: np.ndarray | None  # (positions, heads)
    boot_count: np.ndarray | None  # (replicates, positions); None when every sequence covers every position
    boot_signed: np.ndarray
    boot_absolute: np.ndarray


def positional_profile(
    file: AttributionFile,
    track: str = "attributions",
    anchor: str = "start",
    bootstrap: int = 1000,
    seed: int = 0,
    block_bytes: int = BLOCK_BYTES,
) -> ProfileTable:
    """Per position: sequences covering it, mean |contribution| and mean signed contribution with bootstrap 95%
    percentile intervals over the sequences (`numpy.random.default_rng(seed)`). `track="attributions"` reads each
    position's contribution (attributions summed over the letters); `track="cross_attention"` each sequence's
    attention weights averaged over layers and heads (non-negative, so both means agree), plus per-head columns."""
    check_request(file, track, anchor, bootstrap)
    lengths = np.asarray(file.lengths, dtype=np.int64)
    width = int(lengths.max(initial=0))
    source = SourceArray(file, track)
    weights = bootstrap_weights(len(lengths), bootstrap, seed)
    gaps = not np.all(lengths == width)  # some sequences do not reach some columns
    columns = empty_columns(width, source.heads)
    position_block, sequence_block = block_sizes(width, len(lengths), source.row_size, bootstrap, block_bytes)
    for start in range(0, width, position_block):
        stop = min(start + position_block, width)
        sums = block_sums(source, lengths, width, anchor, start, stop, weights, sequence_block, gaps)
        fill_columns(columns, sums, slice(start, stop), bootstrap)
    if track == "cross_attention":  # weights are non-negative: the signed mean is the absolute one
        for suffix in ("", "_low", "_high"):
            columns[f"mean_signed{suffix}"] = columns[f"mean_abs{suffix}"].copy()
    heads = {f"head{h}": columns["heads"][:, h] for h in range(source.heads)}
    return ProfileTable(
        position=profile_positions(file, width, anchor),
        n=columns["n"],
        **{name: columns[name] for name in STATISTICS},
        heads=heads,
        source=str(file.path),
        track=track,
        anchor=anchor,
        origin=file.origin,
        letters=file.letters,
        method=str(file.metadata.get("method", "")),
        sequences=len(lengths),
        bootstrap=bootstrap,
        seed=seed,
    )


def check_request(file: AttributionFile, track: str, anchor: str, bootstrap: int) -> None:
    if track not in TRACKS:
        raise ValueError(f"track must be one of {', '.join(TRACKS)}, got {track!r}")
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be 0 (no intervals) or more replicates, got {bootstrap}")
    if not file.has(track):
        raise DataError(f"{file.path}: holds no {track!r} (it holds {', '.join(file.members)})")
    if len(file) == 0:
        raise DataError(f"{file.path}: holds no sequences")


class SourceArray:
    """A per-position member as rows of positions: `(sequences, length, ...)` when uniform, `(positions, ...)` flat
    with offsets otherwise; `values` turns a block of rows into one number per position (and per head)."""

    def __init__(self, file: AttributionFile, track: str):
        self.track = track
        self.uniform = file.uniform
        self.offsets = np.asarray(file.offsets, dtype=np.int64)
        values = file.array(track)
        if track == "cross_attention":  # back to positions first, as stored
            values = np.moveaxis(values, -1, 1 if file.uniform else 0)
        self.values = values
        trailing = values.shape[2:] if file.uniform else values.shape[1:]
        self.heads = int(trailing[1]) if track == "cross_attention" else 0
        self.row_size = max(int(np.prod(trailing)), 1)

    def block(self, rows: slice, columns: slice, index: np.ndarray | None) -> np.ndarray:
        """Rows of a block of sequences and positions: sliced when uniform, gathered by flat `index` otherwise."""
        if index is None:
            return np.asarray(self.values[rows, columns])
        # Columns a sequence does not reach point at its first row (masked later); the last sequence may be empty.
        return np.asarray(self.values[np.minimum(index, max(len(self.values) - 1, 0))])

    def reduce(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(sequences, positions) values and, for cross-attention, (sequences, positions, heads) per-head means."""
        block = block.astype(np.float64, copy=False)
        if self.track == "attributions":
            return block.sum(-1), None
        heads = block.mean(axis=-2)  # over layers
        return heads.mean(-1), heads


def bootstrap_weights(sequences: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, sequences) counts: how often each replicate draws each sequence (resampling with replacement)."""
    rng = np.random.default_rng(seed)
    if replicates == 0:
        return np.zeros((0, sequences))
    return rng.multinomial(sequences, np.full(sequences, 1.0 / sequences), size=replicates).astype(np.float64)


def block_sizes(width: int, sequences: int, row_size: int, bootstrap: int, block_bytes: int) -> tuple[int, int]:
    """Positions per block (three (replicates, positions) float64 sums fit in `block_bytes`) and sequences per
    block (their values, as float64, fit in `block_bytes`)."""
    positions = max(1, min(width, block_bytes // (24 * max(bootstrap, 1))))
    rows = max(1, min(sequences, block_bytes // (8 * positions * row_size)))
    return positions, rows


def covered(lengths: np.ndarray, width: int, anchor: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """For each sequence (rows) and column of [start, stop): the index within the sequence and whether it has one."""
    columns = np.arange(start, stop)[None, :]
    shift = (width - lengths)[:, None] if anchor == "end" else 0
    within = columns - shift
    return within, (within >= 0) & (within < lengths[:, None])


def block_sums(
    source: SourceArray,
    lengths: np.ndarray,
    width: int,
    anchor: str,
    start: int,
    stop: int,
    weights: np.ndarray,
    sequence_block: int,
    gaps: bool,
) -> BlockSums:
    """Sums over all sequences, in blocks of `sequence_block`, for the columns [start, stop)."""
    size, replicates = stop - start, len(weights)
    sums = BlockSums(
        count=np.zeros(size),
        signed=np.zeros(size),
        absolute=np.zeros(size),
        heads=np.zeros((size, source.heads)) if source.heads else None,
        boot_count=np.zeros((replicates, size)) if gaps else None,
        boot_signed=np.zeros((replicates, size)),
        boot_absolute=np.zeros((replicates, size)),
    )
    for first in range(0, len(lengths), sequence_block):
        rows = slice(first, min(first + sequence_block, len(lengths)))
        within, mask = covered(lengths[rows], width, anchor, start, stop)
        index = None if source.uniform else source.offsets[rows][:, None] + np.where(mask, within, 0)
        values, heads = source.reduce(source.block(rows, slice(start, stop), index))
        add_block(sums, values, heads, mask, weights[:, rows], source.track == "attributions")
    return sums


def add_block(
    sums: BlockSums, values: np.ndarray, heads: np.ndarray | None, mask: np.ndarray, weights, signed: bool
) -> None:
    """Adds one block of sequences' values (zero where a sequence does not cover a position)."""
    values = np.where(mask, values, 0.0)
    absolute = np.abs(values)
    sums.count += mask.sum(0)
    sums.signed += values.sum(0)
    sums.absolute += absolute.sum(0)
    if heads is not None:
        sums.heads += np.where(mask[..., None], heads, 0.0).sum(0)
    if len(weights):
        sums.boot_absolute += weights @ absolute
        if signed:  # attention weights are non-negative: their signed sums are the absolute ones
            sums.boot_signed += weights @ values
        if sums.boot_count is not None:
            sums.boot_count += weights @ mask.astype(np.float64)


def empty_columns(width: int, heads: int) -> dict[str, np.ndarray]:
    columns = {name: np.full(width, np.nan) for name in STATISTICS}
    columns["n"] = np.zeros(width, dtype=np.int64)
    columns["heads"] = np.full((width, heads), np.nan)
    return columns


def fill_columns(columns: dict[str, np.ndarray], sums: BlockSums, where: slice, bootstrap: int) -> None:
    """Means and intervals of one block of positions from its sums (NaN where no sequence covers a position)."""
    count = sums.count
    columns["n"][where] = count.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["mean_abs"][where] = sums.absolute / count
        columns["mean_signed"][where] = sums.signed / count
        if sums.heads is not None:
            columns["heads"][where] = sums.heads / count[:, None]
        if bootstrap == 0:
            return
        # Every replicate draws as many sequences as there are, so without gaps its denominator is that number.
        denominator = sums.boot_count if sums.boot_count is not None else count[None, :]
        for name, boot in (("mean_abs", sums.boot_absolute), ("mean_signed", sums.boot_signed)):
            low, high = percentiles(boot / denominator)
            columns[f"{name}_low"][where] = low
            columns[f"{name}_high"][where] = high


def percentiles(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval of each column of (replicates, positions) bootstrap means, ignoring replicates
    that drew no sequence covering the position."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: positions no replicate covers
        low, high = np.nanpercentile(means, INTERVAL, axis=0)
    return low, high


def profile_positions(file: AttributionFile, width: int, anchor: str) -> np.ndarray:
    """Each column's position: the file's (TSS-relative or from the start) or, anchored at the end, -width..-1."""
    if anchor == "end":
        return np.arange(-width, 0, dtype=np.int64)
    positions = np.asarray(file.positions(), dtype=np.int64)
    if len(positions) != width:
        raise DataError(f"{file.path}: {len(positions)} positions for sequences of up to {width} positions")
    return positions


def axis_label(table: ProfileTable) -> str:
    protein = not is_dna(table.letters)
    if table.anchor == "end":
        return "position from the C-terminus (-1 = last residue)" if protein else "position from the sequence's end"
    if table.origin == "tss":
        return "position relative to the TSS"
    return "position from the N-terminus" if protein else "position from the sequence's start"


def is_dna(letters: str) -> bool:
    return set("ACGT") <= set(letters.upper()) <= set("ACGTN")


def region_bounds(width: int) -> dict[str, tuple[int, int]]:
    """Column ranges [start, stop) of the masking study's halves: the first, the central (the masking collator's
    `middle` span, rounded towards the start) and the last `width // 2` positions."""
    half = width // 2
    middle = (width - half) // 2
    return {"first": (0, half), "middle": (middle, middle + half), "last": (width - half, width)}


def summarise_regions(table: ProfileTable) -> dict[str, float | int | None]:
    """Each half's share of the total mean |contribution| (`first`, `middle`, `last`: `first` and `last` partition an
    even window, `middle` overlaps both, as the masking study's spans do) and the peak's position and value."""
    values = np.nan_to_num(table.mean_abs)
    total = float(values.sum())
    summary: dict[str, float | int | None] = {}
    for name, (start, stop) in region_bounds(len(values)).items():
        summary[name] = float(values[start:stop].sum()) / total if total > 0 else float("nan")
    peak = int(np.argmax(values)) if len(values) else None
    summary["peak_position"] = int(table.position[peak]) if peak is not None else None
    summary["peak_mean_abs"] = float(values[peak]) if peak is not None else None
    return summary


def region_positions(table: ProfileTable) -> dict[str, list[int]]:
    """The first and last position of each half."""
    bounds = region_bounds(len(table.position))
    return {name: [int(table.position[a]), int(table.position[b - 1])] for name, (a, b) in bounds.items() if b > a}


def write_profile(
    table: ProfileTable, tsv_path: str | Path, png_path: str | Path | None = None, title: str = ""
) -> None:
    """The table as a TSV (header row, one row per position, floats to 6 significant digits), `<tsv>.json` (what
    it was computed from and the regions' shares) and, with `png_path`, a figure; every file written atomically."""
    tsv_path = Path(tsv_path)
    write_table(table, tsv_path)
    record = {**table.describe(), "regions": summarise_regions(table), "region_positions": region_positions(table)}
    write_json(tsv_path.with_name(tsv_path.name + ".json"), record)
    if png_path is not None:
        plot_profile(table, Path(png_path), title)


def write_table(table: ProfileTable, path: Path) -> None:
    columns = table.columns()
    formats = ["%d" if name in ("position", "n") else "%.6g" for name in columns]
    buffer = io.StringIO()
    matrix = np.column_stack([np.asarray(values, dtype=np.float64) for values in columns.values()])
    np.savetxt(buffer, matrix, fmt=formats, delimiter="\t", header="\t".join(columns), comments="")
    with AtomicFile(path) as target:
        target.handle.write(buffer.getvalue())
        target.commit()


def plot_profile(table: ProfileTable, path: Path, title: str = "") -> None:
    """Mean |contribution| with its interval (top), the signed mean (middle) and the masking study's halves as
    three translucent bands in a strip (bottom); a dashed line at the TSS."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    x = table.position
    figure, (top, middle, strip) = plt.subplots(
        3, 1, figsize=(10, 5.5), sharex=True, layout="constrained", gridspec_kw={"height_ratios": [3, 2, 0.6]}
    )
    quantity = "attention weight" if table.track == "cross_attention" else "attribution"
    plot_band(top, x, table.mean_abs, table.mean_abs_low, table.mean_abs_high, "#1f4e79")
    top.set_ylabel(f"mean |{quantity}|" if table.track == "attributions" else f"mean {quantity}")
    plot_band(middle, x, table.mean_signed, table.mean_signed_low, table.mean_signed_high, "#8c2d04")
    middle.axhline(0, color="grey", linewidth=0.6)
    middle.set_ylabel(f"mean signed {quantity}")
    plot_regions(strip, x)
    strip.set_xlabel(axis_label(table))
    if table.origin == "tss" and table.anchor == "start" and len(x) and x.min() <= 0 <= x.max():
        for axis in (top, middle, strip):
            axis.axvline(0, color="black", linewidth=0.8, linestyle="--")
    band = "95% bootstrap interval over sequences" if table.bootstrap else "no interval"
    heading = title or f"positional profile of {Path(table.source).name}"
    source = f"{table.sequences:,} sequences, {table.method or table.track}"
    figure.suptitle(f"{heading}\n{source}; band: {band}", fontsize=9)
    with AtomicFile(path, "wb") as target:
        figure.savefig(target.handle, format="png", dpi=110)
        target.commit()
    plt.close(figure)


def plot_band(axis, x: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray, colour: str) -> None:
    if np.isfinite(low).any():
        axis.fill_between(x, low, high, color=colour, alpha=0.25, linewidth=0, step="mid")
    axis.plot(x, mean, color=colour, linewidth=0.8, drawstyle="steps-mid")


def plot_regions(axis, x: np.ndarray) -> None:
    """One row per masked half, so that the overlapping middle stays visible."""
    colours = {"first": "#4477aa", "middle": "#228833", "last": "#cc6677"}
    for row, (name, (start, stop)) in enumerate(region_bounds(len(x)).items()):
        if stop <= start:
            continue
        left, right = x[start] - 0.5, x[stop - 1] + 0.5
        axis.axvspan(left, right, ymin=1 - (row + 1) / 3, ymax=1 - row / 3, color=colours[name], alpha=0.35)
        axis.text((left + right) / 2, 2.5 - row, name, ha="center", va="center", fontsize=7)
    axis.set_ylim(0, 3)
    axis.set_yticks([])
    if len(x):
        axis.set_xlim(x[0] - 0.5, x[-1] + 0.5)


__all__ = ["ProfileTable", "positional_profile", "summarise_regions", "write_profile"]


@dataclass
class LetterContributions:
    """Per letter: positions holding it, the mean signed and mean |contribution| of those positions, over every
    sequence of a file (which residues or bases carry the signal, and in which direction)."""

    letters: str
    count: np.ndarray
    mean_signed: np.ndarray
    mean_abs: np.ndarray

    def rows(self) -> list[list]:
        order = np.argsort(-self.mean_signed)
        return [
            [self.letters[i], int(self.count[i]), float(self.mean_signed[i]), float(self.mean_abs[i])] for i in order
        ]


def letter_contributions(file: AttributionFile) -> LetterContributions:
    """Each letter's mean contribution where it stands (the attribution of the letter present)."""
    letters = file.letters
    count, signed, absolute = np.zeros(len(letters)), np.zeros(len(letters)), np.zeros(len(letters))
    for one_hot, attributions in zip(file.sequences("one_hot"), file.sequences("attributions"), strict=True):
        present = np.asarray(one_hot, dtype=np.float64)
        contribution = np.asarray(attributions, dtype=np.float64).sum(-1, keepdims=True) * present
        count += present.sum(0)
        signed += contribution.sum(0)
        absolute += np.abs(contribution).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return LetterContributions(letters, count, signed / count, absolute / count)


def relative_halves(file: AttributionFile, bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Each sequence's share of its own |contribution| in its first, middle and last half (halves of each sequence's
    own length, as the masking study removes them from each protein), averaged over sequences with bootstrap 95%
    intervals: the length-independent answer to "N- or C-terminus", which a profile over absolute positions mixes
    with protein length."""
    shares = []
    for attributions in file.sequences("attributions"):
        values = np.abs(np.asarray(attributions, dtype=np.float64).sum(-1))
        total = values.sum()
        if len(values) < 2 or total <= 0:
            continue
        bounds = region_bounds(len(values))
        shares.append([values[start:stop].sum() / total for start, stop in bounds.values()])
    shares_array = np.asarray(shares)
    weights = bootstrap_weights(len(shares_array), bootstrap, seed)
    replicates = weights @ shares_array / len(shares_array) if bootstrap else np.zeros((0, 3))
    summary = {}
    for index, name in enumerate(region_bounds(2)):
        low, high = np.percentile(replicates[:, index], [2.5, 97.5]) if bootstrap else (np.nan, np.nan)
        summary[name] = {"mean": float(shares_array[:, index].mean()), "low": float(low), "high": float(high)}
    summary["sequences"] = {"n": len(shares_array)}
    return summary


def write_letter_table(contributions: LetterContributions, path: str | Path) -> None:
    with AtomicFile(path) as target:
        target.handle.write("letter\tpositions\tmean_signed\tmean_abs\n")
        for letter, count, signed, absolute in contributions.rows():
            target.handle.write(f"{letter}\t{count}\t{signed:.6g}\t{absolute:.6g}\n")
        target.commit()
