"""VCF files: variants read one record at a time with `pysam` (plain text, or bgzip with or without a tabix index),
and the same file written back with an INFO field added.

A record's problems that concern only that record (a symbolic ALT, a REF that does not match the genome, an
unknown chromosome, a position outside it) are the caller's to report row by row; a file that cannot be read as VCF
at all, or a record line that cannot be parsed, stops the read with one `DataError` line naming the file and the
record, and for a text file the line and the field at fault (`POS '12x' is not a whole number`, too few columns).

A text VCF that starts with a UTF-8 byte-order mark (as some editors and spreadsheet exports write, and as `prepare`
reads tables) is read without it: htslib cannot, so the file is copied without its first three bytes to a temporary
file (in the system's temporary folder, removed on `close`), which pysam reads.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import AtomicFile
from .errors import DataError, file_label

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
BYTE_ORDER_MARK = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
RECORD_COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")


def _pysam():
    try:
        import pysam
    except ImportError:  # pragma: no cover - a dependency of the package
        raise DataError("reading VCF files needs pysam (pip install pysam)") from None
    # htslib's own warnings (undeclared contigs, ...) would interleave with the one-line errors and summaries.
    pysam.set_verbosity(0)
    return pysam


@dataclass(frozen=True)
class VcfRecord:
    """One VCF line: `pos` is 1-based, `alts` the ALT alleles as written (empty for `.`), `index` the record's
    0-based place in the file, `raw` the `pysam` record (for writing the file back)."""

    index: int
    chrom: str
    pos: int
    id: str
    ref: str
    alts: tuple[str, ...]
    raw: Any = None

    @property
    def where(self) -> str:
        return f"record {self.index + 1} ({self.chrom}:{self.pos})"


def _open_bytes(path: Path):
    """The file's bytes, decompressed when it is gzip or bgzip."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _without_byte_order_mark(path: Path) -> Path | None:
    """A temporary plain-text copy of a VCF that starts with a byte-order mark, without it; None for any other file."""
    try:
        with _open_bytes(path) as source:
            if source.read(len(BYTE_ORDER_MARK)) != BYTE_ORDER_MARK:
                return None
            handle, name = tempfile.mkstemp(prefix="expression-perceiver-", suffix=".vcf")
            with os.fdopen(handle, "wb") as copy:
                shutil.copyfileobj(source, copy)
    except (OSError, EOFError):  # unreadable or corrupt: pysam names the problem
        return None
    return Path(name)


def _line_problem(line: str) -> str | None:
    """What makes a record line unreadable as VCF, in words naming the field, when it can be told from the text."""
    fields = line.rstrip("\r\n").split("\t")
    if not line.strip():
        return "is an empty line"
    if len(fields) < len(RECORD_COLUMNS):
        return (
            f"has {len(fields)} tab-separated column(s); a VCF record needs at least {len(RECORD_COLUMNS)} "
            f"({' '.join(RECORD_COLUMNS)})"
        )
    position = fields[1].strip()
    if not position.isdigit():
        return f"has POS {position!r}, not a whole number"
    return None


