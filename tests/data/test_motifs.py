"""Motif databases: MEME files read (and refused when they are not MEME DNA motif files), the default JASPAR CORE
vertebrates collection built offline into the cache, and FIMO matches of planted sites on both strands."""

import numpy as np
import pytest

from expression_perceiver.data.errors import DataError
from expression_perceiver.data.motifs import annotate_sequence, motif_database
from tests.interpretation.planted import SMALL_DATABASE, SP1, TATA, meme_text, reverse_complement


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("motif_db") / "small.meme"
    path.write_text(meme_text(SMALL_DATABASE))
    return motif_database(path)


def test_meme_file_is_read_with_ids_and_names(small_db):
    assert len(small_db) == len(SMALL_DATABASE)
    assert [motif.label for motif in small_db] == list(SMALL_DATABASE)
    (tbp,) = small_db.find("tbp")
    assert (tbp.id, tbp.name, tbp.consensus, tbp.sites) == ("TEST0001.1", "TBP", TATA, 20)
    np.testing.assert_allclose(tbp.pwm.sum(0), 1.0)
    assert small_db.release is None and small_db.licence is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("gene\tvalue\nTP53\t1.0\n", "not a MEME motif file (it starts with 'gene\\tvalue'"),
        ("MEME version 4\n\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n", "alphabet 'ACDEFGHIKLMNPQRSTVWY'"),
        ("MEME version 4\n\nMOTIF M1 X\n", "no MOTIF with a letter-probability matrix"),
        ("MEME version 4\nMOTIF M1\nletter-probability matrix: alength= 4 w= 2\n0.1 0.2 0.7\n", "line 4"),
    ],
)
def test_files_that_are_not_meme_files_are_one_line_data_errors(tmp_path, text, message):
    path = tmp_path / "motifs.txt"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        motif_database(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_binary_file_is_not_a_meme_file(tmp_path):
    path = tmp_path / "motifs.meme"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataError, match="not a MEME motif file"):
        motif_database(path)


@pytest.fixture(scope="session")
def jaspar(tmp_path_factory):
    """The default database, built into a fresh cache once per session."""
    pytest.importorskip("pyjaspar")
    cache = tmp_path_factory.mktemp("xdg_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        database = motif_database()
        again = motif_database()  # read from the cache
    return database, again, cache


def test_default_jaspar_database_loads_offline_and_states_its_licence(jaspar):
    database, again, cache = jaspar
    assert database.release.startswith("JASPAR") and "CC BY 4.0" in database.licence
    assert database.path.parent == cache / "expression_perceiver"
    assert database.path.name == f"{database.release}_CORE_vertebrates_non-redundant.meme"
    assert len(database) > 500 and len(again) == len(database)
    for factor in ("TBP", "SP1", "NRF1", "YY1", "NFYA"):
        assert database.find(factor), factor
    assert "MA0108.3 TBP" in {motif.label for motif in database}
    assert database.release in database.statement() and "CC BY 4.0" in database.statement()


def test_annotate_sequence_finds_planted_sites_on_both_strands(small_db):
    pytest.importorskip("memelite")
    rng = np.random.default_rng(5)
    letters = list("".join(rng.choice(list("ACGT"), size=120)))
    letters[40:48] = TATA
    letters[90:99] = reverse_complement(SP1)
    hits = annotate_sequence("".join(letters), small_db, threshold_p=1e-4)
    found = {(hit.motif_name, hit.start, hit.end, hit.strand) for hit in hits}
    assert ("TBP", 40, 48, "+") in found
    assert ("SP1", 90, 99, "-") in found
    tbp = next(hit for hit in hits if hit.motif_name == "TBP" and hit.start == 40)
    assert tbp.motif_id == "TEST0001.1" and tbp.p_value < 1e-4 and tbp.score > 0
    assert [hit.start for hit in hits] == sorted(hit.start for hit in hits)
    assert annotate_sequence("NNNN", small_db) == []
