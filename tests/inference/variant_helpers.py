"""A tiny genome with three genes' promoter windows, and model windows built by hand from its strings (no package
code): the reference and the window carrying a change, anchored at the TSS."""

from pathlib import Path

import numpy as np

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}
CROP = (50, 350)  # of 400-base BED windows, TSS at their centre (index 200): 150 bases upstream, 150 from the TSS
UPSTREAM, DOWNSTREAM = 150, 150


def revcomp(sequence: str) -> str:
    return "".join(COMPLEMENT[base] for base in reversed(sequence))


def make_chromosomes() -> dict[str, str]:
    rng = np.random.default_rng(11)
    return {name: "".join(rng.choice(list("ACGT"), size=length)) for name, length in (("chr1", 3_000), ("chr2", 1_200))}


CHROMOSOMES = make_chromosomes()
CHR1 = CHROMOSOMES["chr1"]
# gene: (BED chrom, start, end, strand); the TSS (0-based) is start + 200 on +, end - 1 - 200 on -.
GENES = {
    "gA": ("chr1", 1_000, 1_400, "+"),  # model window 1050..1350, TSS 1200
    "gB": ("chr1", 1_100, 1_500, "-"),  # model window 1150..1450, TSS 1299
    "gC": ("2", 300, 700, "+"),  # named "2" in the BED, "chr2" in the genome and the VCF; TSS 500
}


def tss(gene: str) -> int:
    _, start, end, strand = GENES[gene]
    return start + 200 if strand == "+" else end - 1 - 200


def base(position: int, chrom: str = "chr1") -> str:
    """The genome's base at a 0-based position."""
    return CHROMOSOMES[chrom][position]


def other(letter: str) -> str:
    return {"A": "C", "C": "G", "G": "T", "T": "A"}[letter]


def hand_window(gene: str, pos: int | None = None, ref: str = "", alt: str = "", tss_after: int | None = None) -> str:
    """The gene's model window, with REF at 1-based `pos` replaced by ALT in the chromosome first when given: the TSS
    base at `tss_after` in the mutated chromosome (by default where the change leaves it), `UPSTREAM` bases before it
    and `DOWNSTREAM` from it on the gene's strand."""
    chrom, _, _, strand = GENES[gene]
    sequence = CHROMOSOMES["chr" + chrom if not chrom.startswith("chr") else chrom]
    start = tss(gene)
    if pos is not None:
        p = pos - 1
        sequence = sequence[:p] + alt + sequence[p + len(ref) :]
        if tss_after is None:
            if p + len(ref) <= start:  # the change lies wholly before the TSS on the + strand
                tss_after = start + len(alt) - len(ref)
            elif p >= start:  # wholly after it (or its VCF anchor base is the TSS)
                tss_after = start
            else:
                raise AssertionError("give tss_after for a change over the TSS")
        start = tss_after
    if strand == "+":
        return sequence[start - UPSTREAM : start + DOWNSTREAM]
    return revcomp(sequence[start - DOWNSTREAM + 1 : start + UPSTREAM + 1])


def write_genome_and_bed(folder: Path, soft_masked: tuple[int, int] | None = None) -> None:
    """`genome.fa` (chr1 with an optional soft-masked, lower-case stretch) and `promoters.bed` of `GENES`."""
    lines = []
    for name, sequence in CHROMOSOMES.items():
        if name == "chr1" and soft_masked is not None:
            first, last = soft_masked
            sequence = sequence[:first] + sequence[first:last].lower() + sequence[last:]
        lines += [f">{name}"] + [sequence[i : i + 70] for i in range(0, len(sequence), 70)]
    (folder / "genome.fa").write_text("\n".join(lines) + "\n")
    (folder / "promoters.bed").write_text(
        "".join(
            f"{chrom}\t{start}\t{end}\t{gene}\t0\t{strand}\n" for gene, (chrom, start, end, strand) in GENES.items()
        )
    )
