"""What a run records of its code: revisions that differ in documents only hold the same package code."""

import shutil
import subprocess

import pytest

from expression_perceiver import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def commit(repo, message: str) -> str:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for key, value in {"user.email": "dev@example.org", "user.name": "dev"}.items():
        subprocess.run(["git", "config", key, value], cwd=tmp_path, check=True)
    monkeypatch.setattr(provenance, "CHECKOUT", tmp_path)
    (tmp_path / "expression_perceiver").mkdir()
    (tmp_path / "expression_perceiver" / "model.py").write_text("WIDTH = 64\n")
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "README.md").write_text("results: none yet\n")
    return tmp_path


def test_package_code_state_tells_code_changes_from_document_changes(checkout):
    first = commit(checkout, "model")
    (checkout / "README.md").write_text("results: r2 0.35\n")
    documents = commit(checkout, "results")
    (checkout / "expression_perceiver" / "model.py").write_text("WIDTH = 128\n")
    code = commit(checkout, "wider")
    assert provenance.package_code_state(first) == provenance.package_code_state(documents)
    assert provenance.package_code_state(code) != provenance.package_code_state(first)
    assert provenance.package_code_changes(first, code) == ["expression_perceiver/model.py"]
    assert provenance.package_code_changes(first, documents) == []
    assert provenance.package_code_state("0" * 40) is None
    assert provenance.package_code_state(f"{code} (with uncommitted changes)") is None


def test_source_revision_is_marked_only_by_uncommitted_package_code(checkout):
    head = commit(checkout, "model")
    (checkout / "README.md").write_text("edited while a run trains\n")
    assert provenance.source_revision() == head
    (checkout / "train.py").write_text("print('changed')\n")
    assert provenance.source_revision() == f"{head} (with uncommitted changes)"
