"""Checkpoints fetched from the Hub, checked against what the Hub says each file is before anything loads them."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

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


def verified_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """Downloads (or finds in the cache) a Hub repository and checks every file against the Hub's own record:
    sha256 for large (LFS) files such as the weights, the git blob id for the others. A file that differs (a
    corrupted download or cache) is a ValueError naming it; offline, the cached files are used as they are."""
    folder = Path(snapshot_download(repo_id, revision=revision))
    if constants.HF_HUB_OFFLINE:
        logger.info("offline: %s used from the cache without checking it against the Hub", repo_id)
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
