import h5py
import numpy as np
import pytest

from expression_perceiver.data.errors import DataError
from expression_perceiver.data.xpresso import (
    XPRESSO_FEATURE_NAMES,
    XpressoH5File,
    one_hot_to_sequences,
    read_xpresso_h5,
    write_xpresso_h5,
    xpresso_split_files,
)

from .helpers import hand_one_hot, xpresso_records


def write_original_layout(path, records, **overrides):
    """An Xpresso file written with h5py directly, as the original files are laid out."""
    arrays = {
        "promoter": np.stack([hand_one_hot(record["sequence"]) for record in records]),
        "data": np.array([record["features"] for record in records], dtype=np.float64),
        "label": np.array([record["label"] for record in records], dtype=np.float64),
        "geneName": np.array([record["gene_id"].encode() for record in records]),
    }
    arrays.update(overrides)
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            if value is not None:
                handle[key] = value
    return path


@pytest.fixture(scope="module")
def records():
    return xpresso_records(7, seed=1)


def test_reads_original_layout_with_default_window(tmp_path, records):
    path = write_original_layout(tmp_path / "train.h5", records)
    read = list(read_xpresso_h5(path))
    assert [r["gene_id"] for r in read] == [r["gene_id"] for r in records]
    assert [r["sequence"] for r in read] == [r["sequence"][3000:13500] for r in records]
    assert [r["label"] for r in read] == [r["label"] for r in records]
    np.testing.assert_allclose([r["features"] for r in read], [r["features"] for r in records])
    with XpressoH5File(path) as xpresso_file:
        assert xpresso_file.feature_names == list(XPRESSO_FEATURE_NAMES)
        assert xpresso_file.num_rows == 7


def test_chunked_full_window_reads_every_row_once(tmp_path, records):
    path = write_original_layout(tmp_path / "train.h5", records)
    in_chunks_of_three = [r["sequence"] for r in read_xpresso_h5(path, window=(0, 20_000), chunk_rows=3)]
    assert in_chunks_of_three == [r["sequence"] for r in records]


def test_write_then_read_round_trip_keeps_dtypes_and_keys(tmp_path, records):
    lower_and_iupac = dict(records[0], sequence="acgtRY" + records[0]["sequence"][6:])
    path = tmp_path / "valid.h5"
    assert write_xpresso_h5(path, [lower_and_iupac, *records[1:]], chunk_rows=2) == 7
    with h5py.File(path) as handle:
        assert sorted(handle) == ["data", "geneName", "label", "promoter"]
        assert handle["promoter"].dtype == bool and handle["promoter"].shape == (7, 20_000, 4)
        assert handle["data"].shape == (7, 8) and handle["data"].dtype.kind == "f"
        assert handle["label"].shape == (7,) and handle["label"].dtype.kind == "f"
        assert handle["geneName"].dtype.kind == "S"
        np.testing.assert_array_equal(handle["promoter"][1], hand_one_hot(records[1]["sequence"]))
    read = list(read_xpresso_h5(path, window=(0, 20_000)))
    assert read[0]["sequence"][:6] == "ACGTNN"
    assert [r["sequence"] for r in read[1:]] == [r["sequence"] for r in records[1:]]
    assert not list(tmp_path.glob("*.partial"))


def test_records_without_features_write_an_empty_data_key(tmp_path):
    records = xpresso_records(2, num_features=0)
    write_xpresso_h5(tmp_path / "test.h5", records)
    with h5py.File(tmp_path / "test.h5") as handle:
        assert handle["data"].shape == (2, 0)
    assert all("features" not in record for record in read_xpresso_h5(tmp_path / "test.h5"))


def test_decoding_maps_all_zero_to_n():
    one_hot = np.zeros((1, 5, 4), dtype=bool)
    one_hot[0, [0, 1, 2, 4], [0, 1, 2, 3]] = True
    assert one_hot_to_sequences(one_hot) == ["ACGNT"]


def read_error(path) -> str:
    with pytest.raises(DataError) as caught:
        list(read_xpresso_h5(path))
    return str(caught.value)


def test_missing_key_is_named(tmp_path, records):
    path = write_original_layout(tmp_path / "train.h5", records, geneName=None)
    assert "train.h5: key 'geneName' is missing" in read_error(path)


def test_wrong_shape_and_dtype_are_named(tmp_path, records):
    path = write_original_layout(tmp_path / "train.h5", records, promoter=np.zeros((7, 1000, 4), dtype=bool))
    assert "train.h5: key 'promoter' has shape (7, 1000, 4), expected (N, 20000, 4)" in read_error(path)
    path = write_original_layout(tmp_path / "valid.h5", records, label=np.array([b"x"] * 7))
    assert "valid.h5: key 'label' has shape (7,) dtype |S1, expected (N,) float" in read_error(path)


def test_row_that_is_not_one_hot_names_file_key_row_and_position(tmp_path, records):
    promoter = np.stack([hand_one_hot(record["sequence"]) for record in records])
    promoter[5, 5012] = [True, True, False, False]
    path = write_original_layout(tmp_path / "train.h5", records, promoter=promoter)
    message = read_error(path)
    assert message == "train.h5: key 'promoter' row 5 is not one-hot (position 5012 has 2 bases set)"


def test_non_binary_values_are_not_one_hot(tmp_path, records):
    promoter = np.stack([hand_one_hot(record["sequence"]) for record in records]).astype(np.float32)
    promoter[2, 4000, 1] = 0.5
    path = write_original_layout(tmp_path / "train.h5", records, promoter=promoter)
    assert "row 2 is not one-hot (position 4000 base C has value 0.5)" in read_error(path)


def test_nan_label_names_the_row(tmp_path, records):
    labels = np.array([record["label"] for record in records])
    labels[3] = np.nan
    path = write_original_layout(tmp_path / "test.h5", records, label=labels)
    assert read_error(path) == "test.h5: key 'label' row 3 is nan (not a finite number)"


def test_keys_of_different_lengths_are_an_error(tmp_path, records):
    path = write_original_layout(tmp_path / "train.h5", records, label=np.zeros(6))
    assert "train.h5: keys have different numbers of rows (promoter 7, data 7, label 6, geneName 7)" in read_error(path)


def test_not_hdf5_and_missing_files(tmp_path):
    (tmp_path / "train.h5").write_text("not hdf5")
    assert "train.h5: not a readable HDF5 file" in read_error(tmp_path / "train.h5")
    assert "nothing.h5: file not found" in read_error(tmp_path / "nothing.h5")
    with pytest.raises(DataError, match="valid.h5, test.h5 missing"):
        xpresso_split_files(tmp_path)


def test_writer_rejects_bad_records_and_leaves_no_file(tmp_path, records):
    short = dict(records[1], sequence="ACGT")
    with pytest.raises(DataError, match=r"train.h5: record 1 \(gene ENSG00000000001\) has 4 bases; .* needs 20,000"):
        write_xpresso_h5(tmp_path / "train.h5", [records[0], short])
    bad_letter = dict(records[0], sequence="ACGTJ" + records[0]["sequence"][5:])
    with pytest.raises(DataError, match=r"record 0 \(gene ENSG00000000000\) has letter 'J' at position 5"):
        write_xpresso_h5(tmp_path / "train.h5", [bad_letter])
    with pytest.raises(DataError, match="has label nan"):
        write_xpresso_h5(tmp_path / "train.h5", [dict(records[0], label=float("nan"))])
    assert list(tmp_path.iterdir()) == []
