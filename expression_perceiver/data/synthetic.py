"""Synthetic promoters and proteins with a planted, documented expression signal (deterministic by seed).

They stand in for real data wherever none may be downloaded (demo, tests, benchmarks): a model that learns
nothing from them is broken, and one that reaches the noise ceiling has found the signal.

Promoters (`generate_promoters`): windows of `length` bases with the TSS at index `length // 2`, each gene with
its own GC content drawn from U(0.35, 0.65). Around the TSS three elements are planted: copies of the TATA box
`TATAAA` in the 200 bases upstream (Poisson, mean 1), CpG dinucleotides in the 300 bases either side (Poisson,
mean 6), and the gene's GC content itself. Eight half-life-like features are standard normal. The label is

    label = 0.8 z(TATA boxes upstream) + 0.6 z(GC in TSS +- 500) + 0.5 z(CpG in TSS +- 300)
            + 0.4 f0 - 0.3 f1 + 0.2 f2 + noise,   noise ~ N(0, 0.4^2)

where counts are measured on the final sequence (chance occurrences included) and z() standardises over the
generated set. The noise bounds the achievable r2 at about 0.92 (about 0.79 from the sequence alone).

Positional promoters (`generate_positional_promoters`): a check of the masking study, whose ablations remove the
first half, the middle half [0.25, 0.75) or the last half of each window (TSS at `length // 2`). Background bases
are uniform (GC 0.5, the same for every gene) and two elements sit at known places, given as fractions of the
window so that any length of at least 1,000 works: in each element's region the gene's bases are drawn with its own
GC content, uniform in [0.3, 0.7] and independent between the two regions,

    upstream    GC-varying region within [0.05, 0.20) x length   (20,000 bases: TSS -9,000..-6,000)
    downstream  GC-varying region within [0.80, 0.95) x length   (20,000 bases: TSS +6,000..+9,000)

    label = 0.8 z(GC fraction of the upstream region) - 0.8 z(GC fraction of the downstream region) + noise,
            noise ~ N(0, 0.4^2)

with the fractions measured on the final sequence and z() over the generated set, as for the promoters above. A
composition any convolution reads at once, rather than a rare motif, so that a tiny model finds both elements in a
few epochs and the check measures where the signal is, not how hard it is to learn. The two regions count with
opposite signs, so the window's overall composition (what a k-mer baseline sees) tells almost nothing: a model must
read where the GC is. The eight features are
standard normal and do not enter the label, so any effect of masking is purely positional. With noise 0.4 the
ceiling r2 is 1.28 / 1.44, about 0.89, and each element alone explains half the signal (about 0.44). Expected
outcome: masking the first half removes the upstream element and the last half the downstream one (r2 falls
towards 0.44 each), masking the middle removes neither (r2 stays at the ceiling). Xpresso's best window (indices
3,000..13,500 of 20,000) holds none of the downstream region and a third of the upstream one: prepare this set with
the full window.
`generate xpresso` writes it as Xpresso HDF5 files (20,000 bases, TSS at 10,000).

Proteins (`generate_proteins`): lengths U(100, 1,000), each protein's amino-acid composition a Dirichlet draw
around the human average. The label is

    label = 0.9 z(fraction of K + R) - 0.6 z(fraction of L I V F M W) + 0.4 z(log10 length) + noise, noise ~ N(0, 0.5^2)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUCLEOTIDES = np.frombuffer(b"ACGT", dtype=np.uint8)
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# Human proteome amino-acid frequencies (UniProt), in the order of AMINO_ACIDS.
AMINO_ACID_FREQUENCIES = np.array(
    [7.0, 2.3, 4.7, 7.1, 3.7, 6.6, 2.6, 4.3, 5.7, 10.0, 2.1, 3.6, 6.3, 4.8, 5.6, 8.3, 5.4, 6.0, 1.2, 2.7]
)
TATA_BOX = b"TATAAA"
NUM_HALF_LIFE_FEATURES = 8
HALF_LIFE_WEIGHTS = np.array([0.4, -0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])


@dataclass
class SyntheticSet:
    """Generated examples as columns: ids, sequences, labels and (for promoters) per-gene features."""

    gene_id: list[str]
    sequence: list[str]
    label: np.ndarray
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.gene_id)

    def to_dict(self) -> dict[str, list]:
        columns = {"gene_id": self.gene_id, "sequence": self.sequence, "label": self.label.tolist()}
        if self.features is not None:
            columns["features"] = self.features.tolist()
        return columns


def standardise(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def count_motif(sequences: np.ndarray, motif: bytes, start: int, end: int) -> np.ndarray:
    """Occurrences of `motif` starting within [start, end) of each row of a (genes, length) byte array."""
    pattern = np.frombuffer(motif, dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(sequences[:, start : end + len(pattern) - 1], len(pattern), 1)
    return (windows == pattern).all(axis=-1).sum(axis=1)


def plant(sequences: np.ndarray, motif: bytes, counts: np.ndarray, start: int, end: int, rng) -> None:
    """Writes `counts[g]` copies of `motif` at uniform positions within [start, end) of gene g, in place."""
    pattern = np.frombuffer(motif, dtype=np.uint8)
    for copy in range(int(counts.max(initial=0))):  # loop over copies, vectorised over genes
        genes = np.flatnonzero(counts > copy)
        positions = rng.integers(start, end - len(pattern) + 1, size=len(genes))
        columns = positions[:, None] + np.arange(len(pattern))
        sequences[genes[:, None], columns] = pattern


def generate_promoters(num_genes: int, length: int = 2_000, seed: int = 0, noise: float = 0.4) -> SyntheticSet:
    """Promoter windows (TSS at `length // 2`), 8 half-life-like features and a planted label (module doc)."""
    if length < 1_000:
        raise ValueError(f"length must be at least 1,000 bases to hold the planted elements, got {length}")
    rng = np.random.default_rng(seed)
    tss = length // 2
    gc = rng.uniform(0.35, 0.65, size=num_genes)
    probabilities = np.stack([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2], axis=1)  # A C G T
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random((num_genes, length))
    sequences = NUCLEOTIDES[(draws[:, :, None] > cumulative[:, None, :3]).sum(axis=-1)]
    plant(sequences, b"CG", rng.poisson(6.0, num_genes), tss - 300, tss + 300, rng)
    plant(sequences, TATA_BOX, rng.poisson(1.0, num_genes), tss - 200, tss, rng)

    tata = count_motif(sequences, TATA_BOX, tss - 200, tss - len(TATA_BOX) + 1)
    cpg = count_motif(sequences, b"CG", tss - 300, tss + 299)
    core = sequences[:, max(tss - 500, 0) : tss + 500]
    gc_core = ((core == ord("G")) | (core == ord("C"))).mean(axis=1)
    features = rng.standard_normal((num_genes, NUM_HALF_LIFE_FEATURES)).astype(np.float32)
    label = (
        0.8 * standardise(tata)
        + 0.6 * standardise(gc_core)
        + 0.5 * standardise(cpg)
        + features @ HALF_LIFE_WEIGHTS
        + rng.normal(0.0, noise, num_genes)
    )
    return SyntheticSet(
        gene_id=[f"GENE{i:06d}" for i in range(num_genes)],
        sequence=[row.tobytes().decode("ascii") for row in sequences],
        label=label.astype(np.float64),
        features=features,
    )


@dataclass(frozen=True)
class CompositionElement:
    """A region, given as fractions [start, end) of the window, whose bases have a per-gene GC content."""

    name: str
    region: tuple[float, float]
    gc_range: tuple[float, float] = (0.3, 0.7)
    weight: float = 0.8

    def bounds(self, length: int) -> tuple[int, int]:
        """The region in bases of a `length`-base window."""
        return round(self.region[0] * length), round(self.region[1] * length)

    def draw(self, sequences: np.ndarray, rng) -> None:
        """Redraws the region of each row of a (genes, length) byte array with a GC content of its own, in place."""
        start, end = self.bounds(sequences.shape[1])
        gc = rng.uniform(*self.gc_range, size=(len(sequences), 1))
        strong = rng.random((len(sequences), end - start)) < gc  # G or C with probability gc, else A or T
        pair = rng.integers(0, 2, size=strong.shape)  # which of the two
        sequences[:, start:end] = np.where(strong, STRONG_BASES[pair], WEAK_BASES[pair])

    def gc_fraction(self, sequences: np.ndarray) -> np.ndarray:
        """GC fraction of the region, per row of a (genes, length) byte array."""
        start, end = self.bounds(sequences.shape[1])
        region = sequences[:, start:end]
        return ((region == ord("G")) | (region == ord("C"))).mean(axis=1)


STRONG_BASES = np.frombuffer(b"GC", dtype=np.uint8)
WEAK_BASES = np.frombuffer(b"AT", dtype=np.uint8)
POSITIONAL_ELEMENTS = (
    CompositionElement("upstream", (0.05, 0.20)),
    CompositionElement("downstream", (0.80, 0.95), weight=-0.8),
)


def generate_positional_promoters(
    num_genes: int, length: int = 20_000, seed: int = 0, noise: float = 0.4
) -> SyntheticSet:
    """Windows whose label depends only on two regions' composition at known distances from the TSS (module doc)."""
    if num_genes < 1:
        raise ValueError(f"num_genes must be at least 1, got {num_genes}")
    if length < 1_000:
        raise ValueError(f"length must be at least 1,000 bases to hold the planted elements, got {length}")
    rng = np.random.default_rng(seed)
    sequences = NUCLEOTIDES[rng.integers(0, 4, size=(num_genes, length), dtype=np.uint8)]
    for element in POSITIONAL_ELEMENTS:
        element.draw(sequences, rng)

    signal = sum(element.weight * standardise(element.gc_fraction(sequences)) for element in POSITIONAL_ELEMENTS)
    features = rng.standard_normal((num_genes, NUM_HALF_LIFE_FEATURES)).astype(np.float32)
    label = signal + rng.normal(0.0, noise, num_genes)
    return SyntheticSet(
        gene_id=[f"POS{i:06d}" for i in range(num_genes)],
        sequence=[row.tobytes().decode("ascii") for row in sequences],
        label=label.astype(np.float64),
        features=features,
    )


