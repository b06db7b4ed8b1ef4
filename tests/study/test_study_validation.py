"""A study file is checked whole at `study plan` and `study run`, before any cell starts: every field, and every
cell's full argument list parsed as its run will parse it. Each problem is one line naming the study file and the
field, exit code 2, and nothing is written; a run whose cells fail says so on stderr."""

import sys
from pathlib import Path

import pytest
import yaml

from expression_perceiver.cli import main
from expression_perceiver.study import cells
from expression_perceiver.study.cells import REFUSAL_PREFIX, failure_line
from expression_perceiver.study.spec import load_study

TABLE = [{"name": "none"}, {"name": "span", "strategy": "random_span", "mask_length": 3}]


def write(tmp_path: Path, **changes) -> Path:
    values = {"name": "grid", "output_dir": str(tmp_path / "out"), "seeds": 2, "table": TABLE, **changes}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def refused(tmp_path: Path, capsys, path: Path) -> str:
    """The one line `study plan` and `study run` both answer with (exit 2), nothing written."""
    lines = []
    for command in ("plan", "run"):
        assert main(["study", command, str(path)]) == 2, command
        printed = capsys.readouterr()
        assert len(printed.err.splitlines()) == 1, printed.err
        assert "Traceback" not in printed.err and printed.out == ""
        lines.append(printed.err.strip())
    assert lines[0] == lines[1]
    assert not (tmp_path / "out").exists()  # no study.yaml, no cell folder
    prefix = f"expression-perceiver study: error: study file {path}: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


@pytest.mark.parametrize(
    "changes, message",
    [
        # seeds: whole numbers a run accepts (NumPy's 0..2**32-1), distinct
        (
            {"seeds": [0, -1]},
            "seed -1 is out of range: a run's seed is a whole number in 0..4294967295 (what Python, NumPy and torch "
            "accept)",
        ),
        ({"seeds": [2**32]}, "seed 4294967296 is out of range"),
        ({"seeds": -3}, "seeds must be a count >= 1 (at most 10,000) or a list, got -3"),
        ({"seeds": 10**9}, "seeds must be a count >= 1 (at most 10,000) or a list, got 1000000000"),
        ({"seeds": [0, 1.5]}, "seeds must be a count >= 1 or a non-empty list of integers, got 1.5 in [0, 1.5]"),
        ({"seeds": "3"}, "seeds must be a count >= 1 or a non-empty list of integers, got '3'"),
        # mask sizes: whole positions or fractions, never rounded
        (
            {"table": [{"name": "none"}, {"name": "x", "strategy": "first", "mask_length": 3.7}]},
            "table[1] (x): mask_length must be a whole number of positions >= 0, got 3.7",
        ),
        (
            {"table": [{"name": "none"}, {"name": "x", "strategy": "first", "mask_length": True}]},
            "table[1] (x): mask_length must be a whole number of positions >= 0, got True",
        ),
        (
            {"table": [{"name": "none"}, {"name": "x", "strategy": "first", "mask_length": None}]},
            "table[1] (x): mask_length must be a whole number of positions >= 0, got None",
        ),
        (
            {"figure": [{"strategy": "last", "mode": "drop", "mask_fraction": ["half"]}]},
            "figure[0]: mask_fraction must lie in [0, 1] (0: no masking), got 'half'",
        ),
        ({"figure": [{"strategy": "last", "mask_length": []}]}, "figure[0]: mask_length lists no size"),
        (
            {"figure": [{"strategy": "last", "mask_length": [1]}, {"strategy": "last", "mask_length": [2]}]},
            "figure[1]: repeats figure[0]'s curve last (mask); list its sizes once",
        ),
        ({"table": []}, "table lists no row (Table 1 needs at least its reference row)"),
        ({"table": [{"name": "none", "strategy": 3}]}, "table[0] (none): strategy must be a name, got 3"),
        # fields of the wrong kind
        ({"name": {"a": 1}}, "name must be a text, got {'a': 1}"),
        ({"dataset_dir": ["a", "b"]}, "dataset_dir must be a text, got ['a', 'b']"),
        ({"recipes": ["recipe.txt"]}, "recipes: 'recipe.txt' is not a recipe file (.yaml, .yml, .json)"),
        ({"slurm": {"time_min": -5}}, "slurm: time_min must be a whole number >= 1, got -5"),
        ({"slurm": {"qos": "low"}}, "slurm: unknown option(s) qos"),
        (
            {"slurm": {"extra_sbatch": ["--qos"]}},
            "slurm: extra_sbatch line '--qos' is not of the form --name=value",
        ),
        # overrides: train flags with values the training accepts
        (
            {"overrides": {"learning_rat": 0.1}},
            "overrides: learning_rat is not a train flag; did you mean learning_rate?",
        ),
        (
            {"overrides": {"learning_rate": "fast"}},
            "overrides: learning_rate: argument --learning_rate/--learning-rate: invalid float value: 'fast'",
        ),
        (
            {"overrides": {"num_train_epochs": 0}},
            "overrides: num_train_epochs: --num_train_epochs must be positive (got 0)",
        ),
        ({"overrides": {"lr_scheduler_type": "sideways"}}, "overrides: lr_scheduler_type: "),
        (
            {"overrides": {"learning_rate": None}},
            "overrides: learning_rate must be a value or a list of values, got None",
        ),
        ({"overrides": {"run_name": "--help"}}, "overrides: run_name has value '--help', which reads as a flag"),
        ({"overrides": {"seed": 3}}, "overrides may not set seed (the study sets it per cell)"),
        ({"overrides": {"resume_from_checkpoint": "false"}}, "overrides may not set resume_from_checkpoint"),
        ({"overrides": {"dataset_dir": "elsewhere"}}, "overrides may not set dataset_dir"),
        ({"overrides": [1, 2]}, "overrides must be a mapping of train.py flags to values, got [1, 2]"),
        # a masking flag of the overrides that a row's masking cannot take: more spans than one suit random_span only,
        # and the none row's cells would fail in their runs
        (
            {"overrides": {"mask_num_spans": 2}},
            "table[0] (none): cell none/seed0: num_spans > 1 needs strategy='random_span', got strategy='none' (the "
            "recipes or overrides set mask_num_spans)",
        ),
    ],
)
def test_a_bad_field_is_one_line_naming_it_at_plan_and_run(tmp_path, capsys, changes, message):
    assert message in refused(tmp_path, capsys, write(tmp_path, **changes))


