"""Motif databases and motif scanning: reading and writing MEME motif files, the JASPAR CORE vertebrates collection
shipped with `pyjaspar`, and FIMO matches of a database's motifs in a sequence.

- `motif_database` reads a MEME motif file or, by default, the JASPAR CORE vertebrates non-redundant collection
  shipped with `pyjaspar` (converted once to a MEME file under `$XDG_CACHE_HOME/expression_perceiver/`).
- `annotate_sequence` scans one sequence with the database's motifs (FIMO, memelite), for annotating mutagenesis
  heatmaps.

A file that is not a MEME DNA motif file is a one-line `DataError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .atomic import AtomicFile
from .errors import DataError

LETTERS = "ACGT"
JASPAR_LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
JASPAR_URL = "https://jaspar.elixir.no"


@dataclass(frozen=True)
class Motif:
    """A letter-probability matrix with its database id and name."""

    id: str
    name: str
    pwm: np.ndarray  # (4, width): rows A, C, G, T, columns summing to 1
    sites: int = 0

    @property
    def label(self) -> str:
        """`id name`, as MEME and JASPAR write it (e.g. `MA0108.3 TBP`)."""
        return f"{self.id} {self.name}".strip()

    @property
    def consensus(self) -> str:
        return "".join(LETTERS[index] for index in self.pwm.argmax(0))


@dataclass
class MotifDatabase:
    """Motifs to match patterns against, with where they came from and under which licence."""

    motifs: list[Motif]
    path: Path
    release: str | None = None
    licence: str | None = None
    description: str = ""

    def __len__(self) -> int:
        return len(self.motifs)

    def __iter__(self) -> Iterator[Motif]:
        return iter(self.motifs)

    def find(self, name: str) -> list[Motif]:
        """The motifs of a factor (case-insensitive: JASPAR spells mouse factors `Yy1`)."""
        return [motif for motif in self.motifs if motif.name.upper() == name.upper()]

    def pwms(self) -> dict[str, np.ndarray]:
        """Label -> (4, width) matrix, the form memelite's `fimo` reads."""
        return {motif.label: motif.pwm for motif in self.motifs}

    def statement(self) -> str:
        """One line for reports: the collection, its size and its licence."""
        licence = f"; licence {self.licence}" if self.licence else ""
        return f"{self.description or self.path.name}, {len(self):,} motifs ({self.path}){licence}"


# --- Motif databases -----------------------------------------------------------------------------------------------