class VcfReader:
    """Reads a VCF (or BCF) file record by record. `records()` may be iterated once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = file_label(path)
        if not self.path.is_file():
            raise DataError(f"{self.name}: file not found ({self.path})")
        pysam = _pysam()
        self._copy = _without_byte_order_mark(self.path)
        self.source = self._copy or self.path  # what pysam reads
        try:
            self._file = pysam.VariantFile(str(self.source))
        except (ValueError, OSError) as error:
            self._remove_copy()
            raise DataError(f"{self.name}: cannot be read as VCF ({_reason(error)})") from None
        self.records_read = 0
        self.byte_order_mark = self._copy is not None  # the file started with one, read without it

    @property
    def header_text(self) -> str:
        return str(self._file.header)

    def records(self) -> Iterator[VcfRecord]:
        iterator = iter(self._file)
        last = "the header"
        while True:
            try:
                raw = next(iterator)
            except StopIteration:
                return
            except (ValueError, OSError) as error:
                number = self.records_read + 1
                line, problem = self._record_line(number)
                where = f"{self.name}: record {number} ({f'line {line}, ' if line else ''}after {last})"
                if problem is not None:
                    raise DataError(f"{where} {problem}") from None
                raise DataError(f"{where} cannot be parsed as VCF ({_reason(error)})") from None
            record = VcfRecord(
                index=self.records_read,
                chrom=raw.chrom,
                pos=int(raw.pos),
                id=raw.id or ".",
                ref=raw.ref or "",
                alts=tuple(raw.alts or ()),
                raw=raw,
            )
            self.records_read += 1
            last = f"{record.chrom}:{record.pos}"
            yield record

    def _record_line(self, number: int) -> tuple[int | None, str | None]:
        """The file's line number of its `number`-th record line (1-based, header lines aside) and what is wrong
        with it when the text tells; (None, None) for a BCF or a file that cannot be read as text."""
        try:
            with _open_bytes(self.source) as handle:
                if handle.read(3) == b"BCF":
                    return None, None
                handle.seek(0)
                records = 0
                for line_number, raw in enumerate(handle, start=1):
                    if raw.startswith(b"#"):
                        continue
                    records += 1
                    if records == number:
                        return line_number, _line_problem(raw.decode("utf-8", errors="replace"))
        except (OSError, EOFError):
            pass
        return None, None

    def _remove_copy(self) -> None:
        if self._copy is not None:
            self._copy.unlink(missing_ok=True)
            self._copy = None

    def close(self) -> None:
        self._file.close()
        self._remove_copy()

    def __enter__(self) -> VcfReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.replace("b'", "'")


def info_value(text: str) -> str:
    """A string as one value of a VCF INFO field: no spaces, commas, semicolons, equals signs or tabs."""
    for character in " ,;=\t\r\n":
        text = text.replace(character, "_")
    return text or "."


class AnnotatedVcfWriter:
    """Writes the records of a `VcfReader`'s file back with one INFO field added (`info_id`, its values joined by
    commas), under a temporary name beside the target: `commit` moves it into place, bgzip-compressed (and tabix
    indexed when the records are sorted) for a `.gz`/`.bgz` target, plain text otherwise.

    Each record is written as htslib prints it (every column of the input, samples included), with the new field
    appended to its INFO column (replacing any earlier field of the same id).
    """

    def __init__(self, reader: VcfReader, path: str | os.PathLike, info_id: str, number: str, description: str):
        self.path = Path(path)
        self.info_id = info_id
        self.compress = self.path.suffix.lower() in (".gz", ".bgz")
        self.indexed = False
        self.text = AtomicFile(self.path)  # the text; a .gz target is compressed from it in `commit`
        self.handle = self.text.handle
        header_lines = reader.header_text.rstrip("\n").split("\n")
        header_lines = [line for line in header_lines if not line.startswith(f"##INFO=<ID={info_id},")]
        escaped = description.replace('"', "'")  # readers differ on escaped quotes: none are written
        new = f'##INFO=<ID={info_id},Number={number},Type=String,Description="{escaped}">'
        self.handle.write("\n".join([*header_lines[:-1], new, header_lines[-1]]) + "\n")

    def write(self, record: VcfRecord, values: Sequence[str]) -> None:
        fields = str(record.raw).rstrip("\n").split("\t")
        if values:
            kept = [
                item for item in fields[7].split(";") if item not in (".", "") and item.split("=")[0] != self.info_id
            ]
            fields[7] = ";".join([*kept, f"{self.info_id}={','.join(info_value(value) for value in values)}"])
        self.handle.write("\t".join(fields) + "\n")

    def commit(self) -> None:
        if not self.compress:
            self.text.commit()
            return
        self.handle.close()
        pysam = _pysam()
        compressed = self.text.temporary.with_name(self.text.temporary.name + ".gz")
        try:
            pysam.tabix_compress(str(self.text.temporary), str(compressed), force=True)
        finally:
            self.text.discard()
        os.replace(compressed, self.path)
        try:
            pysam.tabix_index(str(self.path), preset="vcf", force=True)
            self.indexed = True
        except (OSError, ValueError):  # unsorted records cannot be indexed; the file itself is complete
            Path(str(self.path) + ".tbi").unlink(missing_ok=True)

    def discard(self) -> None:
        self.text.discard()


__all__ = ["VCF_SUFFIXES", "AnnotatedVcfWriter", "VcfReader", "VcfRecord", "info_value"]