# NRF1's binding site (JASPAR MA0506 consensus), a palindrome no 100-base uniform background holds by chance
# (4^-10 per position): a motif the attribution tests plant, recover and name.
NRF1_SITE = b"GCGCATGCGC"


@dataclass(frozen=True)
class PlantedMotifs:
    """Where `generate_motif_promoters` planted its motif: the first index of each copy (-1: none planted)."""

    motif: str
    starts: np.ndarray


def generate_motif_promoters(
    num_genes: int,
    length: int = 100,
    seed: int = 0,
    motif: bytes = NRF1_SITE,
    start: int | None = None,
    share: float = 0.5,
    noise: float = 0.1,
) -> tuple[SyntheticSet, PlantedMotifs]:
    """Uniform random windows of `length` bases, `motif` planted in a `share` of them at index `start` (default
    0.4 x length, before a TSS placed at the window's middle), label = 1 where it was planted, 0 elsewhere, plus
    N(0, noise^2): the ground truth for attribution methods, whose attributions must peak there, and for motif
    discovery, which must find the motif."""
    rng = np.random.default_rng(seed)
    start = round(0.4 * length) if start is None else start
    if not 0 <= start <= length - len(motif):
        raise ValueError(f"a {len(motif)}-base motif at {start} does not fit {length} bases")
    sequences = NUCLEOTIDES[rng.integers(0, 4, size=(num_genes, length), dtype=np.uint8)]
    planted = rng.random(num_genes) < share
    sequences[np.ix_(planted, np.arange(start, start + len(motif)))] = np.frombuffer(motif, dtype=np.uint8)
    label = planted.astype(np.float64) + rng.normal(0.0, noise, num_genes)
    generated = SyntheticSet(
        gene_id=[f"MOTIF{i:06d}" for i in range(num_genes)],
        sequence=[row.tobytes().decode("ascii") for row in sequences],
        label=label,
    )
    return generated, PlantedMotifs(motif.decode("ascii"), np.where(planted, start, -1))


