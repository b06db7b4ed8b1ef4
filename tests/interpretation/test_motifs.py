import numpy as np
import pytest

from expression_perceiver.data.errors import DataError
from expression_perceiver.interpretation import discover_motifs, motif_database
from expression_perceiver.interpretation import motifs as motifs_module
from tests.interpretation.planted import (
    NFY,
    NRF1,
    SMALL_DATABASE,
    SP1,
    TATA,
    Plant,
    meme_text,
    planted_set,
    reverse_complement,
    write_planted,
    write_ragged,
)

pytest.importorskip("memelite")
pytest.importorskip("modiscolite")
# The small test database is below TOMTOM's 25 targets: p-values fit to rank matches, not to be reported.
pytestmark = pytest.mark.filterwarnings("ignore:tomtom was given")


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("motif_db") / "small.meme"
    path.write_text(meme_text(SMALL_DATABASE))
    return motif_database(path)


def test_protein_attributions_are_refused(tmp_path, small_db):
    file = write_ragged(tmp_path / "proteins.npz", [np.ones(50), np.ones(60)])
    with pytest.raises(DataError, match="MoDISco needs 4-letter DNA attributions") as error:
        discover_motifs(file, tmp_path / "motifs", motif_db=small_db)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "motifs").exists()


def planted_patterns(planted, spans):
    """MoDISco patterns made by hand from seqlets at the planted sites (as TFMoDISco returns them)."""
    from modiscolite import core

    track_set = core.TrackSet(planted.one_hot, planted.attributions, planted.hypothetical)
    patterns = []
    for motif, flank in spans:
        starts, reverse = planted.starts[motif], planted.reverse[motif]
        seqlets = [
            core.Seqlet(int(row), int(starts[row]) - flank, int(starts[row]) + len(motif) + flank, bool(reverse[row]))
            for row in np.flatnonzero(starts >= 0)
        ]
        patterns.append(core.SeqletSet(track_set.create_seqlets(seqlets), track_set=track_set))
    return patterns


@pytest.fixture(scope="module")
def two_motifs(tmp_path_factory):
    plants = [Plant(TATA, 0.8, 25, 35, reverse=0.5), Plant(NFY, 0.5, 70, 80, sign=-1.0)]
    planted = planted_set(200, 120, 60, plants, seed=3)
    return planted, write_planted(tmp_path_factory.mktemp("motifs") / "planted.npz", planted)


def test_report_from_modisco_patterns(two_motifs, small_db, tmp_path, monkeypatch):
    planted, file = two_motifs
    positive, negative = planted_patterns(planted, [(TATA, 6), (NFY, 6)])
    monkeypatch.setattr(motifs_module, "run_modisco", lambda *args: ([positive], [negative]))
    report = discover_motifs(file, tmp_path / "motifs", motif_db=small_db, top_matches=2)
    folder = tmp_path / "motifs"
    assert [p.name for p in report.patterns] == ["pos_0", "neg_0"]
    tata, nfy = report.patterns
    assert TATA in tata.consensus and tata.sign == "positive"
    assert (tata.matches[0].id, tata.matches[0].name, tata.matches[0].strand) == ("TEST0001.1", "TBP", "+")
    assert nfy.matches[0].name == "NFYA" and nfy.sign == "negative"
    assert tata.matches[0].q_value >= tata.matches[0].p_value
    # The seqlets' centres are the planted copies' centres, relative to the TSS at index 60.
    centres = planted.starts[TATA][planted.starts[TATA] >= 0] + (len(TATA) - 1) / 2 - 60
    assert tata.position_quartiles()[1] == pytest.approx(np.median(centres))
    assert tata.reverse_share == pytest.approx(planted.reverse[TATA][planted.starts[TATA] >= 0].mean())
    assert 0.3 < tata.reverse_share < 0.7
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert names == {"motifs.tsv", "patterns.meme", "report.md", "report.html", "modisco_results.h5",
                     "logos/pos_0.png", "logos/neg_0.png", "positions/pos_0.png", "positions/neg_0.png"}  # fmt: skip
    rows = [line.split("\t") for line in (folder / "motifs.tsv").read_text().splitlines()]
    header = rows[0]
    assert header[:6] == ["pattern", "sign", "seqlets", "width", "core", "consensus"]
    assert rows[1][header.index("match1_name")] == "TBP" and rows[2][header.index("match1_name")] == "NFYA"
    assert rows[1][header.index("seqlets")] == str(tata.seqlets)
    assert "match3" not in header
    markdown = (folder / "report.md").read_text()
    assert "TEST0001.1 TBP" in markdown and "logos/pos_0.png" in markdown and "Benjamini-Hochberg" in markdown
    assert str(file.path) in markdown
    assert [motif.id for motif in motif_database(folder / "patterns.meme")] == ["pos_0", "neg_0"]
    h5py = pytest.importorskip("h5py")
    with h5py.File(folder / "modisco_results.h5") as results:
        assert results["pos_patterns/pattern_0/seqlets/n_seqlets"][0] == tata.seqlets
        assert "neg_patterns" in results
    assert any("pos_0" in line and "TBP" in line for line in report.summary_lines())


