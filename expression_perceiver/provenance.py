"""What every output of the package records of where it came from: the versions of the packages that computed it
and the git revision of this package's checkout, and what a revision's package code is (to tell revisions that
differ only in documents or results from revisions that differ in code)."""

import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = ("expression-perceiver", "torch", "transformers", "datasets", "accelerate", "huggingface-hub", "tokenizers")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# The code that computes every number: the package and the training entry point (recipes are recorded per run).
PACKAGE_CODE = ("expression_perceiver", "train.py")
CHECKOUT = Path(__file__).resolve().parents[1]


def git(*arguments: str) -> str | None:
    """The output of a git command in this package's checkout; None outside git or when the command fails."""
    try:
        return subprocess.run(
            ["git", *arguments], cwd=CHECKOUT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def source_revision() -> str | None:
    """The git commit of this package's checkout, marked when its package code differs from that commit (edits to
    documents or results do not change what computes); None outside git."""
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *PACKAGE_CODE)
    return f"{commit} (with uncommitted changes)" if dirty else commit


def package_code_state(revision: str) -> str | None:
    """A hash of the package code at a recorded `source_revision`: equal for two revisions exactly when their package
    code is the same. None when it cannot be known (uncommitted changes, a revision unknown to this checkout)."""
    if "uncommitted" in revision:
        return None
    trees = [git("rev-parse", "--verify", "--quiet", f"{revision}:{path}") for path in PACKAGE_CODE]
    return None if None in trees or "" in trees else "-".join(trees)


def package_code_changes(old: str, new: str) -> list[str]:
    """The package code files that differ between two revisions."""
    changed = git("diff", "--name-only", old, new, "--", *PACKAGE_CODE)
    return changed.splitlines() if changed else []
