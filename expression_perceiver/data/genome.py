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

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyfaidx

from .errors import DataError, ReadReport, file_label
from .tables import LabelRow, iter_table_rows, open_text, tokenizer_for

logger = logging.getLogger(__name__)


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


# How many sequences of a FASTA index have their header and line lengths read back from the file (spread over it;
# all of them up to this many): a genome of many thousands of scaffolds is checked in a fraction of a second.
INDEX_RECORDS_READ = 10_000
# How far back from a sequence's first byte its header line is looked for (longer headers are not read back).
HEADER_BYTES_READ = 4_096
INDEX_REBUILT_NOTE = "index older than the FASTA, rebuilt"


def layout_problem(handle, name: str, record, size: int, previous_end: int) -> str | None:
    """What, if anything, in the FASTA open as `handle` contradicts the index's record of sequence `name`: its
    first byte must follow the end of a `>` header line naming it, with only white space between that header and
    the sequence before it (which ends at `previous_end`), its first line must hold the index's line length (or the
    whole sequence when shorter), and its last line must end where the index says."""
    start = max(0, record.offset - HEADER_BYTES_READ)
    handle.seek(start)
    before = handle.read(record.offset - start)
    if not before.endswith(b"\n"):
        return f"sequence {name} does not start after a header line (byte {record.offset:,})"
    line_start = before.rfind(b"\n", 0, len(before) - 1) + 1
    if line_start > 0 or start == 0:
        header = before[line_start:].rstrip(b"\r\n")
        words = header[1:].split()
        if not header.startswith(b">") or not words or words[0].decode(errors="replace") != name:
            shown = header[:60].decode(errors="replace")
            return f"sequence {name} starts after the line {shown!r}, not after its header"
        header_start = start + line_start
        if header_start > previous_end:
            handle.seek(previous_end)
            if header_start - previous_end > HEADER_BYTES_READ or handle.read(header_start - previous_end).strip():
                return (
                    f"bytes {previous_end:,}..{header_start:,} before sequence {name} hold a sequence it does not list"
                )
    if record.rlen == 0:
        return None
    handle.seek(record.offset)
    first = handle.readline(record.lenb + 1)
    letters, expected = len(first.rstrip(b"\r\n")), min(record.lenc, record.rlen)
    if letters != expected or first.startswith(b">"):
        return f"sequence {name}'s first line holds {letters:,} letters, the index says {expected:,}"
    ending = record.lenb - record.lenc
    handle.seek(record.bend - ending)
    last_end = handle.read(ending)
    if last_end.strip() or (last_end != first[letters:] and record.bend - ending < size):
        return f"sequence {name} does not end where the index says (byte {record.bend:,})"
    return None


class Genome:
    """A reference genome FASTA, indexed by `pyfaidx` (a `.fai`, and `.gzi` for bgzip, written beside it).

    An index older than the FASTA is rebuilt by pyfaidx (`index_rebuilt` says so, and a warning is logged); one
    newer than the FASTA that does not describe it (of another FASTA, or of an earlier version of this one) is
    refused in one line naming it: delete it and run again to rebuild it. A plain FASTA's index is checked when the
    genome opens (`_check_index_fits`); a bgzip one's (whose offsets are virtual) when a window reads fewer or more
    letters than asked.
    """

    def __init__(self, path: str | PathLike):
        self.path = Path(path)
        self.name = file_label(path)
        if not self.path.is_file():
            raise DataError(f"{self.name}: file not found ({self.path})")
        index = Path(f"{self.path}.fai")
        self.index_rebuilt = index.is_file() and index.stat().st_mtime < self.path.stat().st_mtime
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
        except (pyfaidx.FastaIndexingError, pyfaidx.IndexNotFoundError, ValueError, OSError) as error:
            if index.is_file() and not isinstance(error, pyfaidx.FastaIndexingError):
                raise DataError(
                    f"{self.name}: its index {index} cannot be read ({error}); delete it and run again to rebuild it"
                ) from None
            raise DataError(f"{self.name}: cannot be indexed as FASTA ({error})") from None
        if self.index_rebuilt:
            logger.warning("%s: its index %s was older than the FASTA and has been rebuilt", self.name, index)
        self._check_index_fits()
        self._tokenizer = tokenizer_for("dna")

    def _check_index_fits(self) -> None:
        """Refuses a `.fai` that does not describe this FASTA (one of another FASTA, or of an earlier version of this
        one, newer than the file, so pyfaidx keeps it) rather than read wrong bases: every sequence must lie in the
        file, in order, without overlap, nothing but white space may follow the last one, and (for up to
        `INDEX_RECORDS_READ` sequences spread over the file) each must follow its own `>` header line, with lines of
        the lengths the index gives."""
        faidx = self._fasta.faidx
        if getattr(faidx, "_bgzf", False) or self.path.suffix in (".gz", ".bgz"):
            return  # offsets into compressed files are virtual: pyfaidx checks them itself
        size = self.path.stat().st_size
        records = sorted(faidx.index.items(), key=lambda item: item[1].offset)
        previous_end, previous = 0, None
        for name, record in records:
            if record.rlen < 0 or record.offset < 0 or record.lenb < record.lenc or (record.rlen and record.lenc < 1):
                self._refuse_index(
                    f"sequence {name} has impossible numbers: {record.rlen} letters at byte {record.offset}, lines "
                    f"of {record.lenc} letters in {record.lenb} bytes"
                )
            if record.offset < previous_end:
                self._refuse_index(f"sequence {name} starts inside sequence {previous}")
            # The last line's end of line may be missing at the end of the file.
            if record.bend - (record.lenb - record.lenc) > size:
                self._refuse_index(f"sequence {name} would end at byte {record.bend:,}, past the file's {size:,} bytes")
            previous_end, previous = record.bend, name
        if not records:
            return
        with self.path.open("rb") as handle:
            handle.seek(previous_end)
            rest = handle.read(min(size - previous_end, 1 << 16))
            if rest.strip() or size - previous_end > len(rest):
                self._refuse_index(
                    f"the file goes on after its last indexed sequence {previous} (byte {previous_end:,} of "
                    f"{size:,}): sequences the index does not list"
                )
            step = max(1, len(records) // INDEX_RECORDS_READ)
            for i in [*range(0, len(records), step), len(records) - 1]:
                name, record = records[i]
                problem = layout_problem(handle, name, record, size, records[i - 1][1].bend if i else 0)
                if problem:
                    self._refuse_index(problem)

    def _refuse_index(self, problem: str) -> None:
        index = f"{self.path}.fai"
        also = f" and {self.path}.gzi" if Path(f"{self.path}.gzi").is_file() else ""
        raise DataError(
            f"{self.name}: its index {index} does not describe it: {problem} (an index of another FASTA, or of an "
            f"earlier version of this one?); delete {index}{also} and run again to rebuild it"
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
        if len(inside) != max(inside_end - inside_start, 0):  # a compressed FASTA's index is checked here only
            of_gene = f" (window of gene {gene_id})" if gene_id else ""
            self._refuse_index(
                f"sequence {name!r} bases {inside_start + 1:,}..{inside_end:,} read as {len(inside):,} letters, not "
                f"{inside_end - inside_start:,}{of_gene}"
            )
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


def note_index_rebuilt(genome: Genome, report: ReadReport) -> None:
    """Counts, in `report`, a genome index that pyfaidx rebuilt because it was older than the FASTA."""
    if genome.index_rebuilt:
        report.note(INDEX_REBUILT_NOTE, f"{genome.name}.fai")


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
    note_index_rebuilt(genome, report)
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
    note_index_rebuilt(genome, report)
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