def test_recipe_values_are_checked_with_the_recipe_named(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: fast\n")
    assert refused(tmp_path, capsys, write(tmp_path, recipes=[str(recipe)])) == (
        "recipes: argument --learning_rate/--learning-rate: invalid float value: 'fast' (`expression-perceiver "
        "train --help` lists the arguments)"
    )
    recipe.write_text("learning_rat: 0.1\n")
    assert refused(tmp_path, capsys, write(tmp_path, recipes=[str(recipe)])) == (
        f"recipes: recipe {recipe}: unknown argument learning_rat; did you mean learning_rate?"
    )
    recipe.write_text("learning_rate: [0.1\n")
    assert refused(tmp_path, capsys, write(tmp_path, recipes=[str(recipe)])).startswith(
        f"recipes: recipe {recipe}: not valid YAML"
    )


def test_a_recipes_mask_length_that_a_fraction_row_cannot_take_is_named_at_once(tmp_path, capsys):
    # A recipe written for single runs (mask_length 3) under a study that sizes spans by fractions: each fraction
    # cell would get both, and fail in its run.
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("mask_strategy: random_span\nmask_length: 3\n")
    table = [{"name": "none"}, {"name": "5%", "strategy": "random_span", "mask_fraction": 0.05}]
    assert refused(tmp_path, capsys, write(tmp_path, recipes=[str(recipe)], table=table)) == (
        "table[1] (5%): cell random_span-mask-f0.05/seed0: give mask_length or mask_fraction, not both (the recipes "
        "or overrides set mask_strategy, mask_length)"
    )


def test_a_negative_seed_no_longer_reaches_the_cells(tmp_path, capsys):
    """Before, the file check passed it and each cell failed in its run (exit 1, nothing on stderr, cell folders
    left behind)."""
    message = refused(tmp_path, capsys, write(tmp_path, seeds=[-1]))
    assert message.startswith("seed -1 is out of range")


def test_the_commands_counts_are_checked_before_anything_is_read(tmp_path, capsys):
    path = write(tmp_path)
    for argv, message in [
        (["study", "plan", str(path), "--estimate", "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["study", "plan", str(path), "--estimate", "--estimate-steps", "0"], "--estimate-steps must be at least 1"),
        (["study", "run", str(path), "--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["study", "run", str(path), "--executor", "gpus", "--cells-per-gpu", "0"], "--cells-per-gpu must be at"),
        (["study", "run", str(path), "--executor", "gpus", "--gpus-per-cell", "0"], "--gpus-per-cell must be at"),
        (["study", "run", str(path), "--executor", "slurm", "--time-min", "0"], "--time-min must be at least 1"),
    ]:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert len(error.splitlines()) == 1 and message in error, (argv, error)
    assert not (tmp_path / "out").exists()


def test_a_run_whose_cells_fail_says_so_on_stderr(tmp_path, capsys, monkeypatch):
    # Each cell's process refuses its arguments, as the training does: one line, exit 2.
    refusal = f"{REFUSAL_PREFIX}something about this cell"
    program = f"import sys; print({refusal!r}); print('Traceback (most recent call last): ...'); sys.exit(2)"
    monkeypatch.setattr(
        cells, "launch_command", lambda cell, processes=1, threads=None: [sys.executable, "-c", program]
    )
    path = write(tmp_path, seeds=1)
    assert main(["study", "run", str(path)]) == 1
    printed = capsys.readouterr()
    assert printed.err.strip() == (
        f"expression-perceiver study: error: 2 of 2 cells failed (first: none/seed0: {refusal}); each failed cell's "
        "train.log holds its run"
    )
    assert "none/seed0 failed (exit 2)" in printed.out


def test_the_failure_recorded_for_a_cell_is_its_own_refusal_of_its_last_attempt():
    refusal = f"{REFUSAL_PREFIX}unknown argument --learning_rat; did you mean --learning_rate?"
    launcher = ["Traceback (most recent call last):", "subprocess.CalledProcessError: Command ... exit status 2."]
    log = [
        "=== 2025-01-01 10:00:00: first attempt",
        f"{REFUSAL_PREFIX}an older problem",
        "=== 2025-01-01 11:00:00: again",
    ]
    assert failure_line([*log, "loading data", refusal, *launcher]) == refusal
    assert failure_line([*log, "RuntimeError: out of memory", "done"]) == "RuntimeError: out of memory"
    assert failure_line([]) == "no output"


def test_every_shipped_study_parses_whole_in_a_fraction_of_a_second_per_cell(monkeypatch):
    import time

    repository = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repository)
    for path in sorted((repository / "studies").glob("*.yaml")):
        started = time.monotonic()
        study = load_study(path.relative_to(repository), check_data=False)
        assert time.monotonic() - started < 0.25 * len(study.cells()) + 5, path.name
