"""Rebuild Xpresso inputs from a reference genome FASTA, a promoter BED, a label table and half-life features.

The genome is opened with `pyfaidx` (plain FASTA, or bgzip with Biopython installed), which indexes it and reads
only the windows asked for. Each BED line (chrom, start, end, gene_id, score, strand) gives one window; a minus-strand
window is reverse-complemented so that the TSS sits at the same index on the gene's strand (10,000 for the Xpresso
BED). A window running off either end of its chromosome is padded with N on that side. Soft-masked lower case and
IUPAC codes are read as A C G T N.

What is dropped is reported, never silent: genes without a label, genes without half-life features (when features
are given), and windows on chromosomes missing from the FASTA. Missing chromosomes are reported rather than fatal,
because a genome without some contigs is common; but a rebuild where no BED chromosome, or no BED gene's label, is
found is an error, since it means a wrong genome or mismatched ids. Chromosome names match with or without a `chr`
prefix (`1` = `chr1`, `MT` = `chrM`).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyfaidx

from .errors import DataError, ReadReport, file_label
from .tables import LabelRow, iter_table_rows, open_text, tokenizer_for


@dataclass(frozen=True)
class PromoterWindow:
    """One BED line: a 0-based, end-exclusive window around a gene's TSS."""

    gene_id: str
    chrom: str
    start: int
    end: int
    strand: str
    line: int

    @property
    def length(self) -> int:
        return self.end - self.start


def read_promoter_bed(path: str | PathLike) -> list[PromoterWindow]:
    """Windows of a BED file with at least six columns (chrom, start, end, gene_id, score, strand)."""
    name = file_label(path)
    windows = []
    with open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\r\n").split("\t")
            where = f"{name}: line {line_number}"
            if len(fields) < 6:
                raise DataError(f"{where} has {len(fields)} tab-separated columns; a promoter BED needs 6")
            chrom, start, end, gene_id, _score, strand = (field.strip() for field in fields[:6])
            try:
                start, end = int(start), int(end)
            except ValueError:
                raise DataError(f"{where} has start {start!r} and end {end!r}; both must be integers") from None
            if end <= start:
                raise DataError(f"{where} has end {end} <= start {start}")
            if strand not in ("+", "-"):
                raise DataError(f"{where} (gene {gene_id}) has strand {strand!r}; it must be + or -")
            if not gene_id:
                raise DataError(f"{where} has an empty gene id (column 4)")
            windows.append(PromoterWindow(gene_id, chrom, start, end, strand, line_number))
    if not windows:
        raise DataError(f"{name}: no promoter windows")
    return windows


TSS_TABLE_COLUMNS = ("gene_id", "chrom", "tss", "strand")


def read_tss_table(path: str | PathLike, window_length: int = 20_000) -> list[PromoterWindow]:
    """Promoters given by their TSS, as windows of `window_length` bases laid out as the Xpresso BED's: a TSV/CSV table
    with columns gene_id, chrom, tss (1-based position of the TSS) and strand (+ or -) gives for each row the window
    whose index `window_length // 2` on the gene's strand is the TSS (10,000 in a 20,000-base window)."""
    name = file_label(path)
    centre = window_length // 2
    windows = []
    for line, row in iter_table_rows(path, TSS_TABLE_COLUMNS):
        where = f"{name}: line {line}"
        gene_id, chrom, strand = row["gene_id"].strip(), row["chrom"].strip(), row["strand"].strip()
        if not gene_id:
            raise DataError(f"{where} has an empty gene_id")
        try:
            tss = int(row["tss"]) - 1
        except ValueError:
            raise DataError(f"{where} (gene {gene_id}) has tss {row['tss']!r}; it must be an integer") from None
        if tss < 0:
            raise DataError(f"{where} (gene {gene_id}) has tss {tss + 1}; positions are 1-based")
        if strand not in ("+", "-"):
            raise DataError(f"{where} (gene {gene_id}) has strand {strand!r}; it must be + or -")
        start = tss - centre if strand == "+" else tss + centre + 1 - window_length
        windows.append(PromoterWindow(gene_id, chrom, start, start + window_length, strand, line))
    if not windows:
        raise DataError(f"{name}: no promoters")
    return windows


