"""Model windows around genes' TSSs in genome coordinates, and variants applied to them.

A promoter BED line (or a TSS table row, `read_tss_table`) gives a window on the gene's strand, cut to the model's
window (`crop`, start..end indices, as `prepare genome` and `predict --bed` cut it) with the TSS at `tss_index` of the
BED window (by default its centre: 10,000 in Xpresso's 20,000-base windows). The reference sequence of a window is
exactly what `prepare genome` builds (`iter_window_sequences`: reverse-complemented on the minus strand, N beyond a
chromosome's ends).

**Variants, and indels in particular (`alt_window`).** The alleles are first trimmed to their minimal form (shared
trailing, then leading, bases removed; VCF's anchor base goes). The ALT allele is applied to the genome's + strand
and the window is then taken on the gene's strand (reverse-complemented for a minus-strand gene, as the reference).
The window stays anchored at the TSS: the TSS base keeps its index, and the bases between the TSS and the variant keep
theirs, so a length change moves only the sequence on the variant's side, away from the TSS. That side is trimmed
(an insertion pushes bases out of the window's far end) or padded (a deletion pulls bases in at the far end); the
padding is the genome's own sequence beyond the window (N only past a chromosome's end), so the window keeps its
length and every position reads what the mutated genome holds there. When a variant removes the TSS base itself, the
next remaining base downstream on the gene's strand takes the TSS's index; the bases of a complex change (several
bases replaced by a different number of others) are matched from its first genome position.

A variant belongs to a window when its trimmed REF span overlaps it (an insertion: when it falls between two bases
of the window).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..data.errors import DataError
from ..data.genome import Genome, PromoterWindow, iter_window_sequences, reverse_complement

DNA_LETTERS = frozenset("ACGTN")


@dataclass(frozen=True)
class GeneWindow:
    """The model window of one gene: `upstream` bases before the TSS and `downstream` bases from it (TSS included)
    on the gene's strand; `tss` the TSS's 0-based position on chromosome `chrom` (the genome's name for it)."""

    index: int
    gene_id: str
    chrom: str
    strand: str
    tss: int
    upstream: int
    downstream: int
    source: PromoterWindow
    crop: tuple[int, int]

    @property
    def length(self) -> int:
        return self.upstream + self.downstream

    @property
    def tss_index(self) -> int:
        """The TSS's index in the window's sequence (on the gene's strand)."""
        return self.upstream

    @property
    def start(self) -> int:
        """0-based start of the window on the + strand."""
        return self.tss - self.upstream if self.strand == "+" else self.tss - self.downstream + 1

    @property
    def end(self) -> int:
        """0-based, end-exclusive, on the + strand."""
        return self.start + self.length

    def offset(self, position: int) -> int:
        """The gene-strand offset from the TSS (0 at the TSS, negative upstream) of a 0-based genome position."""
        return position - self.tss if self.strand == "+" else self.tss - position

    def genome_position(self, index: int) -> int:
        """The 0-based genome position of an index of the window's sequence."""
        return self.start + index if self.strand == "+" else self.end - 1 - index

    def reference(self, genome: Genome) -> str:
        """The window's sequence as `prepare genome` cuts it."""
        ((_, sequence),) = iter_window_sequences(genome, [self.source], self.crop)
        return sequence


def gene_windows(
    windows: Sequence[PromoterWindow],
    genome: Genome,
    crop: tuple[int, int] | None,
    tss_index: int | None = None,
) -> list[GeneWindow]:
    """The model windows of promoter windows whose chromosome is in the genome (select them first:
    `select_genome_windows`). `crop` (start, end indices of each window; None for all of it) and `tss_index` (index
    of the TSS in each window; None for its centre) are checked against every window."""
    result = []
    for window in windows:
        first, last = crop if crop is not None else (0, window.length)
        tss = window.length // 2 if tss_index is None else tss_index
        where = f"BED line {window.line} (gene {window.gene_id})"
        if not 0 <= first < last <= window.length:
            raise DataError(f"{where}: window {first}..{last} does not fit its {window.length:,}-base window")
        if not first <= tss < last:
            raise DataError(
                f"{where}: the TSS (index {tss:,} of its {window.length:,}-base window) is outside the model's window "
                f"{first}..{last}"
            )
        name = genome.resolve(window.chrom)
        if name is None:
            raise DataError(f"{where}: chromosome {window.chrom!r} is not in {genome.name}")
        genome_tss = window.start + tss if window.strand == "+" else window.end - 1 - tss
        result.append(
            GeneWindow(
                index=len(result),
                gene_id=window.gene_id,
                chrom=name,
                strand=window.strand,
                tss=genome_tss,
                upstream=tss - first,
                downstream=last - tss,
                source=window,
                crop=(first, last),
            )
        )
    return result


class WindowIndex:
    """Finds the windows a variant falls in, per chromosome (the genome's names)."""

    def __init__(self, windows: Sequence[GeneWindow]):
        by_chrom: dict[str, list[GeneWindow]] = {}
        for window in windows:
            by_chrom.setdefault(window.chrom, []).append(window)
        self._windows = {chrom: sorted(found, key=lambda w: (w.start, w.index)) for chrom, found in by_chrom.items()}
        self._starts = {chrom: [w.start for w in found] for chrom, found in self._windows.items()}
        self._longest = {chrom: max(w.length for w in found) for chrom, found in self._windows.items()}

    def overlapping(self, chrom: str, start: int, length: int) -> list[GeneWindow]:
        """Windows holding the span [start, start + length), or for `length` 0 (an insertion before `start`) the
        windows with bases on both sides of it; in the order of the promoter file."""
        if chrom not in self._windows:
            return []
        windows, starts = self._windows[chrom], self._starts[chrom]
        low = bisect.bisect_left(starts, start - self._longest[chrom] - 1)
        high = bisect.bisect_right(starts, start + max(length, 1))
        found = []
        for window in windows[low:high]:
            if length:
                inside = start < window.end and start + length > window.start
            else:
                inside = window.start < start < window.end
            if inside:
                found.append(window)
        return sorted(found, key=lambda w: w.index)


@dataclass(frozen=True)
class Change:
    """An allele in minimal form: `ref` (possibly empty: an insertion before `start`) replaced by `alt` (possibly
    empty: a deletion) at 0-based `start`."""

    start: int
    ref: str
    alt: str

    @property
    def key(self) -> tuple[int, str, str]:
        return self.start, self.ref, self.alt


def minimal_change(pos: int, ref: str, alt: str) -> Change:
    """The minimal form of a VCF allele (`pos` 1-based): trailing, then leading shared bases removed."""
    ref, alt, start = ref.upper(), alt.upper(), pos - 1
    while ref and alt and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while ref and alt and ref[0] == alt[0]:
        ref, alt, start = ref[1:], alt[1:], start + 1
    return Change(start, ref, alt)


def change_offset(window: GeneWindow, change: Change) -> int:
    """The gene-strand offset from the TSS of the change's first base on the gene's strand (for an insertion, of
    the base after it on the + strand, or before it on the minus strand)."""
    if window.strand == "+":
        return window.offset(change.start)
    last = change.start + len(change.ref) - 1 if change.ref else change.start
    return window.offset(last)


def alt_window(genome: Genome, window: GeneWindow, change: Change) -> str:
    """The window's sequence with `change` applied, anchored at the TSS (see the module docstring)."""
    margin = len(change.ref) + 1
    first = min(window.start, change.start) - margin
    last = max(window.end, change.start + len(change.ref)) + margin
    plus, _ = genome.window(window.chrom, first, last, "+", window.gene_id)
    at = change.start - first
    mutated = plus[:at] + change.alt + plus[at + len(change.ref) :]
    tss = window.tss - first
    if window.tss < change.start:
        anchor = tss
    elif window.tss >= change.start + len(change.ref):
        anchor = tss + len(change.alt) - len(change.ref)
    elif window.tss - change.start < len(change.alt):
        anchor = at + (window.tss - change.start)
    else:  # the TSS base is deleted: the next base downstream on the gene's strand takes its place
        anchor = at + len(change.alt) if window.strand == "+" else at - 1
    before = window.tss - window.start  # + strand bases before the TSS inside the window
    after = window.end - window.tss
    sequence = mutated[anchor - before : anchor + after]
    if anchor - before < 0 or len(sequence) != window.length:
        raise AssertionError(f"window of {window.gene_id}: {len(sequence)} bases after the change, not {window.length}")
    return reverse_complement(sequence) if window.strand == "-" else sequence


def substitutions(sequence: str, positions: Sequence[int], letters: str) -> Iterator[tuple[int, str, str]]:
    """(position, letter, mutated sequence) for every letter of `letters` other than the one at each position;
    positions whose letter is not in `letters` (N, X) are skipped."""
    for position in positions:
        here = sequence[position]
        if here not in letters:
            continue
        for letter in letters:
            if letter != here:
                yield position, letter, sequence[:position] + letter + sequence[position + 1 :]


__all__ = [
    "Change",
    "DNA_LETTERS",
    "GeneWindow",
    "WindowIndex",
    "alt_window",
    "change_offset",
    "gene_windows",
    "minimal_change",
    "substitutions",
]
