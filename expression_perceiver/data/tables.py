"""Sequence tables (TSV/CSV, optionally gzip) and FASTA files joined to label tables, read as records.

A record is a dict `{"gene_id": str, "sequence": str, "label": float | list[float]}` with, when configured,
`"features": list[float]`, `"chrom": str` and `"protein_sequence": str` (the gene's protein, joined by gene id from
a protein table: see `read_protein_table`): the rows that `dataset_dict.build_dataset_dict` turns into a
`datasets.Dataset`. Sequences are stored as given (the tokenizers fold lower case), less surrounding white space
and, for proteins, a trailing `*`.
"""

import csv
import gzip
import io
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from os import PathLike
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

import numpy as np

from ..formats import DEFAULT_PROTEIN_MAX_LENGTH
from ..modeling.tokenization_expression_perceiver import AminoAcidTokenizer, NucleotideTokenizer
from .errors import LARGEST_VALUE, DataError, IdTally, ReadReport, check_value, file_label

Alphabet = Literal["dna", "protein"]
ALPHABETS = ("dna", "protein")
MISSING_VALUES = frozenset({"", "na", "nan", "n/a", "null", "none"})
# The note under which a read counts the IUPAC ambiguity codes it found (the nucleotide tokenizer reads them as N).
AMBIGUITY_NOTE = "IUPAC ambiguity codes read as N"
GZIP_MAGIC = b"\x1f\x8b"


@cache
def tokenizer_for(alphabet: Alphabet) -> NucleotideTokenizer | AminoAcidTokenizer:
    """The tokenizer whose letters define valid sequences of `alphabet` ('dna' or 'protein')."""
    if alphabet == "dna":
        return NucleotideTokenizer()
    if alphabet == "protein":
        return AminoAcidTokenizer()
    raise ValueError(f"alphabet must be one of {ALPHABETS}, not {alphabet!r}")


class SequenceChecker:
    """Validates sequences against the tokenizer's letters with its lookup table (no loop over letters)."""

    def __init__(self, alphabet: Alphabet):
        self.alphabet = alphabet
        self.tokenizer = tokenizer_for(alphabet)
        # Letters that are valid but not plain bases/residues: N in DNA; X B Z U O in proteins.
        rare = "N" if alphabet == "dna" else "XBZUO"
        self._rare_ids = np.array([self.tokenizer.vocabulary()[letter] for letter in rare], dtype=np.uint8)
        self.rare_letters = " ".join(rare)
        # Bytes that are IUPAC ambiguity codes (R Y S W K M B D H V, either case): DNA reads each as N.
        self._ambiguity = np.zeros(256, dtype=bool)
        if alphabet == "dna":
            for code in self.tokenizer.aliases:
                self._ambiguity[[ord(code.upper()), ord(code.lower())]] = True

    def token_ids(self, sequence: str, where: str) -> np.ndarray:
        """Token ids of `sequence`; raises `DataError` naming `where` and the first invalid letter's position."""
        if not sequence:
            raise DataError(f"{where} has an empty sequence")
        ids = self.tokenizer.encode_fast(sequence)
        invalid = np.flatnonzero(ids == self.tokenizer.unk_token_id)
        if len(invalid):
            position = int(invalid[0])
            also = f" ({len(invalid):,} invalid letters in all)" if len(invalid) > 1 else ""
            raise DataError(
                f"{where} has letter {sequence[position]!r} at position {position + 1} (1-based), "
                f"not a {self.alphabet} letter{also}"
            )
        return ids

    def has_rare_letters(self, ids: np.ndarray) -> bool:
        return bool(np.isin(ids, self._rare_ids).any())

    def rare_letter_count(self, ids: np.ndarray) -> int:
        return int(np.count_nonzero(np.isin(ids, self._rare_ids)))

    def ambiguity_codes(self, sequence: str) -> int:
        """How many IUPAC ambiguity codes `sequence` holds (always 0 for proteins); the tokenizer reads each as N."""
        codes = np.frombuffer(sequence.encode("ascii", errors="replace"), dtype=np.uint8)
        return int(np.count_nonzero(self._ambiguity[codes]))


