import numpy as np

from expression_perceiver.data.synthetic import (
    TATA_BOX,
    generate_promoters,
    generate_proteins,
    write_table,
)


def count_naive(sequence: str, motif: str, start: int, end: int) -> int:
    return sum(sequence.startswith(motif, i) for i in range(start, end))


def test_promoters_are_deterministic_by_seed():
    first, second, other = (
        generate_promoters(50, 1_000, seed=3),
        generate_promoters(50, 1_000, seed=3),
        generate_promoters(50, 1_000, seed=4),
    )
    assert first.sequence == second.sequence and np.array_equal(first.label, second.label)
    assert first.sequence != other.sequence
    assert all(len(s) == 1_000 and set(s) <= set("ACGT") for s in first.sequence)
    assert first.features.shape == (50, 8)


def test_promoter_label_carries_the_documented_signal():
    promoters = generate_promoters(2_000, 1_000, seed=0)
    tss = 500
    tata = np.array([count_naive(s, TATA_BOX.decode(), tss - 200, tss - 5) for s in promoters.sequence])
    cpg = np.array([count_naive(s, "CG", tss - 300, tss + 299) for s in promoters.sequence])
    gc = np.array([(s[0:1000].count("G") + s[0:1000].count("C")) / 1000 for s in promoters.sequence])
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    signal = 0.8 * z(tata) + 0.6 * z(gc) + 0.5 * z(cpg) + promoters.features @ np.array([0.4, -0.3, 0.2, 0, 0, 0, 0, 0])
    residual = promoters.label - signal
    assert abs(residual.std() - 0.4) < 0.03  # only the documented noise is left
    r2 = np.corrcoef(signal, promoters.label)[0, 1] ** 2
    assert 0.88 < r2 < 0.96
    assert tata.mean() > 0.9  # the planted TATA boxes are there


def test_proteins_carry_a_composition_signal():
    proteins = generate_proteins(1_000, seed=0)
    lengths = np.array([len(s) for s in proteins.sequence])
    assert lengths.min() >= 100 and lengths.max() <= 1_000
    basic = np.array([(s.count("K") + s.count("R")) / len(s) for s in proteins.sequence])
    assert np.corrcoef(basic, proteins.label)[0, 1] > 0.4


def test_write_table_round_trip(tmp_path):
    promoters = generate_promoters(5, 1_000, seed=1)
    write_table(promoters, tmp_path / "promoters.tsv.gz")
    import gzip

    lines = gzip.open(tmp_path / "promoters.tsv.gz", "rt").read().splitlines()
    assert lines[0].split("\t")[:3] == ["gene_id", "sequence", "label"]
    assert len(lines[0].split("\t")) == 11 and len(lines) == 6
    assert float(lines[1].split("\t")[2]) == promoters.label[0]
