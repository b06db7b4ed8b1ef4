"""Writing predictions and embeddings: every file is written under a temporary name beside its target and moved into
place (`os.replace`) only once complete, so an interrupted run leaves no file that looks finished, and an existing
one is replaced only when asked.

- predictions: a TSV, one row per input in input order (`prediction_columns` names the columns);
- embeddings: `.npy` (float32, (N, width) or (N, latents, width)) plus `<name>.ids.txt`, one id per line, or
  `.parquet` with an `id` column and an `embedding` column (a list of floats; a list of lists for latents);
- beside either, `<output>.json`: models, resolved revisions, weight hashes, versions, device, counts.

`PredictionFile` and `EmbeddingFile` take the chunks a `task.InferenceRun` streams (each a `Chunk`: examples and
their values in input order).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.atomic import AtomicFile

if TYPE_CHECKING:
    from .task import Chunk


def check_writable(paths: Sequence[Path], overwrite: bool) -> None:
    """Fails before any work when an output exists and is not to be replaced."""
    for path in paths:
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder, not a file to write")


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def prediction_columns(
    output_names: Sequence[str], units: str, members: int, member_columns: bool, reads_features: bool
) -> list[str]:
    """Column names after `id`: `predicted_<output>` in the labels' units, `predicted_<output>_zscore` in z-scores;
    for an ensemble `..._mean` and `..._std` per output, then `n_models`; with `member_columns`, `..._model<i>`
    per member; `features_filled` (1 where the features were missing and filled) for models that read features."""
    stems = [f"predicted_{name}" + ("_zscore" if units == "z-score" else "") for name in output_names]
    if members == 1:
        columns = list(stems)
    else:
        columns = [f"{stem}_{statistic}" for stem in stems for statistic in ("mean", "std")] + ["n_models"]
        if member_columns:
            columns += [f"{stem}_model{index + 1}" for stem in stems for index in range(members)]
    if reads_features:
        columns.append("features_filled")
    return columns


def prediction_matrix(values: np.ndarray, member_columns: bool) -> np.ndarray:
    """The numbers of `prediction_columns` (features_filled aside) from predictions `values` (rows, members,
    outputs). The ensemble's standard deviation is the sample one (ddof=1) over the members."""
    rows, members, outputs = values.shape
    if members == 1:
        return values[:, 0, :]
    mean, std = values.mean(axis=1), values.std(axis=1, ddof=1)
    parts = [np.stack([mean, std], axis=-1).reshape(rows, outputs * 2), np.full((rows, 1), float(members))]
    if member_columns:
        parts.append(values.transpose(0, 2, 1).reshape(rows, outputs * members))
    return np.concatenate(parts, axis=1)


def prediction_rows(
    ids: Sequence[str], values: np.ndarray, member_columns: bool, filled: Sequence[bool] | None
) -> list[str]:
    """TSV lines (id, then `prediction_columns`) of predictions `values` (rows, members, outputs); numbers with 8
    significant digits."""
    table = prediction_matrix(values, member_columns)
    lines = []
    for row, record_id in enumerate(ids):
        fields = [record_id, *(f"{value:.8g}" for value in table[row])]
        if filled is not None:
            fields.append("1" if filled[row] else "0")
        lines.append("\t".join(fields) + "\n")
    return lines


class PredictionFile:
    """Chunks of predictions into a TSV, atomically: the header, then one line per example in input order."""

    def __init__(self, path: Path, columns: Sequence[str], member_columns: bool, reads_features: bool):
        self.file = AtomicFile(path)
        self.member_columns = member_columns
        self.reads_features = reads_features
        self.rows = 0
        self.file.handle.write("\t".join(["id", *columns]) + "\n")

    def add(self, chunk: Chunk) -> None:
        ids = [check_id(example.id) for example in chunk.examples]
        filled = [example.features_filled for example in chunk.examples] if self.reads_features else None
        self.file.handle.writelines(prediction_rows(ids, chunk.values, self.member_columns, filled))
        self.rows += len(ids)

    def commit(self) -> None:
        self.file.commit()

    def discard(self) -> None:
        self.file.discard()


def check_id(record_id: str) -> str:
    """An id as a TSV field: tabs and line breaks would break the table's rows."""
    if any(character in record_id for character in "\t\r\n"):
        raise ValueError(f"id {record_id!r} holds a tab or line break; it cannot be written as a TSV field")
    return record_id