@dataclass
class LetterTally(IdTally):
    """Sequences with some kind of letter (`count`, first ids) and how many such letters they held in all."""

    letters: int = 0

    def add_letters(self, record_id: str, letters: int) -> None:
        self.add(record_id)
        self.letters += letters

    def describe(self) -> str:
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.letters:,} in {self.count:,} sequences (first: {', '.join(self.examples)}{more})"


def note_ambiguity_codes(report: ReadReport, record_id: str, letters: int) -> None:
    """Counts, in `report`, one sequence holding `letters` IUPAC ambiguity codes (`AMBIGUITY_NOTE`)."""
    tally = report.noted.setdefault(AMBIGUITY_NOTE, LetterTally())
    tally.add_letters(record_id, letters)


def open_text(path: str | PathLike) -> TextIO:
    """Opens a text file, gzip-compressed or not (told by its first bytes, not its name)."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
        if compressed:
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DataError(f"{file_label(path)}: file not found ({path})") from None
    except OSError as error:
        raise DataError(f"{file_label(path)}: cannot be read ({error})") from None


def _delimiter(path: Path, header: str) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes if suffix.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".csv":
        return ","
    if suffixes and suffixes[-1] in (".tsv", ".tab"):
        return "\t"
    return "\t" if "\t" in header else ","


def iter_table_rows(path: str | PathLike, required_columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row as a dict) of a TSV/CSV table with a header line, checking the required columns exist."""
    path = Path(path)
    name = file_label(path)
    # Sequences are long fields: lift the csv module's 128 kB default (a process-wide setting).
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    with open_text(path) as handle:
        try:
            first_line = handle.readline()
            delimiter = _delimiter(path, first_line)
            # Tab-separated files in biology do not quote fields; a stray quote must not swallow lines.
            quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
            reader = csv.reader(itertools.chain([first_line], handle), delimiter=delimiter, quoting=quoting)
            header = [column.strip() for column in next(reader, [])]
            if not header:
                raise DataError(f"{name}: empty file (expected a header line)")
            missing = [column for column in required_columns if column not in header]
            if missing:
                raise DataError(
                    f"{name}: column {', '.join(map(repr, missing))} missing (columns: {', '.join(header)})"
                )
            for fields in reader:
                if not fields or fields == [""]:
                    continue
                if len(fields) != len(header):
                    raise DataError(
                        f"{name}: line {reader.line_num} has {len(fields)} fields, the header has {len(header)}"
                    )
                yield reader.line_num, dict(zip(header, fields, strict=True))
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as error:
            raise DataError(f"{name}: cannot be parsed as a table ({error})") from None


