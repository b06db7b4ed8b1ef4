import json

import numpy as np
import pytest

from expression_perceiver.data.errors import DataError
from expression_perceiver.inference.attribution_files import AttributionFile, AttributionWriter
from expression_perceiver.interpretation import positional_profile, summarise_regions, write_profile
from expression_perceiver.interpretation.profiles import letter_contributions, region_positions, relative_halves
from tests.interpretation.planted import TATA, Plant, planted_set, write_planted, write_ragged

LENGTH, TSS, TATA_START = 100, 60, 30  # the TATA box at positions -30..-23


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    planted = planted_set(300, LENGTH, TSS, [Plant(TATA, share=0.8, first=TATA_START, last=TATA_START)])
    return planted, write_planted(tmp_path_factory.mktemp("profiles") / "planted.npz", planted)


def test_profile_peaks_at_the_planted_motif_and_its_intervals_hold_the_true_mean(planted):
    data, file = planted
    table = positional_profile(file, bootstrap=500)
    contributions = data.attributions.astype(np.float64).sum(-1)
    np.testing.assert_array_equal(table.position, np.arange(LENGTH) - TSS)
    np.testing.assert_array_equal(table.n, np.full(LENGTH, 300))
    np.testing.assert_allclose(table.mean_signed, contributions.mean(0), rtol=1e-10)
    np.testing.assert_allclose(table.mean_abs, np.abs(contributions).mean(0), rtol=1e-10)
    planted_positions = np.arange(TATA_START, TATA_START + len(TATA)) - TSS
    assert set(table.position[np.argsort(table.mean_abs)[-len(TATA) :]]) == set(planted_positions)
    # Population mean: share 0.8 x mean scale 1 on the motif, 0 elsewhere (the noise is centred).
    truth = np.where(np.isin(table.position, planted_positions), 0.8, 0.0)
    inside = (table.mean_signed_low <= truth) & (truth <= table.mean_signed_high)
    assert inside.mean() >= 0.9
    assert inside[np.isin(table.position, planted_positions)].mean() >= 0.75
    assert np.all(table.mean_abs_low <= table.mean_abs) and np.all(table.mean_abs <= table.mean_abs_high)


def test_bootstrap_is_seeded_and_blocks_change_nothing(planted):
    _, file = planted
    first = positional_profile(file, bootstrap=200, seed=3)
    again = positional_profile(file, bootstrap=200, seed=3, block_bytes=4096)  # many small blocks
    other = positional_profile(file, bootstrap=200, seed=4)
    for name, values in first.columns().items():
        np.testing.assert_allclose(again.columns()[name], values, rtol=1e-12, err_msg=name)
    assert not np.allclose(other.mean_abs_low, first.mean_abs_low)
    np.testing.assert_array_equal(other.mean_abs, first.mean_abs)


def test_region_shares_match_the_halves_and_the_peak(planted):
    _, file = planted
    table = positional_profile(file, bootstrap=0)
    assert np.isnan(table.mean_abs_low).all()
    summary = summarise_regions(table)
    total = table.mean_abs.sum()
    assert summary["first"] + summary["last"] == pytest.approx(1.0)
    assert summary["first"] == pytest.approx(table.mean_abs[:50].sum() / total)
    assert summary["middle"] == pytest.approx(table.mean_abs[25:75].sum() / total)
    assert region_positions(table) == {"first": [-60, -11], "middle": [-35, 14], "last": [-10, 39]}
    assert TATA_START - TSS <= summary["peak_position"] < TATA_START - TSS + len(TATA)
    assert summary["peak_mean_abs"] == pytest.approx(table.mean_abs.max())
    assert summary["first"] > 0.6  # the motif sits in the first half


def loop_profile(contributions, anchor, weights):
    """The profile one position and one sequence at a time."""
    width = max(len(values) for values in contributions)
    rows = []
    for column in range(width):
        covering = []
        for index, values in enumerate(contributions):
            within = column - (width - len(values)) if anchor == "end" else column
            if 0 <= within < len(values):
                covering.append((index, values[within]))
        indices = np.array([index for index, _ in covering])
        values = np.array([value for _, value in covering])
        boot = [(w[indices] * np.abs(values)).sum() / w[indices].sum() for w in weights if w[indices].sum() > 0]
        rows.append((len(values), np.abs(values).mean(), values.mean(), np.percentile(boot, [2.5, 97.5])))
    return rows


