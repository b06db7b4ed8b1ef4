"""VCF files: variants read one record at a time with `pysam` (plain text, or bgzip with or without a tabix index),
and the same file written back with an INFO field added.

A record's problems that concern only that record (a symbolic ALT, a REF that does not match the genome, an
unknown chromosome) are the caller's to report row by row; a file that cannot be read as VCF at all, or a record
line that cannot be parsed, stops the read with one `DataError` line naming the file and the record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import AtomicFile
from .errors import DataError, file_label

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


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


class VcfReader:
    """Reads a VCF (or BCF) file record by record. `records()` may be iterated once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.name = file_label(path)
        if not self.path.is_file():
            raise DataError(f"{self.name}: file not found ({self.path})")
        pysam = _pysam()
        try:
            self._file = pysam.VariantFile(str(self.path))
        except (ValueError, OSError) as error:
            raise DataError(f"{self.name}: cannot be read as VCF ({_reason(error)})") from None
        self.records_read = 0

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
                raise DataError(
                    f"{self.name}: record {self.records_read + 1} (after {last}) cannot be parsed as VCF "
                    f"({_reason(error)})"
                ) from None
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

    def close(self) -> None:
        self._file.close()

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