def parse_number(text: str, where: str) -> float:
    """A finite float of magnitude at most `errors.LARGEST_VALUE` from a table field; `DataError` naming `where`
    otherwise (NaN and infinities included)."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where} is {text!r}, not a number") from None
    return check_value(value, where, text)


def parse_features(row: dict[str, str], columns: Sequence[str], where: str) -> list[float]:
    return [parse_number(row[column].strip(), f"{where} column {column!r}") for column in columns]


@dataclass(frozen=True)
class LabelSpec:
    """Which columns hold the label(s) and how they are transformed.

    With `log10`, a label is `log10(value + pseudocount)`; a value with `value + pseudocount <= 0` is an error
    naming the row, and so is a value that is infinite or lies beyond +-`errors.LARGEST_VALUE` as read (1e308 is
    refused with or without log10, which would turn it into an unremarkable 308). An empty/NaN label is an error
    naming the row, unless `drop_missing`: then the record is dropped and counted in the report.
    """

    columns: tuple[str, ...] = ("label",)
    log10: bool = False
    pseudocount: float = 0.0
    drop_missing: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.pseudocount) and 0 <= self.pseudocount <= LARGEST_VALUE):
            raise ValueError(f"the pseudocount must be a finite number in 0..{LARGEST_VALUE:g}, got {self.pseudocount}")

    @property
    def transform(self) -> str:
        if not self.log10:
            return "none"
        return f"log10(x + {self.pseudocount:g})" if self.pseudocount else "log10(x)"

    def parse(self, row: dict[str, str], where: str) -> float | list[float] | None:
        """The label of one row (a list with several columns), or None for a missing label when dropping."""
        labels = []
        for column in self.columns:
            text = row[column].strip()
            if text.lower() in MISSING_VALUES:
                if self.drop_missing:
                    return None
                raise DataError(
                    f"{where} column {column!r} is empty or NaN "
                    "(drop such rows with LabelSpec.drop_missing or --drop-missing-labels)"
                )
            value = parse_number(text, f"{where} column {column!r}")
            if self.log10:
                if value + self.pseudocount <= 0:
                    raise DataError(
                        f"{where} column {column!r} is {text!r}: log10 needs value + pseudocount "
                        f"({self.pseudocount:g}) > 0"
                    )
                value = math.log10(value + self.pseudocount)
            labels.append(value)
        return labels[0] if len(labels) == 1 else labels


class LabelRow(NamedTuple):
    label: float | list[float]
    features: list[float]
    line: int


def read_label_table(
    path: str | PathLike,
    id_column: str = "gene_id",
    labels: LabelSpec = LabelSpec(),
    feature_columns: Sequence[str] = (),
    report: ReadReport | None = None,
) -> dict[str, LabelRow]:
    """Labels (and features) by id. A repeated id is an error: which of its labels to use would be a guess."""
    name = file_label(path)
    rows: dict[str, LabelRow] = {}
    for line, row in iter_table_rows(path, [id_column, *labels.columns, *feature_columns]):
        record_id = row[id_column].strip()
        where = f"{name}: line {line} (id {record_id})"
        if not record_id:
            raise DataError(f"{name}: line {line} has an empty {id_column!r}")
        if record_id in rows:
            raise DataError(f"{name}: id {record_id!r} appears twice (lines {rows[record_id].line} and {line})")
        label = labels.parse(row, where)
        if label is None:
            if report is not None:
                report.drop("missing label", record_id)
            continue
        rows[record_id] = LabelRow(label, parse_features(row, feature_columns, where), line)
    return rows


def read_feature_table(path: str | PathLike, id_column: str, columns: Sequence[str]) -> dict[str, list[float]]:
    """Numeric features by id (e.g. mRNA half-life features); every value must be a finite number."""
    return {
        record_id: row.features
        for record_id, row in read_label_table(path, id_column, LabelSpec(columns=()), columns).items()
    }


class RecordBuilder:
    """Turns (id, sequence, label, features) into a record: validates letters, strips a protein's trailing stop,
    truncates to `max_length` and notes it in the report, and notes repeated ids, rare letters and IUPAC ambiguity
    codes (DNA reads them as N; `AMBIGUITY_NOTE` counts the letters and the sequences holding them)."""

    def __init__(self, alphabet: Alphabet, report: ReadReport, max_length: int | None = None):
        self.checker = SequenceChecker(alphabet)
        self.alphabet = alphabet
        self.report = report
        self.max_length = max_length
        self._seen_ids: set[str] = set()

    def build(
        self, record_id: str, sequence: str, label: float | list[float], features: list[float], where: str
    ) -> dict[str, Any]:
        sequence = sequence.strip()
        if self.alphabet == "protein" and sequence.endswith("*"):
            sequence = sequence[:-1]
        ids = self.checker.token_ids(sequence, where)
        ambiguous = self.checker.ambiguity_codes(sequence)
        if ambiguous:
            note_ambiguity_codes(self.report, record_id, ambiguous)
        if self.checker.rare_letter_count(ids) > ambiguous:  # an N (or X B Z U O) as written, not a folded code
            self.report.note(f"has {self.checker.rare_letters} (kept)", record_id)
        if self.max_length is not None and len(sequence) > self.max_length:
            sequence = sequence[: self.max_length]
            self.report.note(f"truncated to {self.max_length:,} letters", record_id)
        if record_id in self._seen_ids:
            self.report.note("repeated id (kept; all rows of an id go to one split)", record_id)
        self._seen_ids.add(record_id)
        self.report.records += 1
        record: dict[str, Any] = {"gene_id": record_id, "sequence": sequence, "label": label}
        if features:
            record["features"] = features
        return record


class ProteinRow(NamedTuple):
    sequence: str
    label: float | list[float] | None  # None without protein labels, or for a missing label that was dropped
    line: int


@dataclass
class ProteinTable:
    """Proteins by gene id (see `read_protein_table`), to join onto promoter records with `read_sequence_table`.

    `report` is the protein table's own: proteins read, truncated or with rare letters, dropped for a missing label,
    and, once a join has read its promoters, proteins whose gene has no promoter row.
    """

    source: str
    proteins: dict[str, ProteinRow]
    report: ReadReport
    labels: LabelSpec | None = None

    @property
    def label_columns(self) -> tuple[str, ...]:
        return self.labels.columns if self.labels is not None else ()

    def report_without_promoter(self, promoter_ids: set[str], promoter_source: str) -> None:
        """Counts, in `report`, the proteins whose gene is not among `promoter_ids`."""
        for gene_id in self.proteins:
            if gene_id not in promoter_ids:
                self.report.drop(f"no promoter row in {promoter_source}", gene_id)


def read_protein_table(
    path: str | PathLike,
    *,
    id_column: str = "gene_id",
    sequence_column: str = "sequence",
    labels: LabelSpec | None = None,
    max_length: int | None = DEFAULT_PROTEIN_MAX_LENGTH,
    report: ReadReport | None = None,
) -> ProteinTable:
    """A TSV/CSV table of proteins by gene id, read whole (a proteome is some 10 MB of letters).

    Sequences are checked against the amino-acid alphabet (an invalid letter is a `DataError` naming the file,
    line, id and position), lose a trailing `*` and are truncated to `max_length` (counted in the report). With
    `labels`, each protein also carries its label(s), e.g. `LabelSpec(("abundance_ppm",), log10=True)`. A gene id
    that appears twice is an error: which of its proteins to join would be a guess.
    """
    name = file_label(path)
    report = report if report is not None else ReadReport(name)
    builder = RecordBuilder("protein", report, max_length)
    label_columns = labels.columns if labels is not None else ()
    proteins: dict[str, ProteinRow] = {}
    first_line: dict[str, int] = {}
    for line, row in iter_table_rows(path, [id_column, sequence_column, *label_columns]):
        gene_id = row[id_column].strip()
        if not gene_id:
            raise DataError(f"{name}: line {line} has an empty {id_column!r}")
        if gene_id in first_line:
            raise DataError(
                f"{name}: gene id {gene_id!r} appears twice (lines {first_line[gene_id]} and {line}); "
                "keep one protein per gene (which one to join would be a guess)"
            )
        first_line[gene_id] = line
        where = f"{name}: line {line} (id {gene_id})"
        label = labels.parse(row, where) if labels is not None else None
        if labels is not None and label is None:
            report.drop("missing label", gene_id)
            proteins[gene_id] = ProteinRow("", None, line)  # known, so its promoter is not reported as unmatched
            continue
        record = builder.build(gene_id, row[sequence_column], label, [], where)
        proteins[gene_id] = ProteinRow(record["sequence"], label, line)
    return ProteinTable(name, proteins, report, labels)


def _as_list(label: float | list[float]) -> list[float]:
    return list(label) if isinstance(label, list | tuple) else [label]


def read_sequence_table(
    path: str | PathLike,
    *,
    alphabet: Alphabet,
    id_column: str = "gene_id",
    sequence_column: str = "sequence",
    labels: LabelSpec = LabelSpec(),
    feature_columns: Sequence[str] = (),
    chrom_column: str | None = None,
    max_length: int | None = None,
    report: ReadReport | None = None,
    proteins: ProteinTable | None = None,
) -> Iterator[dict[str, Any]]:
    """Streams the records of a TSV/CSV table holding ids, sequences and labels in named columns.

    With `proteins` (a promoter table joined with `read_protein_table`'s proteins by gene id), each record gains
    `protein_sequence` and, when the proteins carry labels, their label(s) after the table's own (the record's label
    is then a list). Rows whose gene has no protein (or whose protein's label was missing and dropped) are dropped
    and counted in `report`; proteins whose gene has no row are counted in `proteins.report` when the table ends.
    """
    name = file_label(path)
    report = report if report is not None else ReadReport(name)
    builder = RecordBuilder(alphabet, report, max_length)
    extra = [chrom_column] if chrom_column else []
    required = [id_column, sequence_column, *labels.columns, *feature_columns, *extra]
    seen_ids: set[str] = set()
    for line, row in iter_table_rows(path, required):
        record_id = row[id_column].strip()
        if not record_id:
            raise DataError(f"{name}: line {line} has an empty {id_column!r}")
        seen_ids.add(record_id)
        where = f"{name}: line {line} (id {record_id})"
        label = labels.parse(row, where)
        if label is None:
            report.drop("missing label", record_id)
            continue
        protein = proteins.proteins.get(record_id) if proteins is not None else None
        if proteins is not None:
            if protein is None:
                report.drop(f"no protein in {proteins.source}", record_id)
                continue
            if proteins.labels is not None and protein.label is None:
                report.drop(f"protein label missing in {proteins.source}", record_id)
                continue
        features = parse_features(row, feature_columns, where)
        record = builder.build(record_id, row[sequence_column], label, features, where)
        if protein is not None:
            record["protein_sequence"] = protein.sequence
            if proteins.labels is not None:
                record["label"] = [*_as_list(label), *_as_list(protein.label)]
        if chrom_column:
            record["chrom"] = row[chrom_column].strip()
        yield record
    if proteins is not None:
        proteins.report_without_promoter(seen_ids, name)


class FastaRecord(NamedTuple):
    id: str
    sequence: str
    line: int


def read_fasta(path: str | PathLike) -> Iterator[FastaRecord]:
    """Streams (id, sequence, header line) of a FASTA file, plain or gzip; the id is the header's first word."""
    name = file_label(path)
    with open_text(path) as handle:
        record_id, header_line, chunks = None, 0, []
        try:
            for line_number, line in enumerate(handle, start=1):
                line = line.strip()
                if line.startswith(">"):
                    if record_id is not None:
                        yield FastaRecord(record_id, "".join(chunks), header_line)
                    words = line[1:].split()
                    if not words:
                        raise DataError(f"{name}: line {line_number} is a '>' header without an id")
                    record_id, header_line, chunks = words[0], line_number, []
                elif line and not line.startswith(";"):
                    if record_id is None:
                        raise DataError(f"{name}: line {line_number} holds sequence before the first '>' header")
                    chunks.append(line)
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as error:
            raise DataError(f"{name}: cannot be read as FASTA ({error})") from None
        if record_id is not None:
            yield FastaRecord(record_id, "".join(chunks), header_line)


def read_fasta_with_labels(
    fasta_path: str | PathLike,
    labels_path: str | PathLike,
    *,
    alphabet: Alphabet,
    id_column: str = "gene_id",
    labels: LabelSpec = LabelSpec(),
    feature_columns: Sequence[str] = (),
    max_length: int | None = None,
    report: ReadReport | None = None,
) -> Iterator[dict[str, Any]]:
    """Streams FASTA records joined by id to a label table. FASTA records without a label, and labels without a
    FASTA record, are dropped and reported (count and first ids)."""
    fasta_name, labels_name = file_label(fasta_path), file_label(labels_path)
    report = report if report is not None else ReadReport(fasta_name)
    label_rows = read_label_table(labels_path, id_column, labels, feature_columns, report)
    builder = RecordBuilder(alphabet, report, max_length)
    matched: set[str] = set()
    for fasta_record in read_fasta(fasta_path):
        label_row = label_rows.get(fasta_record.id)
        if label_row is None:
            report.drop(f"no label in {labels_name}", fasta_record.id)
            continue
        matched.add(fasta_record.id)
        where = f"{fasta_name}: record {fasta_record.id!r} (line {fasta_record.line})"
        yield builder.build(fasta_record.id, fasta_record.sequence, label_row.label, label_row.features, where)
    for record_id in [record_id for record_id in label_rows if record_id not in matched]:
        report.drop(f"label without a record in {fasta_name}", record_id)


__all__ = [
    "ALPHABETS",
    "AMBIGUITY_NOTE",
    "DEFAULT_PROTEIN_MAX_LENGTH",
    "FastaRecord",
    "LabelRow",
    "LabelSpec",
    "LetterTally",
    "ProteinRow",
    "ProteinTable",
    "RecordBuilder",
    "SequenceChecker",
    "iter_table_rows",
    "open_text",
    "read_fasta",
    "read_fasta_with_labels",
    "read_feature_table",
    "read_label_table",
    "read_protein_table",
    "read_sequence_table",
    "tokenizer_for",
]
