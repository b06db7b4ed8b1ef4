"""Read and write the Xpresso HDF5 format (`train.h5`, `valid.h5`, `test.h5`).

Each file holds `promoter` (N, 20000, 4) bool one-hot in A, C, G, T order with N bases all zero and the TSS at
index 10,000 on the gene's strand; `data` (N, 8) float mRNA half-life features; `label` (N,) float; and
`geneName` (N,) bytes. Reading decodes the one-hot rows to strings of A C G T N, a chunk of rows at a time, so a
file larger than memory streams through.
"""

from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..formats import (  # noqa: F401 (re-exported: the format's facts, read by the layers above)
    XPRESSO_BEST_WINDOW,
    XPRESSO_FEATURE_NAMES,
    XPRESSO_FULL_WINDOW,
    XPRESSO_TSS_INDEX,
    XPRESSO_WINDOW_LENGTH,
)
from .errors import DataError, file_label
from .tables import SequenceChecker, tokenizer_for

XPRESSO_SPLIT_FILES = {"train": "train.h5", "validation": "valid.h5", "test": "test.h5"}
XPRESSO_KEYS = ("promoter", "data", "label", "geneName")

# Rows decoded at once: 256 x 20,000 x 4 bool is 20 MB.
DEFAULT_CHUNK_ROWS = 256
# Letters of one-hot columns A, C, G, T, then N for an all-zero position.
ONE_HOT_LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


def _one_hot_by_token_id() -> np.ndarray:
    """One-hot row of every nucleotide token id: A C G T set one column, N and the rest none."""
    vocabulary = tokenizer_for("dna").vocabulary()
    table = np.zeros((256, 4), dtype=bool)
    for column, letter in enumerate("ACGT"):
        table[vocabulary[letter], column] = True
    return table


ONE_HOT_BY_TOKEN_ID = _one_hot_by_token_id()


def check_window(window: tuple[int, int], length: int = XPRESSO_WINDOW_LENGTH) -> tuple[int, int]:
    """Validates a (start, end) window of indices into a `length`-base input."""
    start, end = int(window[0]), int(window[1])
    if not 0 <= start < end <= length:
        raise ValueError(f"window {start}..{end} must satisfy 0 <= start < end <= {length:,}")
    return start, end


def one_hot_to_sequences(
    one_hot: np.ndarray, where: str = "promoter", first_row: int = 0, first_position: int = 0
) -> list[str]:
    """Decodes (rows, length, 4) one-hot A, C, G, T to strings; an all-zero position reads as N.

    Raises `DataError` naming `where`, the row and the position (counted from `first_row` and `first_position`) of
    the first entry that is not one-hot: a value other than 0/1, or more than one base set.
    """
    if one_hot.dtype != bool:
        not_binary = (one_hot != 0) & (one_hot != 1)
        if not_binary.any():
            row, position, column = np.argwhere(not_binary)[0]
            value = one_hot[row, position, column]
            raise DataError(
                f"{where} row {first_row + row} is not one-hot "
                f"(position {first_position + position} base {'ACGT'[column]} has value {value})"
            )
        one_hot = one_hot != 0
    bases_set = one_hot.sum(axis=-1, dtype=np.uint8)
    if (bases_set > 1).any():
        row, position = np.argwhere(bases_set > 1)[0]
        raise DataError(
            f"{where} row {first_row + row} is not one-hot "
            f"(position {first_position + position} has {bases_set[row, position]} bases set)"
        )
    index = one_hot.argmax(axis=-1)
    index[bases_set == 0] = 4
    letters = ONE_HOT_LETTERS[index]
    return [row.tobytes().decode("ascii") for row in letters]


def _decode_names(names: np.ndarray) -> list[str]:
    return [name.decode("utf-8") if isinstance(name, bytes) else str(name) for name in names.tolist()]


def _first_non_finite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    return int(bad[0]) if len(bad) else None


