"""The README's cheap examples run as written, so that it cannot drift from the code: the model-building block, the
pipeline block (against `make demo`'s recipe trained for one step at a tiny size: its results have the shape and
names the README shows), and the study section's commands (the prepare command is the study file's; `study plan
--estimate` refuses the missing data at once with it, and `study plan` lists the committed results as done through
`--output-dir`). Training, `study run` and the estimate itself are not run."""

import ast
import re
import shlex
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
README = (REPOSITORY / "README.md").read_text()
EPD_STUDY = "studies/epd_human_masking.yaml"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def block_with(language: str, text: str) -> str:
    blocks = [block for block in code_blocks(language) if text in block]
    assert len(blocks) == 1, f"one {language} block of README.md should hold {text!r}, {len(blocks)} do"
    return blocks[0]


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def run_statements(source: str, namespace: dict) -> list[tuple[int, object]]:
    """Runs `source` statement by statement; (last line, value) of each expression statement."""
    values = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Expr):
            values.append((node.end_lineno, eval(compile(ast.Expression(node.value), "README.md", "eval"), namespace)))
        else:
            exec(compile(ast.Module([node], type_ignores=[]), "README.md", "exec"), namespace)
    return values


def test_the_model_block_runs_and_gives_the_shape_it_states():
    block = block_with("python", "from expression_perceiver import NucleotideTokenizer")
    shape = re.search(r"logits = .*# \((\d+), (\d+)\)", block)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert tuple(namespace["logits"].shape) == (int(shape[1]), int(shape[2]))
    assert torch.isfinite(namespace["logits"]).all()


def demo_checkpoint(folder: Path) -> Path:
    """`make demo`'s recipe (configs/demo.yaml: 8 per-gene features, one label) trained for one step at a tiny size on
    60 generated promoters: a checkpoint written by training, as the demo's is."""
    from expression_perceiver.training.run import main
    from tests.small_models import SMALL_OVERRIDES

    recipe = str(REPOSITORY / "configs" / "demo.yaml")
    main([recipe, "--config_overrides", SMALL_OVERRIDES, "--synthetic_num_genes", "60", "--max_steps", "1",
          "--output_dir", str(folder), "--report_to", "none", "--disable_tqdm", "true"])  # fmt: skip
    return folder


@pytest.mark.slow
def test_the_pipeline_block_runs_and_returns_what_it_shows(tmp_path):
    block = block_with("python", "regress = pipeline(")
    model = re.search(r'pipeline\(model=("[^"]+")', block)[1]
    assert model == '"outputs/demo"'  # `make demo`'s folder (configs/demo.yaml)
    assert "output_dir: outputs/demo" in (REPOSITORY / "configs" / "demo.yaml").read_text()
    source = block.replace(model, repr(str(demo_checkpoint(tmp_path / "demo"))))
    namespace: dict = {}
    results = run_statements(source, namespace)
    lines = source.splitlines()
    # A result shown as a comment line under its call: `# {'predictions': ...}`.
    shown = [
        (line, ast.literal_eval(lines[line].strip()[1:].strip()))
        for line, _ in results
        if line < len(lines) and lines[line].strip().startswith("# {")
    ]
    assert shown, "the block shows no result"
    for line, expected in shown:
        got = dict(results)[line]
        assert set(got) == set(expected) and list(got["predictions"]) == list(expected["predictions"])
        assert {key: got[key] for key in got if key != "predictions"} == {
            key: value for key, value in expected.items() if key != "predictions"
        }
        assert all(isinstance(value, float) for value in got["predictions"].values())
    names = list(shown[0][1]["predictions"])
    for _, value in results:  # every call gives the outputs under the names shown
        for item in value if isinstance(value, list) else [value]:
            assert list(item["predictions"]) == names
    batch = [value for _, value in results if isinstance(value, list)]
    assert len(batch) == 1 and len(batch[0]) == len(namespace["promoters"])
    assert results[-1][1]["units"] == "z-score"


@pytest.fixture
def study_root(tmp_path, monkeypatch):
    """A folder laid out as the repository's root (recipes, study files, committed results), without prepared data."""
    for name in ("configs", "studies", "docs"):
        (tmp_path / name).symlink_to(REPOSITORY / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_study_commands_prepare_the_studys_data_and_reach_the_committed_results(study_root, capsys):
    from expression_perceiver.cli import main
    from expression_perceiver.study.spec import dataset_command, load_study

    study = load_study(EPD_STUDY, check_data=False)
    shown = commands(block_with("bash", "expression-perceiver study plan"))
    prepare = next(command for command in shown if command.startswith("expression-perceiver prepare"))
    # The README's prepare command is the study file's, and writes the study's dataset_dir.
    assert prepare == dataset_command((REPOSITORY / EPD_STUDY).read_text(), study.dataset_dir)
    assert f"study report {study.output_dir}" in " ".join(shown)
    assert study.output_dir == "outputs/study_epd_human"

    # Without the data: one line with that command, at once, nothing written.
    estimate = next(command for command in shown if command.endswith(f"plan {EPD_STUDY} --estimate"))
    assert main(shlex.split(estimate)[1:]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"dataset_dir {study.dataset_dir} does not exist" in error
    assert prepare in error
    assert not (study_root / "outputs").exists()

    # Listing the cells needs no data: the committed results, through --output-dir, are done.
    committed = re.search(r"`(expression-perceiver study plan \S+ --output-dir docs/results/study_epd_human)`", README)
    assert main(shlex.split(committed[1])[1:]) == 0
    assert capsys.readouterr().out.splitlines()[-1].strip() == "45 done"
