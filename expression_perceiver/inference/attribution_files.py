"""Attribution files: one `.npz` per `attribute` run, streamed to disk with bounded memory and read back without
loading what is not asked for.

Layout (every array a member `<name>.npy` of an uncompressed zip, so `numpy.load(path)` reads it as any `.npz`):

- `one_hot` (N, L, letters) float32 and, per method, `attributions` (N, L, letters) float32 and `hypothetical`
  (N, L, letters) float32: positions x letters, the layout TF-MoDISco-lite's `TFMoDISco(one_hot=...,
  hypothetical_contribs=...)` reads (its command line reads (N, letters, L): `array.transpose(0, 2, 1)`);
  `attributions_std` (N, L, letters) for ensembles (spread over the members, ddof=1);
- `cross_attention` (N, layers, heads, L) float32: each head's attention weights over the positions, averaged over
  the latents;
- sequences of several lengths (proteins) are stored flat instead: (total positions, letters) and (layers, heads,
  total positions) ... with `offsets` (N + 1,) marking each sequence's rows; `lengths` (N,) is always there;
- `ids` (N,) str, `prediction` (N,) and, for methods with references, `reference_prediction` (N,) and
  `completeness_error` (N,): |sum of attributions - (prediction - reference prediction)|;
- `feature_attributions` (N, features) and `feature_names` for models that read per-gene features;
- `positions` (L,) int64: each index's position relative to the TSS (0 at the TSS, negative upstream) or from the
  sequence's start (0 = the first residue), as `metadata["origin"]` says (`tss` or `start`);
- `metadata`: a JSON string (method, letters, origin, output and units, models and their weight hashes, references,
  steps, format version).

`AttributionWriter` takes rows chunk by chunk into one temporary `.npy` per member beside the output and zips them
in place at `commit` (nothing is left behind by `discard`); `AttributionFile` reads the metadata at once and each
member on demand, memory-mapped.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import AtomicFile
from ..data.errors import DataError
from .writers import NPY_HEADER_SIZE, npy_header

FORMAT_VERSION = 1
# Members with one row per sequence position (stored (N, L, ...) or flat with `offsets`).
POSITION_MEMBERS = ("one_hot", "attributions", "hypothetical", "attributions_std")
POSITION_LAST_MEMBERS = ("cross_attention",)  # positions on the last axis


class StreamedArray:
    """Rows of one trailing shape appended to a temporary `.npy` whose header is written once they are counted."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.file = AtomicFile(path, "wb")
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self.row_shape: tuple[int, ...] | None = None
        self.file.handle.write(b"\0" * NPY_HEADER_SIZE)

    def add(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if self.row_shape is None:
            self.row_shape = values.shape[1:]
        elif values.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {values.shape[1:]} after rows of shape {self.row_shape}")
        self.file.handle.write(values.tobytes())
        self.rows += len(values)

    def finish(self, shape: tuple[int, ...] | None = None) -> Path:
        """Writes the header (`shape`, or the rows counted) and closes the file; returns where it is."""
        shape = shape or (self.rows, *(self.row_shape or ()))
        self.file.handle.seek(0)
        self.file.handle.write(npy_header(shape, self.dtype))
        self.file.handle.flush()
        self.file.handle.close()
        return self.file.temporary

    def discard(self) -> None:
        self.file.discard()


class AttributionWriter:
    """An attribution file written a chunk of sequences at a time (`add`), then `commit`ted whole or `discard`ed."""

    def __init__(self, path: Path, metadata: dict[str, Any], constants: dict[str, np.ndarray] | None = None):
        self.path = path
        self.metadata = metadata
        self.constants = dict(constants or {})  # arrays of the whole file (`positions`, `feature_names`)
        self.streams: dict[str, StreamedArray] = {}
        self.ids: list[str] = []
        self.lengths: list[int] = []
        self.per_sequence: dict[str, list[np.ndarray]] = {}

    def stream(self, name: str, dtype: str = "<f4") -> StreamedArray:
        if name not in self.streams:
            self.streams[name] = StreamedArray(self.path.with_name(f"{self.path.name}.{name}"), np.dtype(dtype))
        return self.streams[name]

    def add(self, ids: list[str], lengths: list[int], positions: dict[str, list[np.ndarray]], rows: dict) -> None:
        """One chunk: `positions[name][i]` the i-th sequence's (length, ...) array (or (..., length) for
        cross-attention), `rows[name]` (chunk, ...) arrays of one row per sequence (predictions, completeness)."""
        self.ids += ids
        self.lengths += [int(length) for length in lengths]
        for name, arrays in positions.items():
            stream = self.stream(name)
            for array in arrays:
                stream.add(np.moveaxis(array, -1, 0) if name in POSITION_LAST_MEMBERS else array)
        for name, values in rows.items():
            self.per_sequence.setdefault(name, []).append(np.asarray(values))

    def commit(self) -> None:
        lengths = np.asarray(self.lengths, dtype=np.int64)
        uniform = len(set(self.lengths)) <= 1
        length = int(lengths[0]) if len(lengths) else 0
        members: dict[str, Path] = {}
        if "positions" in self.constants:  # one per index of the longest sequence written
            self.constants["positions"] = self.constants["positions"][: int(lengths.max(initial=0))]
        try:
            for name, stream in self.streams.items():
                row_shape = stream.row_shape or ()
                if uniform:  # cross-attention too: (N, L, layers, heads), positions moved last when read
                    shape = (len(lengths), length, *row_shape)
                else:
                    shape = (stream.rows, *row_shape)
                members[name] = stream.finish(shape)
            with AtomicFile(self.path, "wb") as target:
                with zipfile.ZipFile(target.handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    for name, file in members.items():
                        archive.write(file, f"{name}.npy")
                    small = {
                        "ids": np.asarray(self.ids, dtype=str),
                        "lengths": lengths,
                        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                        **{name: np.concatenate(parts) for name, parts in self.per_sequence.items()},
                        **self.constants,
                        "metadata": np.asarray(
                            json.dumps({**self.metadata, "format_version": FORMAT_VERSION, "uniform": uniform})
                        ),
                    }
                    for name, array in small.items():
                        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
                target.commit()
        finally:
            for file in members.values():
                file.unlink(missing_ok=True)
            for stream in self.streams.values():
                stream.discard()

    def discard(self) -> None:
        for stream in self.streams.values():
            stream.discard()


def stored_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """A member of an uncompressed `.npz`, memory-mapped (a compressed one is read whole)."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        with archive.open(info) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        header = handle.tell()
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length + header
    if int(np.prod(shape)) == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape, order="F" if fortran else "C")


@dataclass
class AttributionFile:
    """An attribution file, read: its metadata, ids and lengths at once, the arrays on demand (memory-mapped)."""

    path: Path
    metadata: dict[str, Any]
    ids: list[str]
    lengths: np.ndarray
    offsets: np.ndarray
    members: tuple[str, ...]

    @classmethod
    def open(cls, path: str | Path) -> AttributionFile:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such attribution file")
        try:
            with zipfile.ZipFile(path) as archive:
                names = tuple(name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy"))
                if "metadata" not in names or "ids" not in names:
                    raise DataError(f"{path}: not an attribution file written by `attribute` (no metadata or ids)")
                with archive.open("metadata.npy") as handle:
                    metadata = json.loads(str(np.lib.format.read_array(handle, allow_pickle=False)))
                with archive.open("ids.npy") as handle:
                    ids = [str(value) for value in np.lib.format.read_array(handle, allow_pickle=False)]
                with archive.open("lengths.npy") as handle:
                    lengths = np.lib.format.read_array(handle, allow_pickle=False)
                with archive.open("offsets.npy") as handle:
                    offsets = np.lib.format.read_array(handle, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, KeyError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not a readable attribution file ({error})") from None
        if metadata.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path}: attribution file format {metadata.get('format_version')}, expected {FORMAT_VERSION}"
            )
        return cls(path, metadata, ids, lengths, offsets, names)

    @property
    def method(self) -> str:
        return self.metadata["method"]

    @property
    def letters(self) -> str:
        return self.metadata["letters"]

    @property
    def origin(self) -> str:
        return self.metadata["origin"]

    @property
    def uniform(self) -> bool:
        """Whether every sequence has the same length (arrays (N, L, ...)) rather than flat with `offsets`."""
        return bool(self.metadata["uniform"])

    def __len__(self) -> int:
        return len(self.ids)

    def has(self, name: str) -> bool:
        return name in self.members

    def array(self, name: str) -> np.ndarray:
        """A member as stored (memory-mapped where possible); cross-attention with the positions last."""
        if name not in self.members:
            raise DataError(f"{self.path}: holds no {name!r} (it holds {', '.join(self.members)})")
        with zipfile.ZipFile(self.path) as archive:
            values = stored_member(self.path, archive, name)
        if name in POSITION_LAST_MEMBERS:
            values = np.moveaxis(values, 1 if self.uniform else 0, -1)
        return values

    def sequences(self, name: str) -> Iterator[np.ndarray]:
        """Each sequence's rows of a per-position member: (length, letters), or (layers, heads, length)."""
        values = self.array(name)
        for index, length in enumerate(self.lengths):
            if self.uniform:
                yield values[index]
            else:
                start = int(self.offsets[index])
                yield (
                    values[..., start : start + int(length)]
                    if name in POSITION_LAST_MEMBERS
                    else values[start : start + int(length)]
                )

    def positions(self) -> np.ndarray:
        """Each index's position relative to the origin (TSS or start), for the longest sequence."""
        return self.array("positions") if self.has("positions") else np.arange(int(self.lengths.max(initial=0)))

    def contributions(self) -> Iterator[np.ndarray]:
        """Each sequence's per-position contribution: the attribution of the letter present (attributions summed
        over the letters, which for methods against a reference also counts what the absent letters' references
        took away)."""
        for attributions in self.sequences("attributions"):
            yield np.asarray(attributions, dtype=np.float64).sum(-1)


__all__ = ["AttributionFile", "AttributionWriter", "FORMAT_VERSION"]