def generate_proteins(num_proteins: int, seed: int = 0, noise: float = 0.5) -> SyntheticSet:
    """Protein sequences of 100-1,000 residues with a planted composition signal (module doc)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 1_001, size=num_proteins)
    composition = rng.dirichlet(AMINO_ACID_FREQUENCIES * 2.0, size=num_proteins)
    cumulative = composition.cumsum(axis=1)
    letters = np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)
    sequences, basic, hydrophobic = [], np.empty(num_proteins), np.empty(num_proteins)
    is_basic = np.isin(letters, np.frombuffer(b"KR", np.uint8))
    is_hydrophobic = np.isin(letters, np.frombuffer(b"LIVFMW", np.uint8))
    for i, length in enumerate(lengths):  # one vectorised draw per protein
        index = np.minimum((rng.random(length)[:, None] > cumulative[i][None, :]).sum(axis=1), len(letters) - 1)
        counts = np.bincount(index, minlength=len(letters))
        basic[i], hydrophobic[i] = counts[is_basic].sum() / length, counts[is_hydrophobic].sum() / length
        sequences.append(letters[index].tobytes().decode("ascii"))
    label = (
        0.9 * standardise(basic)
        - 0.6 * standardise(hydrophobic)
        + 0.4 * standardise(np.log10(lengths))
        + rng.normal(0.0, noise, num_proteins)
    )
    return SyntheticSet(
        gene_id=[f"PROT{i:06d}" for i in range(num_proteins)], sequence=sequences, label=label.astype(np.float64)
    )


def write_table(generated: SyntheticSet, path: str) -> None:
    """Writes a TSV (gzip when `path` ends with .gz): gene_id, sequence, label, then one column per feature."""
    import csv
    import gzip

    feature_names = (
        [f"feature_{i}" for i in range(generated.features.shape[1])] if generated.features is not None else []
    )
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["gene_id", "sequence", "label", *feature_names])
        for i, gene in enumerate(generated.gene_id):
            features = generated.features[i].tolist() if feature_names else []
            writer.writerow([gene, generated.sequence[i], repr(float(generated.label[i])), *features])


def write_xpresso_folder(generated: SyntheticSet, folder: str | Path) -> dict[str, int]:
    """Writes `train.h5`, `valid.h5` and `test.h5` (the first 80%, next 10% and last 10% of the genes, in order) in
    the Xpresso HDF5 format, which needs 20,000-base windows with the TSS at 10,000. Returns the rows per file."""
    from .xpresso import XPRESSO_SPLIT_FILES, write_xpresso_h5

    num_genes = len(generated)
    cuts = (0, num_genes * 8 // 10, num_genes * 9 // 10, num_genes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for (split, file_name), first, last in zip(XPRESSO_SPLIT_FILES.items(), cuts[:-1], cuts[1:], strict=True):
        records = (
            {
                "gene_id": generated.gene_id[row],
                "sequence": generated.sequence[row],
                "label": float(generated.label[row]),
                "features": generated.features[row].tolist() if generated.features is not None else [],
            }
            for row in range(first, last)
        )
        written[split] = write_xpresso_h5(folder / file_name, records)
    return written