def chromosome_aliases(name: str) -> list[str]:
    """Names the same chromosome may have in another genome build's naming: `1`/`chr1`, `MT`/`chrM`."""
    bare = name[3:] if name.lower().startswith("chr") else name
    mitochondrial = ["M", "MT"] if bare.upper() in ("M", "MT") else [bare]
    return [name] + [alias for bare in mitochondrial for alias in (bare, "chr" + bare) if alias != name]


def _token_tables() -> tuple[np.ndarray, np.ndarray, int]:
    """Letter by token id (A C G T N), complement by token id, and the id of N."""
    vocabulary = tokenizer_for("dna").vocabulary()
    letters = np.zeros(256, dtype=np.uint8)
    complement = np.zeros(256, dtype=np.uint8)
    for letter, paired in zip("ACGTN", "TGCAN", strict=True):
        letters[vocabulary[letter]] = ord(letter)
        complement[vocabulary[letter]] = vocabulary[paired]
    return letters, complement, vocabulary["N"]


LETTER_BY_ID, COMPLEMENT_BY_ID, N_ID = _token_tables()


def reverse_complement(sequence: str) -> str:
    """Reverse complement of a string of A C G T N (any case; IUPAC codes read as N)."""
    ids = tokenizer_for("dna").encode_fast(sequence)
    return LETTER_BY_ID[COMPLEMENT_BY_ID[ids[::-1]]].tobytes().decode("ascii")


class Genome:
    """A reference genome FASTA, indexed by `pyfaidx` (a `.fai`, and `.gzi` for bgzip, written beside it)."""

    def __init__(self, path: str | PathLike):
        self.path = Path(path)
        self.name = file_label(path)
        if not self.path.is_file():
            raise DataError(f"{self.name}: file not found ({self.path})")
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), as_raw=True)
        except ImportError:
            raise DataError(
                f"{self.name}: reading a bgzip-compressed FASTA needs Biopython >= 1.73 (pip install biopython); "
                "or decompress it"
            ) from None
        except pyfaidx.UnsupportedCompressionFormat:
            raise DataError(
                f"{self.name}: compressed with plain gzip, which cannot be indexed; recompress it with bgzip "
                "or decompress it"
            ) from None
        except (pyfaidx.FastaIndexingError, ValueError, OSError) as error:
            raise DataError(f"{self.name}: cannot be indexed as FASTA ({error})") from None
        self._check_index_fits()
        self._tokenizer = tokenizer_for("dna")

    def _check_index_fits(self) -> None:
        """A `.fai` of another FASTA (newer than this one, so pyfaidx keeps it) points past the file's end or at
        a wrong place: refuse it rather than read wrong bases."""
        faidx = self._fasta.faidx
        if getattr(faidx, "_bgzf", False) or self.path.suffix in (".gz", ".bgz"):
            return  # offsets into compressed files are virtual: pyfaidx checks them itself
        size = self.path.stat().st_size
        stale = [
            name for name, record in faidx.index.items() if record.offset + record.rlen > size or record.offset < 0
        ]
        if stale:
            raise DataError(
                f"{self.name}: its index {self.path.name}.fai does not describe it (sequence {stale[0]} lies beyond "
                f"the file's {size:,} bytes: an index of another FASTA?); delete the .fai to rebuild it"
            )

    @property
    def sequence_names(self) -> list[str]:
        return list(self._fasta.keys())

    def resolve(self, chrom: str) -> str | None:
        """The FASTA sequence name of a BED chromosome, trying `chr`-prefix aliases; None when absent."""
        return next((alias for alias in chromosome_aliases(chrom) if alias in self._fasta), None)

    def length(self, name: str) -> int:
        return len(self._fasta[name])

    def window(self, name: str, start: int, end: int, strand: str, gene_id: str = "") -> tuple[str, bool]:
        """The window [start, end) of sequence `name` on `strand` as A C G T N, and whether it was padded with N.

        Positions before the chromosome start or past its end are N, on the side where they fall.
        """
        length = self.length(name)
        inside_start, inside_end = max(start, 0), min(end, length)
        inside = self._fasta[name][inside_start:inside_end] if inside_start < inside_end else ""
        ids = self._tokenizer.encode_fast(inside)
        invalid = np.flatnonzero(ids == self._tokenizer.unk_token_id)
        if len(invalid):
            position = int(invalid[0])
            raise DataError(
                f"{self.name}: sequence {name!r} position {inside_start + position + 1:,} (1-based) has letter "
                f"{inside[position]!r}, not a DNA letter (window of gene {gene_id})"
            )
        left_pad = min(max(-start, 0), end - start)
        right_pad = end - start - left_pad - len(ids)
        ids = np.concatenate([np.full(left_pad, N_ID, np.uint8), ids, np.full(right_pad, N_ID, np.uint8)])
        if strand == "-":
            ids = COMPLEMENT_BY_ID[ids[::-1]]
        return LETTER_BY_ID[ids].tobytes().decode("ascii"), bool(left_pad or right_pad)

    def close(self) -> None:
        self._fasta.close()

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def missing_chromosomes(windows: list[PromoterWindow], genome: Genome) -> list[str]:
    """The BED chromosomes absent from the genome (under any `chr`-prefix alias); `DataError` when all are."""
    bed_chroms = list(dict.fromkeys(window.chrom for window in windows))
    missing = [chrom for chrom in bed_chroms if genome.resolve(chrom) is None]
    if len(missing) == len(bed_chroms):
        raise DataError(
            f"{genome.name}: none of the BED chromosomes ({', '.join(bed_chroms[:5])}, ...) is in the genome "
            f"(its sequences: {', '.join(genome.sequence_names[:5])}, ...): wrong genome?"
        )
    return missing