def test_nothing_is_left_behind_when_the_report_fails(two_motifs, small_db, tmp_path, monkeypatch):
    planted, file = two_motifs
    positive, _ = planted_patterns(planted, [(TATA, 6)] * 2)
    monkeypatch.setattr(motifs_module, "run_modisco", lambda *args: ([positive], []))

    def failing_plot(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(motifs_module, "plot_positions", failing_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        discover_motifs(file, tmp_path / "motifs", motif_db=small_db)
    assert list(tmp_path.iterdir()) == []


def test_window_and_sequence_limits_reach_modisco(two_motifs, small_db, tmp_path, monkeypatch):
    planted, file = two_motifs
    seen = {}

    def no_patterns(one_hot, hypothetical, options):
        seen.update(one_hot=one_hot, hypothetical=hypothetical, options=options)
        return [], []

    monkeypatch.setattr(motifs_module, "run_modisco", no_patterns)
    report = discover_motifs(file, tmp_path / "m", small_db, window=(-50, 0), max_sequences=50, seed=1, max_seqlets=99)
    rows = np.sort(np.random.default_rng(1).choice(200, size=50, replace=False))
    np.testing.assert_array_equal(seen["one_hot"], planted.one_hot[rows, 10:60])
    np.testing.assert_array_equal(seen["hypothetical"], planted.hypothetical[rows, 10:60])
    assert seen["options"]["max_seqlets_per_metacluster"] == 99
    assert (report.window, report.sequences, report.patterns) == ((-50, -1), 50, [])
    assert "MoDISco found no pattern" in (tmp_path / "m" / "report.md").read_text()
    for window, message in (((500, 600), r"no position in the window \[500, 600\)"), ((-30, 0), "not 30")):
        with pytest.raises(DataError, match=message) as error:
            discover_motifs(file, tmp_path / "other", small_db, window=window)
        assert str(error.value).startswith(str(file.path))


def test_benjamini_hochberg_matches_a_direct_computation():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.001])
    q = motifs_module.benjamini_hochberg(p)
    np.testing.assert_allclose(q, [0.025, 0.05, 0.05, 0.5, 0.005])  # p x 5 / rank, then running minimum


@pytest.mark.slow
def test_modisco_finds_the_planted_motifs(tmp_path, small_db):
    """TF-MoDISco-lite itself (some 15 s): four motifs at random places in 300 sequences of 200 bases."""
    plants = [Plant(TATA, 0.6, 15, 170), Plant(SP1, 0.6, 15, 170), Plant(NRF1, 0.6, 15, 170)]
    plants.append(Plant(NFY, 0.6, 15, 170, sign=-1.0))
    planted = planted_set(300, 200, 100, plants, seed=0)
    file = write_planted(tmp_path / "planted.npz", planted)
    report = discover_motifs(file, tmp_path / "motifs", motif_db=small_db, n_leiden_runs=2)
    positive = [p for p in report.patterns if p.sign == "positive"]
    tata = [p for p in positive if TATA in p.consensus or reverse_complement(TATA) in p.consensus]
    assert tata, [p.consensus for p in report.patterns]
    assert tata[0].matches[0].name == "TBP"
    assert any(p.matches[0].name == "NFYA" for p in report.patterns if p.sign == "negative")
    assert (tmp_path / "motifs" / "modisco_results.h5").is_file()


def test_a_pattern_without_a_core_is_not_matched():
    """Noise spreads contribution evenly over a pattern: trimming keeps most of it, and such a flat, wide matrix
    would find spuriously small TOMTOM p-values against long motifs (CTCF's)."""
    from expression_perceiver.interpretation.motifs import PatternSummary, trim_bounds

    rng = np.random.default_rng(0)
    flat = rng.uniform(0.8, 1.0, size=(40, 4))
    peaked = np.full((40, 4), 0.01)
    peaked[15:23] = 1.0
    for cwm, diffuse in ((flat, True), (peaked, False)):
        start, stop = trim_bounds(cwm)
        summary = PatternSummary("pos_0", "positive", 10, cwm[start:stop], cwm[start:stop] / cwm[start:stop].sum(1,
            keepdims=True), cwm, np.zeros(10), 0.5, untrimmed_width=len(cwm))  # fmt: skip
        assert summary.diffuse == diffuse