class XpressoH5File:
    """An opened, validated Xpresso HDF5 file. Labels, features and gene names are read at once (they are small);
    `promoter` is read a chunk of rows at a time by `iter_records`."""

    def __init__(self, path: str | PathLike):
        self.path = Path(path)
        self.name = file_label(path)
        try:
            self._file = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise DataError(f"{self.name}: file not found ({self.path})") from None
        except OSError as error:
            raise DataError(f"{self.name}: not a readable HDF5 file ({error})") from None
        try:
            self._validate()
        except BaseException:
            self._file.close()
            raise

    def _dataset(self, key: str) -> h5py.Dataset:
        if key not in self._file:
            raise DataError(f"{self.name}: key {key!r} is missing (found: {', '.join(sorted(self._file)) or 'none'})")
        dataset = self._file[key]
        if not isinstance(dataset, h5py.Dataset):
            raise DataError(f"{self.name}: key {key!r} is a group, not a dataset")
        return dataset

    def _validate(self) -> None:
        self.promoter = self._dataset("promoter")
        if self.promoter.ndim != 3 or self.promoter.shape[1:] != (XPRESSO_WINDOW_LENGTH, 4):
            raise DataError(
                f"{self.name}: key 'promoter' has shape {self.promoter.shape}, expected (N, {XPRESSO_WINDOW_LENGTH}, 4)"
            )
        if self.promoter.dtype.kind not in "biuf":
            raise DataError(f"{self.name}: key 'promoter' has dtype {self.promoter.dtype}, expected bool one-hot")
        self.num_rows = self.promoter.shape[0]

        label = self._dataset("label")
        if label.ndim != 1 or label.dtype.kind not in "iuf":
            raise DataError(
                f"{self.name}: key 'label' has shape {label.shape} dtype {label.dtype}, expected (N,) float"
            )
        features = self._dataset("data")
        if features.ndim != 2 or features.dtype.kind not in "iuf":
            raise DataError(
                f"{self.name}: key 'data' has shape {features.shape} dtype {features.dtype}, expected (N, 8) float"
            )
        names = self._dataset("geneName")
        if names.ndim != 1 or names.dtype.kind not in "SUO":
            raise DataError(
                f"{self.name}: key 'geneName' has shape {names.shape} dtype {names.dtype}, expected (N,) bytes"
            )
        lengths = {key: self._file[key].shape[0] for key in XPRESSO_KEYS}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{key} {length:,}" for key, length in lengths.items())
            raise DataError(f"{self.name}: keys have different numbers of rows ({described})")

        self.labels = label[()].astype(np.float64)
        bad_row = _first_non_finite(self.labels)
        if bad_row is not None:
            raise DataError(f"{self.name}: key 'label' row {bad_row} is {self.labels[bad_row]} (not a finite number)")
        self.features = features[()].astype(np.float64)
        bad_row = _first_non_finite(self.features)
        if bad_row is not None:
            raise DataError(f"{self.name}: key 'data' row {bad_row} has a value that is not a finite number")
        self.gene_ids = _decode_names(names[()])
        width = self.features.shape[1]
        self.feature_names = (
            list(XPRESSO_FEATURE_NAMES) if width == len(XPRESSO_FEATURE_NAMES) else [f"f{i}" for i in range(width)]
        )

    def iter_records(
        self, window: tuple[int, int] = XPRESSO_BEST_WINDOW, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[dict[str, Any]]:
        """Records `{"gene_id", "sequence", "label"[, "features"]}` with the promoter cut to `window`."""
        start, end = check_window(window)
        for first in range(0, self.num_rows, chunk_rows):
            last = min(first + chunk_rows, self.num_rows)
            one_hot = self.promoter[first:last, start:end, :]
            sequences = one_hot_to_sequences(one_hot, f"{self.name}: key 'promoter'", first, start)
            for row, sequence in zip(range(first, last), sequences, strict=True):
                record = {"gene_id": self.gene_ids[row], "sequence": sequence, "label": float(self.labels[row])}
                if self.features.shape[1]:
                    record["features"] = self.features[row].tolist()
                yield record

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "XpressoH5File":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_xpresso_h5(
    path: str | PathLike, window: tuple[int, int] = XPRESSO_BEST_WINDOW, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[dict[str, Any]]:
    """Streams the records of one Xpresso HDF5 file (see `XpressoH5File.iter_records`)."""
    with XpressoH5File(path) as xpresso_file:
        yield from xpresso_file.iter_records(window, chunk_rows)


def xpresso_split_files(folder: str | PathLike) -> dict[str, Path]:
    """The `train.h5`, `valid.h5` and `test.h5` of a folder by split name; all three must exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected one holding {', '.join(XPRESSO_SPLIT_FILES.values())})")
    paths = {split: folder / name for split, name in XPRESSO_SPLIT_FILES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise DataError(f"{folder}: {', '.join(missing)} missing (expected {', '.join(XPRESSO_SPLIT_FILES.values())})")
    return paths


class XpressoH5Writer:
    """Writes records to an Xpresso HDF5 file, a chunk of rows at a time.

    The file is written as `<name>.partial` and renamed when closed without error, so an interrupted write leaves
    no file that looks complete. `data` is always written; its width is the number of features (0 when the records
    carry none, which the original Xpresso code rejects loudly rather than misreading).
    """

    def __init__(self, path: str | PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.path = Path(path)
        self.name = file_label(path)
        self.chunk_rows = chunk_rows
        self._partial_path = self.path.with_name(self.path.name + ".partial")
        self._file = h5py.File(self._partial_path, "w")
        self._promoter = self._file.create_dataset(
            "promoter",
            shape=(0, XPRESSO_WINDOW_LENGTH, 4),
            maxshape=(None, XPRESSO_WINDOW_LENGTH, 4),
            dtype=bool,
            chunks=(16, XPRESSO_WINDOW_LENGTH, 4),
            compression="gzip",
            compression_opts=1,
        )
        self._checker = SequenceChecker("dna")
        self._pending: list[np.ndarray] = []
        self._labels: list[float] = []
        self._features: list[list[float]] = []
        self._gene_ids: list[str] = []
        self.num_features: int | None = None

    @property
    def num_rows(self) -> int:
        return len(self._gene_ids)

    def add(self, record: dict[str, Any]) -> None:
        row = self.num_rows
        gene_id = str(record["gene_id"])
        where = f"{self.name}: record {row} (gene {gene_id})"
        sequence = record["sequence"]
        if len(sequence) != XPRESSO_WINDOW_LENGTH:
            raise DataError(f"{where} has {len(sequence):,} bases; the Xpresso format needs {XPRESSO_WINDOW_LENGTH:,}")
        label = float(record["label"])
        if not np.isfinite(label):
            raise DataError(f"{where} has label {label} (not a finite number)")
        features = [float(value) for value in record.get("features") or []]
        if self.num_features is None:
            self.num_features = len(features)
        elif len(features) != self.num_features:
            raise DataError(f"{where} has {len(features)} features, earlier records {self.num_features}")
        self._pending.append(self._checker.token_ids(sequence, where))
        self._labels.append(label)
        self._features.append(features)
        self._gene_ids.append(gene_id)
        if len(self._pending) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        first = self._promoter.shape[0]
        one_hot = ONE_HOT_BY_TOKEN_ID[np.stack(self._pending)]
        self._promoter.resize(first + len(one_hot), axis=0)
        self._promoter[first:] = one_hot
        self._pending = []

    def close(self) -> None:
        """Writes the small keys and renames the finished file into place."""
        self._flush()
        width = self.num_features or 0
        self._file.create_dataset(
            "data", data=np.asarray(self._features, dtype=np.float64).reshape(self.num_rows, width)
        )
        self._file.create_dataset("label", data=np.asarray(self._labels, dtype=np.float64))
        names = np.array([name.encode("utf-8") for name in self._gene_ids], dtype=np.bytes_)
        self._file.create_dataset("geneName", data=names)
        self._file.close()
        self._partial_path.replace(self.path)

    def discard(self) -> None:
        self._file.close()
        self._partial_path.unlink(missing_ok=True)

    def __enter__(self) -> "XpressoH5Writer":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def write_xpresso_h5(
    path: str | PathLike, records: Iterable[dict[str, Any]], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> int:
    """Writes records with 20,000-base sequences as one Xpresso HDF5 file; returns the number of rows."""
    with XpressoH5Writer(path, chunk_rows) as writer:
        for record in records:
            writer.add(record)
    return writer.num_rows


__all__ = [
    "XPRESSO_BEST_WINDOW",
    "XPRESSO_FEATURE_NAMES",
    "XPRESSO_FULL_WINDOW",
    "XPRESSO_SPLIT_FILES",
    "XPRESSO_TSS_INDEX",
    "XPRESSO_WINDOW_LENGTH",
    "XpressoH5File",
    "XpressoH5Writer",
    "check_window",
    "one_hot_to_sequences",
    "read_xpresso_h5",
    "write_xpresso_h5",
    "xpresso_split_files",
]