def select_genome_windows(
    windows: list[PromoterWindow], genome: Genome, report: ReadReport | None = None
) -> list[PromoterWindow]:
    """The windows whose chromosome is in the genome, for reading without labels (prediction): the others are
    dropped and counted in `report`, as `select_promoter_windows` does."""
    report = report if report is not None else ReadReport(genome.name)
    missing = missing_chromosomes(windows, genome)
    for chrom in missing:
        report.note(f"chromosomes missing from {genome.name}", chrom)
    selected = []
    for window in windows:
        if window.chrom in missing:
            report.drop(f"chromosome not in {genome.name}", window.gene_id)
        else:
            selected.append(window)
    return selected


def select_promoter_windows(
    windows: list[PromoterWindow],
    genome: Genome,
    labels: dict[str, LabelRow],
    half_life: dict[str, list[float]] | None = None,
    report: ReadReport | None = None,
    labels_name: str = "the label table",
    half_life_name: str = "the half-life table",
) -> list[PromoterWindow]:
    """The windows that can be rebuilt: chromosome in the genome, gene labelled, and with half-life features when
    those are given. Everything left out is counted in `report` (and labels without a window too)."""
    report = report if report is not None else ReadReport(genome.name)
    missing_chroms = missing_chromosomes(windows, genome)
    if not any(window.gene_id in labels for window in windows):
        raise DataError(
            f"{labels_name}: no BED gene has a label (BED ids like {windows[0].gene_id!r}, "
            f"label ids like {next(iter(labels), 'none')!r})"
        )
    for chrom in missing_chroms:
        report.note(f"chromosomes missing from {genome.name}", chrom)
    missing = set(missing_chroms)
    selected = []
    for window in windows:
        if window.chrom in missing:
            report.drop(f"chromosome not in {genome.name}", window.gene_id)
        elif window.gene_id not in labels:
            report.drop(f"no label in {labels_name}", window.gene_id)
        elif half_life is not None and window.gene_id not in half_life:
            report.drop(f"no half-life features in {half_life_name}", window.gene_id)
        else:
            selected.append(window)
    windowed = {window.gene_id for window in windows}
    for gene_id in labels:
        if gene_id not in windowed:
            report.drop("label without a BED window", gene_id)
    return selected


