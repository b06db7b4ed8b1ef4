import numpy as np
import pytest

from expression_perceiver.cli import main as cli_main
from expression_perceiver.data.synthetic import (
    POSITIONAL_ELEMENTS,
    TATA_BOX,
    generate_positional_promoters,
    generate_promoters,
    generate_proteins,
    write_table,
)
from expression_perceiver.data.xpresso import read_xpresso_h5


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


@pytest.fixture(scope="module")
def positional():
    return generate_positional_promoters(2_000, 2_000, seed=0)


# The planted regions of a 2,000-base window: [0.05, 0.20) and [0.80, 0.95) of it.
REGIONS_AT_2000 = {"upstream": (100, 400), "downstream": (1_600, 1_900)}


def gc_of(sequences: list[str], start: int, end: int) -> np.ndarray:
    """GC fraction of [start, end) of each sequence, counted letter by letter."""
    return np.array([sum(base in "GC" for base in sequence[start:end]) / (end - start) for sequence in sequences])


def test_positional_label_is_driven_by_the_composition_of_its_regions(positional):
    assert {element.name: element.bounds(2_000) for element in POSITIONAL_ELEMENTS} == REGIONS_AT_2000
    gc = [gc_of(positional.sequence, *REGIONS_AT_2000[element.name]) for element in POSITIONAL_ELEMENTS]
    for fraction in gc:
        assert 0.2 < fraction.min() and fraction.max() < 0.8 and abs(fraction.mean() - 0.5) < 0.01
        assert fraction.std() > 0.1  # U(0.3, 0.7) has std 0.115
    assert np.corrcoef(gc[0], positional.label)[0, 1] > 0.4 and np.corrcoef(gc[1], positional.label)[0, 1] < -0.4
    assert abs(np.corrcoef(gc[0], gc[1])[0, 1]) < 0.1  # independent elements
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    signal = 0.8 * z(gc[0]) - 0.8 * z(gc[1])
    assert abs((positional.label - signal).std() - 0.4) < 0.03  # only the documented noise is left
    assert 0.85 < np.corrcoef(signal, positional.label)[0, 1] ** 2 < 0.92  # the documented ceiling, about 0.89
    # The features are there for the model's inputs but carry nothing.
    assert positional.features.shape == (2_000, 8)
    assert np.abs([np.corrcoef(feature, positional.label)[0, 1] for feature in positional.features.T]).max() < 0.1
    assert positional.gene_id[:2] == ["POS000000", "POS000001"]


def test_outside_the_regions_the_bases_are_uniform_and_say_nothing(positional):
    outside = [(0, 100), (400, 1_600), (1_900, 2_000)]
    text = "".join(sequence[start:end] for sequence in positional.sequence for start, end in outside)
    counts = np.array([text.count(base) for base in "ACGT"]) / len(text)
    np.testing.assert_allclose(counts, 0.25, atol=0.002)
    for start, end in outside:
        assert abs(np.corrcoef(gc_of(positional.sequence, start, end), positional.label)[0, 1]) < 0.1
    # Opposite signs: the whole window's GC, what a position-blind model sees, says almost nothing.
    assert abs(np.corrcoef(gc_of(positional.sequence, 0, 2_000), positional.label)[0, 1]) < 0.1


def test_positional_windows_are_deterministic_and_checked():
    first, second = generate_positional_promoters(20, 1_000, seed=2), generate_positional_promoters(20, 1_000, seed=2)
    assert first.sequence == second.sequence and np.array_equal(first.label, second.label)
    assert all(len(sequence) == 1_000 and set(sequence) <= set("ACGT") for sequence in first.sequence)
    with pytest.raises(ValueError, match="at least 1,000"):
        generate_positional_promoters(5, 999)


SPLIT_FILES = ("train", "valid", "test")


def test_generate_xpresso_round_trips_through_the_reader(tmp_path):
    assert cli_main(["generate", "xpresso", str(tmp_path / "h5"), "--num", "30", "--seed", "1"]) == 0

    generated = generate_positional_promoters(30, 20_000, seed=1)
    files = {name: list(read_xpresso_h5(tmp_path / "h5" / f"{name}.h5", window=(0, 20_000))) for name in SPLIT_FILES}
    assert [len(records) for records in files.values()] == [24, 3, 3]  # 80/10/10, in order
    records = [record for name in SPLIT_FILES for record in files[name]]
    assert [record["gene_id"] for record in records] == generated.gene_id
    assert [record["sequence"] for record in records] == generated.sequence
    np.testing.assert_array_equal([record["label"] for record in records], generated.label)
    np.testing.assert_allclose([record["features"] for record in records], generated.features)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["xpresso", "OUT", "--length", "2000"], "--length must be 20,000"),
        (["xpresso", "OUT", "--num", "5"], "--num must be at least 10"),
        (["positional", "OUT.tsv", "--num", "0"], "--num must be at least 1"),
        (["positional", "OUT.tsv", "--length", "500"], "--length must be at least 1,000"),
    ],
)
def test_generate_refuses_bad_values_naming_the_flag(tmp_path, capsys, arguments, message):
    arguments = [str(tmp_path / argument) if argument.startswith("OUT") else argument for argument in arguments]
    assert cli_main(["generate", *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_generate_positional_writes_a_table(tmp_path):
    assert cli_main(["generate", "positional", str(tmp_path / "positional.tsv"), "--num", "4", "--length", "1000"]) == 0
    lines = (tmp_path / "positional.tsv").read_text().splitlines()
    assert len(lines) == 5 and lines[1].startswith("POS000000\t") and len(lines[1].split("\t")[1]) == 1_000
