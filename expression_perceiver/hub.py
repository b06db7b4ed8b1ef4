"""Where a model is: a local folder or a Hub repository (`org/name`, `org/name@revision`), resolved once for
training (a checkpoint to fine-tune) and inference alike; Hub snapshots are checked against what the Hub says each
file is before anything loads them."""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, snapshot_download

logger = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The id git (and the Hub) give a regular file: sha1 over 'blob <size>\\0' and the content."""
    content = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# How `huggingface_hub` names a cached blob: the Hub's ETag of the file, its sha256 for a large (LFS) file such as
# the weights, its git blob id for any other.
SHA256_NAME, GIT_BLOB_NAME = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{40}")


def check_cached_files(repo_id: str, folder: Path) -> int:
    """Checks each file of a cached snapshot against the name of the cache blob it links to (a sha256 or a git
    blob id, see SHA256_NAME): a file changed in the cache since it was downloaded is a ValueError naming it. Needs
    no Hub, so it holds offline; returns how many files were checked (a cache without links, or with other names,
    has nothing to check them against)."""
    checked = 0
    for path in sorted(folder.rglob("*")):
        blob = path.resolve()
        if not path.is_symlink() or not blob.is_file() or blob.parent.name != "blobs":
            continue
        if SHA256_NAME.fullmatch(blob.name):
            found, kind = file_sha256(blob), "sha256"
        elif GIT_BLOB_NAME.fullmatch(blob.name):
            found, kind = git_blob_sha1(blob), "git blob id"
        else:
            continue
        if found != blob.name:
            raise ValueError(
                f"{repo_id}: the cached {path.relative_to(folder).as_posix()} is not the file the Hub sent ({kind} "
                f"{found[:12]}... where the cache names it {blob.name[:12]}...): a corrupted cache; remove it with "
                f"`hf cache delete` and download it again"
            )
        checked += 1
    return checked


def verified_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """Downloads (or finds in the cache) a Hub repository and checks every file against the Hub's own record:
    sha256 for large (LFS) files such as the weights, the git blob id for the others. A file that differs (a
    corrupted download or cache) is a ValueError naming it. Offline, each cached file is checked against the name
    its cache blob was given from the Hub's record when it was downloaded (`check_cached_files`)."""
    folder = Path(snapshot_download(repo_id, revision=revision))
    if constants.HF_HUB_OFFLINE:
        checked = check_cached_files(repo_id, folder)
        logger.info("offline: %s used from the cache, %d files checked against their cache names", repo_id, checked)
        return folder
    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    for sibling in info.siblings or []:
        path = folder / sibling.rfilename
        if not path.is_file():
            continue
        if sibling.lfs is not None:
            expected, found, kind = sibling.lfs.sha256, file_sha256(path), "sha256"
        elif sibling.blob_id:
            expected, found, kind = sibling.blob_id, git_blob_sha1(path), "git blob id"
        else:
            continue
        if found != expected:
            raise ValueError(
                f"{repo_id}: the downloaded {sibling.rfilename} is not the Hub's ({kind} {found[:12]}... where the Hub "
                f"has {expected[:12]}...): a corrupted download or cache; remove it with `hf cache delete` and retry"
            )
    return folder


class ModelLocationError(ValueError):
    """A model location that names no usable folder or Hub repository. The message says what is wrong without the
    location itself: callers name it as their user gave it (`model X: ...`, `--model_name_or_path X: ...`)."""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@contextmanager
def hub_progress_bars(shown: bool):
    """Download progress bars of `huggingface_hub` only where someone watches (stderr is a terminal)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    disabled = are_progress_bars_disabled()
    if not shown:
        disable_progress_bars()
    try:
        yield
    finally:
        if not disabled and not shown:
            enable_progress_bars()


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: `spec` as given, the local `folder` read, and for a Hub model its repository, the
    revision asked for (None: the default branch) and the commit it resolved to."""

    spec: str
    folder: Path
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None

    def describe(self) -> dict[str, Any]:
        if self.repo_id is None:
            return {"model": self.spec, "path": str(self.folder.resolve())}
        return {
            "model": self.spec,
            "repo_id": self.repo_id,
            "revision": self.revision or "main",
            "commit": self.commit,
        }


def looks_local(spec: str) -> bool:
    """A path (absolute, `.`/`~`-relative, or existing) rather than a Hub id."""
    return Path(spec).expanduser().is_absolute() or spec.startswith((".", "~")) or Path(spec).exists()


def resolve_model(spec: str) -> ModelSource:
    """The local folder of a model folder or Hub id (`org/name`, `org/name@revision`), downloading a Hub model into
    the Hugging Face cache, or reading it from there offline."""
    spec = str(spec)
    if looks_local(spec):
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise ModelLocationError("no such folder")
        return ModelSource(spec, folder)
    repo_id, _, revision = spec.partition("@")
    if not repo_id or (revision == "" and spec.endswith("@")):
        raise ModelLocationError("expected a folder or a Hub id such as org/name or org/name@revision")
    try:
        with hub_progress_bars(sys.stderr.isatty()):
            folder = verified_snapshot(repo_id, revision or None)
    except ValueError as error:
        raise ModelLocationError(first_line(error)) from None
    except Exception as error:  # the Hub client's own errors: unknown repository or revision, network, not cached
        offline = ""
        if constants.HF_HUB_OFFLINE:
            offline = " (offline: HF_HUB_OFFLINE is set and the model is not in the cache)"
        raise ModelLocationError(f"cannot be fetched from the Hub{offline} ({first_line(error)})") from None
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else None
    return ModelSource(spec, folder, repo_id, revision or None, commit)