def iter_window_sequences(
    genome: Genome,
    windows: list[PromoterWindow],
    crop: tuple[int, int] | None = None,
    report: ReadReport | None = None,
) -> Iterator[tuple[PromoterWindow, str]]:
    """(window, sequence) of each window in BED order: the window on the gene's strand (reverse-complemented on the
    minus strand, N beyond a chromosome's ends), cut to `crop` (start, end) indices when given.

    `crop` keeps those indices of each window on the gene's strand (e.g. 3000..13500, Xpresso's best -7,000..+3,500
    around the TSS of a 20,000-base window); None keeps the whole window. Every window must then have the same
    length, or the crop would miss some TSS.
    """
    report = report if report is not None else ReadReport(genome.name)
    seen: set[str] = set()
    expected_length = windows[0].length if windows else 0
    for window in windows:
        if crop is not None and window.length != expected_length:
            # A crop is a place relative to the TSS only if every window is centred alike: a line clipped at a
            # chromosome's start (as `bedtools slop` writes it) would move the TSS by the clipped length.
            raise DataError(
                f"BED line {window.line} (gene {window.gene_id}): a {window.length:,}-base window where the others "
                f"have {expected_length:,}; the crop {crop[0]}..{crop[1]} would miss its TSS (clipped at a "
                "chromosome end?): give every gene a window of the same length"
            )
        if crop is not None and not 0 <= crop[0] < crop[1] <= window.length:
            raise DataError(
                f"BED line {window.line} (gene {window.gene_id}): window {crop[0]}..{crop[1]} does not fit its "
                f"{window.length:,}-base window"
            )
        name = genome.resolve(window.chrom)
        sequence, padded = genome.window(name, window.start, window.end, window.strand, window.gene_id)
        if padded:
            report.note("padded with N (window runs off its chromosome)", window.gene_id)
        if window.gene_id in seen:
            report.note("repeated gene id (kept; all rows of an id go to one split)", window.gene_id)
        seen.add(window.gene_id)
        report.records += 1
        yield window, sequence[crop[0] : crop[1]] if crop else sequence


def iter_promoter_records(
    genome: Genome,
    windows: list[PromoterWindow],
    labels: dict[str, LabelRow],
    half_life: dict[str, list[float]] | None = None,
    crop: tuple[int, int] | None = None,
    report: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Records `{"gene_id", "sequence", "label", "chrom"[, "features"]}` of selected windows, in BED order, with
    the sequences of `iter_window_sequences` (cut to `crop`, when given)."""
    for window, sequence in iter_window_sequences(genome, windows, crop, report):
        label_row = labels[window.gene_id]
        record: dict[str, Any] = {
            "gene_id": window.gene_id,
            "sequence": sequence,
            "label": label_row.label,
            "chrom": window.chrom,
        }
        features = half_life[window.gene_id] if half_life is not None else label_row.features
        if features:
            record["features"] = features
        yield record


def rebuild_promoter_records(
    genome_path: str | PathLike,
    bed_path: str | PathLike,
    labels: dict[str, LabelRow],
    half_life: dict[str, list[float]] | None = None,
    crop: tuple[int, int] | None = None,
    report: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Streams the records of a whole rebuild: reads the BED, opens the genome, selects and fetches windows."""
    windows = read_promoter_bed(bed_path)
    with Genome(genome_path) as genome:
        report = report if report is not None else ReadReport(genome.name)
        selected = select_promoter_windows(windows, genome, labels, half_life, report)
        yield from iter_promoter_records(genome, selected, labels, half_life, crop, report)


__all__ = [
    "Genome",
    "PromoterWindow",
    "chromosome_aliases",
    "iter_promoter_records",
    "iter_window_sequences",
    "missing_chromosomes",
    "read_promoter_bed",
    "read_tss_table",
    "rebuild_promoter_records",
    "reverse_complement",
    "select_genome_windows",
    "select_promoter_windows",
]