@pytest.mark.parametrize("anchor", ["start", "end"])
def test_ragged_profile_matches_a_loop(tmp_path, anchor):
    rng = np.random.default_rng(1)
    contributions = [rng.normal(size=length) for length in (3, 8, 5, 8, 1, 6)]
    file = write_ragged(tmp_path / "proteins.npz", contributions)
    assert not file.uniform
    table = positional_profile(file, anchor=anchor, bootstrap=50, seed=7, block_bytes=256)
    weights = np.random.default_rng(7).multinomial(6, np.full(6, 1 / 6), size=50)
    expected = loop_profile(contributions, anchor, weights)
    np.testing.assert_array_equal(table.n, [row[0] for row in expected])
    np.testing.assert_allclose(table.mean_abs, [row[1] for row in expected], rtol=1e-6)
    np.testing.assert_allclose(table.mean_signed, [row[2] for row in expected], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(table.mean_abs_low, [row[3][0] for row in expected], rtol=1e-6)
    np.testing.assert_allclose(table.mean_abs_high, [row[3][1] for row in expected], rtol=1e-6)
    positions = np.arange(8) if anchor == "start" else np.arange(-8, 0)
    np.testing.assert_array_equal(table.position, positions)


def test_cross_attention_profile_averages_layers_and_heads(tmp_path):
    rng = np.random.default_rng(2)
    weights = [rng.random((2, 3, 40)).astype(np.float32) for _ in range(5)]  # (layers, heads, L)
    writer = AttributionWriter(tmp_path / "attention.npz", {"method": "cross_attention", "letters": "ACGT",
                                                            "origin": "start"})  # fmt: skip
    writer.add([f"s{i}" for i in range(5)], [40] * 5, {"cross_attention": weights}, {})
    writer.commit()
    table = positional_profile(AttributionFile.open(tmp_path / "attention.npz"), track="cross_attention", bootstrap=20)
    stacked = np.stack(weights).astype(np.float64)  # (N, layers, heads, L)
    np.testing.assert_allclose(table.mean_abs, stacked.mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(table.mean_signed_high, table.mean_abs_high)
    assert sorted(table.heads) == ["head0", "head1", "head2"]
    np.testing.assert_allclose(table.heads["head1"], stacked[:, :, 1].mean((0, 1)), rtol=1e-6)


def test_missing_track_is_a_data_error(planted):
    _, file = planted
    with pytest.raises(DataError, match="holds no 'cross_attention'") as error:
        positional_profile(file, track="cross_attention")
    assert "\n" not in str(error.value)


def test_write_profile_writes_the_table_figure_and_sidecar(planted, tmp_path):
    _, file = planted
    table = positional_profile(file, bootstrap=100)
    write_profile(table, tmp_path / "profile.tsv", tmp_path / "profile.png", title="planted TATA")
    lines = (tmp_path / "profile.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["position", "n", "mean_abs"]
    assert len(lines) == LENGTH + 1
    read = np.loadtxt(tmp_path / "profile.tsv", skiprows=1, delimiter="\t")
    np.testing.assert_allclose(read[:, 2], table.mean_abs, rtol=1e-5)
    assert (tmp_path / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sidecar = json.loads((tmp_path / "profile.tsv.json").read_text())
    assert sidecar["bootstrap"] == 100 and sidecar["regions"]["peak_position"] in range(-30, -22)
    assert not list(tmp_path.glob(".*partial"))


def test_letter_contributions_are_the_mean_contribution_where_each_letter_stands(planted):
    data, file = planted
    found = letter_contributions(file)
    contributions = data.attributions.astype(np.float64).sum(-1)
    for index in range(4):
        where = data.one_hot[..., index] == 1
        assert found.count[index] == where.sum()
        assert found.mean_signed[index] == pytest.approx(contributions[where].mean(), rel=1e-9)
        assert found.mean_abs[index] == pytest.approx(np.abs(contributions[where]).mean(), rel=1e-9)
    # The planted TATAAAAG adds positive contributions on A and T only.
    signed = dict(zip("ACGT", found.mean_signed, strict=True))
    assert min(signed["A"], signed["T"]) > max(signed["C"], signed["G"])


def test_relative_halves_use_each_sequences_own_length(tmp_path):
    rng = np.random.default_rng(0)
    # Signal only in the last quarter of each sequence, whatever its length.
    contributions = []
    for length in rng.integers(20, 200, size=60):
        values = np.zeros(length)
        values[-(length // 4) :] = rng.uniform(0.5, 1.5, length // 4)
        contributions.append(values)
    halves = relative_halves(write_ragged(tmp_path / "ragged.npz", contributions), bootstrap=200)
    assert halves["last"]["mean"] == pytest.approx(1.0) and halves["first"]["mean"] == pytest.approx(0.0)
    assert halves["middle"]["low"] <= halves["middle"]["mean"] <= halves["middle"]["high"]
    assert halves["sequences"]["n"] == 60
