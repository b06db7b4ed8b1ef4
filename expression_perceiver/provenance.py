"""What every output of the package records of where it came from: the versions of the packages that computed it
and the git revision of this package's checkout."""

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


def source_revision() -> str | None:
    """The git commit of this package's checkout, marked when the working tree differs from it; None outside git."""
    checkout = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit} (with uncommitted changes)" if dirty else commit