# A .npy header of this size fits any shape of a few dimensions; it is written first with the rows unknown and
# rewritten in place, with the same size, once they are counted.
NPY_HEADER_SIZE = 128
NPY_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 `.npy` header of exactly NPY_HEADER_SIZE bytes (a multiple of 64, as numpy aligns them)."""
    description = f"{{'descr': {np.dtype(dtype).str!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    length = NPY_HEADER_SIZE - len(NPY_MAGIC) - 2
    if len(description) + 1 > length:
        raise ValueError(f"shape {shape} does not fit a {NPY_HEADER_SIZE}-byte .npy header")
    return NPY_MAGIC + struct.pack("<H", length) + (description.ljust(length - 1) + "\n").encode("latin1")


class NpyWriter:
    """Streams float32 rows of one shape into a `.npy` file and their ids into `<name>.ids.txt`, atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.ids_path = ids_path(path)
        self.array = AtomicFile(path, "wb")
        self.ids = AtomicFile(self.ids_path)
        self.row_shape: tuple[int, ...] | None = None
        self.rows = 0
        self.array.handle.write(b"\0" * NPY_HEADER_SIZE)  # the header goes here once the rows are counted

    def add(self, ids: Sequence[str], values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype="<f4")
        if self.row_shape is None:
            self.row_shape = values.shape[1:]
        self.array.handle.write(values.tobytes())
        self.ids.handle.writelines(check_id(record_id) + "\n" for record_id in ids)
        self.rows += len(values)

    def commit(self) -> None:
        self.array.handle.seek(0)
        self.array.handle.write(npy_header((self.rows, *(self.row_shape or ())), np.dtype("<f4")))
        self.array.commit()
        self.ids.commit()

    def discard(self) -> None:
        self.array.discard()
        self.ids.discard()


def ids_path(path: Path) -> Path:
    return path.with_name(path.stem + ".ids.txt")


class ParquetWriter:
    """Streams rows into a Parquet file with columns `id` and `embedding`, atomically."""

    def __init__(self, path: Path):
        self.path = path
        self.file = AtomicFile(path, "wb")
        self.writer = None
        self.rows = 0

    def add(self, ids: Sequence[str], values: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = np.ascontiguousarray(values, dtype=np.float32)
        column = pa.array(values.reshape(-1))
        for width in reversed(values.shape[1:]):
            column = pa.FixedSizeListArray.from_arrays(column, width)
        table = pa.table({"id": pa.array(list(ids), pa.string()), "embedding": column})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.file.handle, table.schema)
        self.writer.write_table(table)
        self.rows += len(values)

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.file.commit()

    def discard(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:
                pass
        self.file.discard()


EMBEDDING_FORMATS = (".npy", ".parquet")


def embedding_writer(path: Path) -> NpyWriter | ParquetWriter:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyWriter(path)
    if suffix == ".parquet":
        return ParquetWriter(path)
    raise ValueError(f"{path.name}: write embeddings to a .npy or .parquet file")


class EmbeddingFile:
    """Chunks of embeddings into a `.npy` (with its ids) or `.parquet` file, atomically."""

    def __init__(self, path: Path):
        self.file = embedding_writer(path)
        self.row_shape: tuple[int, ...] | None = None

    @property
    def rows(self) -> int:
        return self.file.rows

    def add(self, chunk: Chunk) -> None:
        self.file.add([example.id for example in chunk.examples], chunk.values)
        self.row_shape = chunk.values.shape[1:]

    def commit(self) -> None:
        self.file.commit()

    def discard(self) -> None:
        self.file.discard()


def embedding_outputs(path: Path) -> list[Path]:
    """Every file an embedding output writes."""
    paths = [path, sidecar_path(path)]
    if path.suffix.lower() == ".npy":
        paths.append(ids_path(path))
    return paths


__all__ = [
    "EMBEDDING_FORMATS",
    "EmbeddingFile",
    "NpyWriter",
    "ParquetWriter",
    "PredictionFile",
    "check_id",
    "check_writable",
    "embedding_outputs",
    "embedding_writer",
    "prediction_columns",
    "prediction_matrix",
    "prediction_rows",
    "sidecar_path",
]
