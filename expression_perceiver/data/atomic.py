"""Files written whole or not at all: every output of the package (results, predictions, sidecars, annotated VCFs)
is written under a temporary name beside its target and moved into place (`os.replace`) once complete, so an
interrupted run leaves no file that looks finished. Folders: `dataset_dict.atomic_output_dir`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any


class AtomicFile:
    """A file written under a temporary name in the target's folder and renamed onto the target by `commit`;
    `discard` (or leaving a `with` block by an exception) removes it."""

    def __init__(self, path: str | os.PathLike, mode: str = "w"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        self.temporary = Path(name)
        self.handle: IO = os.fdopen(handle, mode, **({"encoding": "utf-8", "newline": ""} if "b" not in mode else {}))

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.temporary, 0o666 & ~current_umask())  # mkstemp makes it 0600; outputs get the user's umask
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.temporary.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is not None:
            self.discard()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, values: dict[str, Any]) -> None:
    """`values` as indented JSON (non-JSON values as strings), written atomically."""
    with AtomicFile(path) as target:
        target.handle.write(json.dumps(values, indent=2, default=str) + "\n")
        target.commit()


__all__ = ["AtomicFile", "write_json"]
