"""Attribution files with a planted truth: random DNA with known motifs at known places, whose hypothetical
contributions are high for the motif's letters there and small noise elsewhere, written with `AttributionWriter`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expression_perceiver.inference.attribution_files import AttributionFile, AttributionWriter

LETTERS = "ACGT"
TATA = "TATAAAAG"
SP1 = "GGGGCGGGG"
NRF1 = "GCGCATGCGC"
NFY = "CCAATCAG"
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def reverse_complement(sequence: str) -> str:
    return sequence.translate(COMPLEMENT)[::-1]


@dataclass(frozen=True)
class Plant:
    """A motif planted in a share of the sequences, starting in [first, last] (one place when equal); `sign` the
    direction of its contribution; `reverse` the share of copies planted as the reverse complement."""

    motif: str
    share: float
    first: int
    last: int
    sign: float = 1.0
    reverse: float = 0.0


@dataclass
class PlantedSet:
    one_hot: np.ndarray  # (N, L, 4) float32
    hypothetical: np.ndarray  # (N, L, 4) float32
    positions: np.ndarray  # (L,) relative to the TSS
    starts: dict[str, np.ndarray] = field(default_factory=dict)  # per motif: each sequence's start, -1 if absent
    reverse: dict[str, np.ndarray] = field(default_factory=dict)  # per motif: planted as reverse complement

    @property
    def attributions(self) -> np.ndarray:
        return self.one_hot * self.hypothetical

    def sequences(self) -> list[str]:
        return ["".join(LETTERS[i] for i in row.argmax(1)) for row in self.one_hot]


def planted_set(n: int, length: int, tss: int, plants: list[Plant], seed: int = 0, noise: float = 0.05) -> PlantedSet:
    """Random sequences with the `plants` written in (a later plant's copy skips sequences where it would overlap an
    earlier one's); each copy's contribution is `sign * scale` per letter, scale ~ U(0.5, 1.5), mean 1."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, length))
    hypothetical = rng.normal(0.0, noise, size=(n, length, 4))
    occupied = np.zeros((n, length), dtype=bool)
    result = PlantedSet(np.empty(0), np.empty(0), np.arange(length, dtype=np.int64) - tss)
    for plant in plants:
        starts = np.full(n, -1)
        reverse = np.zeros(n, dtype=bool)
        for row in np.flatnonzero(rng.random(n) < plant.share):
            start = int(rng.integers(plant.first, plant.last + 1))
            if occupied[row, max(start - 5, 0) : start + len(plant.motif) + 5].any():
                continue
            reverse[row] = rng.random() < plant.reverse
            letters = reverse_complement(plant.motif) if reverse[row] else plant.motif
            motif = np.array([LETTERS.index(letter) for letter in letters])
            span = slice(start, start + len(motif))
            codes[row, span] = motif
            occupied[row, span] = True
            hypothetical[row, span] += plant.sign * rng.uniform(0.5, 1.5) * np.eye(4)[motif]
            starts[row] = start
        result.starts[plant.motif] = starts
        result.reverse[plant.motif] = reverse
    result.one_hot = np.eye(4, dtype=np.float32)[codes]
    result.hypothetical = hypothetical.astype(np.float32)
    return result


def write_planted(path: Path, planted: PlantedSet, origin: str = "tss") -> AttributionFile:
    """The set as an attribution file (method `planted`), read back."""
    writer = AttributionWriter(
        path, {"method": "planted", "letters": LETTERS, "origin": origin}, {"positions": planted.positions}
    )
    count = len(planted.one_hot)
    members = {"one_hot": planted.one_hot, "attributions": planted.attributions, "hypothetical": planted.hypothetical}
    writer.add(
        [f"seq{i}" for i in range(count)],
        [planted.one_hot.shape[1]] * count,
        {name: list(values) for name, values in members.items()},
        {"prediction": np.zeros(count)},
    )
    writer.commit()
    return AttributionFile.open(path)


def write_ragged(path: Path, contributions: list[np.ndarray], letters: str = "ACDEFGHIKLMNPQRSTVWY") -> AttributionFile:
    """A protein-like file: per-position contributions put on the first letter, sequences of several lengths."""
    attributions = []
    for values in contributions:
        rows = np.zeros((len(values), len(letters)), dtype=np.float32)
        rows[:, 0] = values
        attributions.append(rows)
    writer = AttributionWriter(path, {"method": "planted", "letters": letters, "origin": "start"})
    writer.add(
        [f"protein{i}" for i in range(len(contributions))],
        [len(values) for values in contributions],
        {"attributions": attributions, "one_hot": [np.ones_like(rows) for rows in attributions]},
        {},
    )
    writer.commit()
    return AttributionFile.open(path)


def meme_text(motifs: dict[str, str], alphabet: str = "ACGT") -> str:
    """A MEME file of consensus motifs (`id name` -> sequence), each letter 0.85 and the others 0.05."""
    lines = ["MEME version 4", "", f"ALPHABET= {alphabet}", "", "strands: + -", ""]
    for label, sequence in motifs.items():
        lines += [f"MOTIF {label}", f"letter-probability matrix: alength= 4 w= {len(sequence)} nsites= 20 E= 0"]
        for letter in sequence:
            lines.append(" ".join("0.850" if letter == other else "0.050" for other in LETTERS))
        lines.append("")
    return "\n".join(lines)


SMALL_DATABASE = {
    "TEST0001.1 TBP": TATA,
    "TEST0002.1 SP1": SP1,
    "TEST0003.1 NRF1": NRF1,
    "TEST0004.1 NFYA": NFY,
    "TEST0005.1 YY1": "AAGATGGCGGC",
    "TEST0006.1 CTCF": "CCGCGNGGNGGCAG".replace("N", "A"),
    "TEST0007.1 GATA1": "AGATAAGA",
    "TEST0008.1 EBOX": "CACGTGAC",
}