def motif_database(path: str | Path | None = None) -> MotifDatabase:
    """The motifs of a MEME file, or (None) JASPAR's latest CORE vertebrates non-redundant collection."""
    if path is None:
        return jaspar_database()
    path = Path(path)
    return MotifDatabase(read_meme(path), path, description=f"MEME file {path.name}")


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/expression_perceiver` (`~/.cache/...` when unset or relative, as the XDG spec says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "expression_perceiver"


def jaspar_database() -> MotifDatabase:
    """JASPAR CORE vertebrates, latest version of each matrix, from `pyjaspar`'s SQLite file (offline), converted to
    MEME once and read from the cache afterwards."""
    from pyjaspar import JASPAR_LATEST_RELEASE

    release = JASPAR_LATEST_RELEASE
    path = cache_dir() / f"{release}_CORE_vertebrates_non-redundant.meme"
    if not path.is_file():
        write_meme(path, jaspar_motifs(release), url=f"{JASPAR_URL}/matrix/{{id}}/")
    description = f"{release} CORE vertebrates non-redundant (latest version of each matrix; pyjaspar "
    description += f"{package_version('pyjaspar')})"
    return MotifDatabase(read_meme(path), path, release=release, licence=JASPAR_LICENCE, description=description)


def jaspar_motifs(release: str) -> list[Motif]:
    from pyjaspar import jaspardb

    database = jaspardb(release=release)
    try:
        records = database.fetch_motifs(collection="CORE", tax_group=["vertebrates"], all_versions=False)
    finally:
        database.conn.close()
    motifs = []
    for record in records:
        counts = np.array([record.counts[letter] for letter in LETTERS], dtype=np.float64)
        motifs.append(Motif(record.matrix_id, record.name, counts / counts.sum(0), int(round(counts[:, 0].sum()))))
    return motifs


def write_meme(path: Path, motifs: list[Motif], url: str | None = None) -> None:
    """A MEME (version 4) DNA motif file, written atomically; `url` a template with `{id}`."""
    lines = ["MEME version 4", "", f"ALPHABET= {LETTERS}", "", "strands: + -", ""]
    lines += ["Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for motif in motifs:
        lines.append(f"MOTIF {motif.label}")
        width = motif.pwm.shape[1]
        lines.append(f"letter-probability matrix: alength= 4 w= {width} nsites= {max(motif.sites, 1)} E= 0")
        lines += [" ".join(f"{value:.6f}" for value in column) for column in motif.pwm.T]
        if url:
            lines.append(f"URL {url.format(id=motif.id)}")
        lines.append("")
    with AtomicFile(path) as target:
        target.handle.write("\n".join(lines) + "\n")
        target.commit()


MATRIX_HEADER = re.compile(r"letter-probability matrix:(.*)")
MATRIX_FIELD = re.compile(r"(\w+)\s*=\s*(\S+)")


def read_meme(path: Path) -> list[Motif]:
    """The DNA motifs of a MEME motif file. Anything else (not text, no `MEME version` line first, another
    alphabet, malformed matrices) is a one-line `DataError` naming the file and, where it helps, the line."""
    lines = meme_lines(path)
    motifs: list[Motif] = []
    name: tuple[str, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if line.startswith("ALPHABET="):
            check_alphabet(path, index, line.removeprefix("ALPHABET=").strip())
        elif line.startswith("MOTIF"):
            name = motif_name(path, index, line)
        elif MATRIX_HEADER.match(line):
            if name is None:
                raise DataError(f"{path}: line {index + 1}: a letter-probability matrix before any MOTIF line")
            pwm, index = read_matrix(path, lines, index)
            motifs.append(Motif(name[0], name[1], pwm, matrix_sites(line)))
            name = None
            continue
        index += 1
    if not motifs:
        raise DataError(f"{path}: not a MEME motif file (no MOTIF with a letter-probability matrix)")
    return motifs


def meme_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: no such motif file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a MEME motif file (not UTF-8 text)") from None
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first.startswith("MEME version"):
        raise DataError(f"{path}: not a MEME motif file (it starts with {first[:40]!r}, not 'MEME version')")
    return lines


def check_alphabet(path: Path, index: int, letters: str) -> None:
    if letters.upper() != LETTERS:
        raise DataError(f"{path}: line {index + 1}: alphabet {letters!r}; only DNA motifs (ACGT) can be matched")


def motif_name(path: Path, index: int, line: str) -> tuple[str, str]:
    fields = line.split()
    if len(fields) < 2:
        raise DataError(f"{path}: line {index + 1}: a MOTIF line without an identifier")
    return fields[1], " ".join(fields[2:])


def matrix_sites(header: str) -> int:
    fields = dict(MATRIX_FIELD.findall(header))
    try:
        return int(float(fields.get("nsites", 0)))
    except ValueError:
        return 0


def read_matrix(path: Path, lines: list[str], index: int) -> tuple[np.ndarray, int]:
    """The (4, width) matrix whose header is at `index`, columns scaled to sum to 1, and the index after it."""
    fields = dict(MATRIX_FIELD.findall(lines[index]))
    if fields.get("alength", "4") != "4":
        raise DataError(f"{path}: line {index + 1}: alength= {fields['alength']}; only DNA motifs (4 letters)")
    width = int(fields["w"]) if fields.get("w", "").isdigit() else None
    rows: list[list[float]] = []
    index += 1
    while index < len(lines) and (width is None or len(rows) < width):
        text = lines[index].split()
        if not text:
            if rows and width is None:
                break
            index += 1
            continue
        try:
            values = [float(value) for value in text]
        except ValueError:
            if width is None and rows:
                break
            found = lines[index].strip()
            raise DataError(f"{path}: line {index + 1}: expected 4 probabilities, found {found!r}") from None
        if len(values) != 4 or min(values) < 0 or sum(values) <= 0:
            raise DataError(f"{path}: line {index + 1}: expected 4 non-negative probabilities, found {text}")
        rows.append(values)
        index += 1
    if not rows or (width is not None and len(rows) < width):
        raise DataError(f"{path}: line {index}: a letter-probability matrix with {len(rows)} rows, expected {width}")
    matrix = np.asarray(rows, dtype=np.float64)
    return (matrix / matrix.sum(1, keepdims=True)).T, index


def package_version(name: str) -> str:
    """The installed version of a package, for reports ("unknown" when it is not installed)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# --- Annotation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotifHit:
    """A motif match in a sequence: 0-based [start, end), strand and FIMO's log-odds score and p-value."""

    motif_id: str
    motif_name: str
    start: int
    end: int
    strand: str
    score: float
    p_value: float


def annotate_sequence(
    sequence: str, database: MotifDatabase | str | Path | None = None, threshold_p: float = 1e-4
) -> list[MotifHit]:
    """The database's motif matches in `sequence` with p-value below `threshold_p` (FIMO, both strands; letters
    other than ACGT match nothing), ordered by start and p-value."""
    from memelite import fimo

    database = database if isinstance(database, MotifDatabase) else motif_database(database)
    if not sequence or len(database) == 0:
        return []
    codes = np.frombuffer(sequence.upper().encode("ascii", "replace"), dtype=np.uint8)
    one_hot = (codes[None, :] == np.frombuffer(LETTERS.encode(), dtype=np.uint8)[:, None]).astype(np.int8)
    # Keyed by index: labels need not be unique in a MEME file.
    tables = fimo({str(index): motif.pwm for index, motif in enumerate(database)}, one_hot[None], threshold=threshold_p)
    hits = []
    for table in tables:
        columns = [table[name].to_numpy() for name in ("motif_name", "start", "end", "strand", "score", "p-value")]
        for key, start, end, strand, score, p_value in zip(*columns, strict=True):
            motif = database.motifs[int(key)]
            hits.append(MotifHit(motif.id, motif.name, int(start), int(end), str(strand), float(score), float(p_value)))
    return sorted(hits, key=lambda hit: (hit.start, hit.p_value, hit.motif_id))


__all__ = [
    "compile_motif_kernels",
    "JASPAR_LICENCE",
    "LETTERS",
    "Motif",
    "MotifDatabase",
    "MotifHit",
    "annotate_sequence",
    "cache_dir",
    "jaspar_database",
    "motif_database",
    "package_version",
    "read_meme",
    "write_meme",
]


def compile_motif_kernels() -> None:
    """Compiles memelite's TOMTOM and FIMO kernels into numba's on-disk cache with two tiny motifs, so that the
    first real scan or match does not wait about a minute for them (run once after installing)."""
    import warnings

    from memelite import fimo, tomtom

    rng = np.random.default_rng(0)
    motifs = [rng.dirichlet(np.ones(4), size=8).T for _ in range(2)]  # (4, width) letter probabilities
    with warnings.catch_warnings():  # the p-values of two targets mean nothing; only the compiling matters here
        warnings.simplefilter("ignore", UserWarning)
        tomtom([np.asfortranarray(motif) for motif in motifs], motifs)
    one_hot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 200)].T
    fimo({"a": motifs[0], "b": motifs[1]}, one_hot[None], threshold=1e-4)
