"""Every package the code imports is declared in pyproject.toml, so that a fresh install can run every command."""

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

REPOSITORY = Path(__file__).resolve().parents[1]
# Import names that differ from the distribution's name.
DISTRIBUTION_OF = {
    "Bio": "biopython",
    "yaml": "pyyaml",
    "huggingface_hub": "huggingface-hub",
    "modiscolite": "modisco-lite",
}


def imported_top_level_modules(folder: Path) -> dict[str, Path]:
    found = {}
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def declared_distributions(extra: str | None = None) -> set[str]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def undeclared(folder: Path, declared: set[str]) -> dict[str, str]:
    return {
        module: str(path.relative_to(REPOSITORY))
        for module, path in imported_top_level_modules(folder).items()
        if module not in sys.stdlib_module_names
        and module != "expression_perceiver"
        and DISTRIBUTION_OF.get(module, module).lower().replace("_", "-") not in declared
    }


def test_the_package_imports_only_what_it_declares():
    assert undeclared(REPOSITORY / "expression_perceiver", declared_distributions()) == {}


def test_the_tests_import_only_what_the_dev_extra_declares():
    declared = declared_distributions("dev") | {"tests"}
    assert undeclared(REPOSITORY / "tests", declared) == {}
