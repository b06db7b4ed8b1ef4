"""Small generated inputs for the data tests, and answers computed without the package's code."""

import gzip
from pathlib import Path

import numpy as np

# Shared real data sits beside the repository (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
IUPAC_CODES = "RYSWKMBDHV"


def random_dna(rng: np.random.Generator, length: int, letters: str = "ACGT") -> str:
    return "".join(rng.choice(list(letters), size=length))


def hand_reverse_complement(sequence: str) -> str:
    return "".join(COMPLEMENT[base] for base in reversed(sequence))


def as_acgtn(sequence: str) -> str:
    """Upper case, every IUPAC ambiguity code as N."""
    return "".join("N" if base in IUPAC_CODES else base for base in sequence.upper())


def write_fasta(path: Path, records: dict[str, str], width: int = 60, compress: bool = False) -> Path:
    lines = []
    for name, sequence in records.items():
        lines.append(f">{name} some description")
        lines += [sequence[i : i + width] for i in range(0, len(sequence), width)]
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def write_table(path: Path, header: list[str], rows: list[list], delimiter: str = "\t") -> Path:
    text = "\n".join(delimiter.join(str(value) for value in row) for row in [header, *rows]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def hand_one_hot(sequence: str) -> np.ndarray:
    """(length, 4) bool one-hot in A, C, G, T order; anything else all zero."""
    letters = np.array(list(sequence))
    return np.stack([letters == base for base in "ACGT"], axis=-1)


def xpresso_records(count: int, seed: int = 0, num_features: int = 8, id_prefix: str = "ENSG") -> list[dict]:
    """Records with 20,000-base sequences (with runs of N), labels and features."""
    rng = np.random.default_rng(seed)
    records = []
    for row in range(count):
        sequence = list(random_dna(rng, 20_000))
        start = int(rng.integers(0, 19_000))
        sequence[start : start + 500] = "N" * 500
        record = {"gene_id": f"{id_prefix}{row:011d}", "sequence": "".join(sequence), "label": float(rng.normal())}
        if num_features:
            record["features"] = rng.normal(size=num_features).tolist()
        records.append(record)
    return records
