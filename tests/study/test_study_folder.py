"""A study's folder is bound to its study: the same study reruns there, one that only adds seeds, rows, curves or
mask sizes extends it with --extend, and any other study is refused in one line naming what changed, before anything
is written (its study.yaml and cells stay as they were)."""

from pathlib import Path

import pytest
import yaml

from expression_perceiver.cli import main
from expression_perceiver.study.cells import DONE
from expression_perceiver.study.executors import study_states
from expression_perceiver.study.plan import run_study
from expression_perceiver.study.spec import STUDY_COPY, bind_study_folder, load_study, load_study_dir, save_study_copy
from tests.study.test_executors import mark_finished

REPOSITORY = Path(__file__).resolve().parents[2]

BASE = {
    "name": "grid",
    "seeds": 2,
    "overrides": {"num_train_epochs": 1, "use_cpu": True},
    "table": [{"name": "none"}, {"name": "span", "strategy": "random_span", "mask_length": 3}],
    "figure": [{"strategy": "random_span", "mask_length": [0, 3, 6]}],
}


def write(tmp_path: Path, file_name: str = "study.yaml", **changes) -> Path:
    values = {**BASE, "output_dir": str(tmp_path / "out"), **changes}
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """The folder of a study that ran: its study.yaml and every cell finished."""
    study = load_study(write(tmp_path, "first.yaml"))
    save_study_copy(study)
    for cell in study.cells():
        mark_finished(cell)
    return Path(study.output_dir)


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_same_study_reruns_in_its_folder_from_any_spelling_of_it(tmp_path, run_folder):
    # The same study written otherwise (a list of seeds for the count, the figure's sizes in another order).
    again = write(tmp_path, "again.yaml", seeds=[0, 1], figure=[{"strategy": "random_span", "mask_length": [6, 0, 3]}])
    assert bind_study_folder(load_study(again)) == []
    assert main(["study", "plan", str(again)]) == 0


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"overrides": {"num_train_epochs": 2, "use_cpu": True}}, "overrides: num_train_epochs 1 -> 2"),
        ({"overrides": {"num_train_epochs": 1}}, "overrides: use_cpu true removed"),
        (
            {"overrides": {**BASE["overrides"], "learning_rate": 0.01}},
            "overrides: learning_rate 0.01 added",
        ),
        (
            {"table": [{"name": "none"}, {"name": "span", "strategy": "random_span", "mask_length": 6}]},
            "table row 'span': masking random_span, 3 positions, mode mask -> random_span, 6 positions, mode mask",
        ),
        (
            {
                "table": [
                    {"name": "none"},
                    {"name": "span", "strategy": "random_span", "mode": "drop", "mask_length": 3},
                ]
            },
            "table row 'span': masking random_span, 3 positions, mode mask -> random_span, 3 positions, mode drop",
        ),
        ({"table": [{"name": "none"}]}, "table row 'span' removed"),
        ({"seeds": [1]}, "seed(s) 0 removed"),
        (
            {"figure": [{"strategy": "random_span", "mask_length": [0, 3]}]},
            "figure curve random_span (mask): size(s) 6 removed",
        ),
        ({"figure": []}, "figure curve random_span (mask) removed"),
        ({"name": "other"}, "name 'grid' -> 'other'"),
        ({"reference": "span"}, "reference 'none' -> 'span'"),
        ({"recipes": ["recipe.yaml"]}, "recipes [] -> ["),
    ],
)
def test_another_study_for_the_folder_is_refused_naming_what_changed(tmp_path, run_folder, capsys, changes, named):
    (tmp_path / "recipe.yaml").write_text("learning_rate: 0.001\n")
    before = folder_snapshot(run_folder)
    other = write(tmp_path, "other.yaml", **changes)
    for command in ("plan", "run"):
        assert main(["study", command, str(other)]) == 2
        error = capsys.readouterr().err
        assert len(error.splitlines()) == 1, error
        assert error.startswith(
            f"expression-perceiver study: error: study file {other}: {run_folder} holds another study"
        )
        assert named in error and error.rstrip().endswith("give this study its own folder (--output-dir or output_dir)")
    # Nothing written: the folder's study and cells are the first study's, and its report still finds them finished.
    assert folder_snapshot(run_folder) == before
    assert all(state.state == DONE for state in study_states(load_study_dir(run_folder)))
    # Its own folder takes it.
    assert main(["study", "plan", str(other), "--output-dir", str(tmp_path / "elsewhere")]) == 0


def test_a_dataset_dir_change_is_refused(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "expression_perceiver.json").write_text("{}")
    first = load_study(write(tmp_path, "first.yaml", dataset_dir=str(tmp_path / "a")))
    save_study_copy(first)
    other = write(tmp_path, "other.yaml", dataset_dir=str(tmp_path / "b"))
    assert main(["study", "run", str(other)]) == 2
    assert f"dataset_dir {tmp_path / 'a'} -> {tmp_path / 'b'}" in capsys.readouterr().err


def test_a_study_that_only_adds_needs_extend_and_keeps_the_finished_cells(tmp_path, run_folder, capsys):
    before = folder_snapshot(run_folder)
    table = [*BASE["table"], {"name": "last half", "strategy": "last", "mode": "drop", "mask_fraction": 0.5}]
    figure = [{"strategy": "random_span", "mask_length": [0, 3, 6, 12]}, {"strategy": "first", "mask_length": [3]}]
    more = write(tmp_path, "more.yaml", seeds=3, table=table, figure=figure)
    assert main(["study", "run", str(more)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"expression-perceiver study: error: study file {more} adds to the study in {run_folder}: table row(s) "
        "'last half'; figure curve random_span (mask): size(s) 12; figure curve first (mask); seed(s) 2; pass "
        "--extend to add them (its finished cells stay finished), or give this study its own folder (--output-dir "
        "or output_dir)"
    )
    assert folder_snapshot(run_folder) == before

    # With --extend: the plan shows the old cells done and the new ones left; a run keeps the finished cells.
    assert main(["study", "plan", str(more), "--extend"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"extends the study in {run_folder} (with --extend): table row(s)")
    assert out.splitlines()[-1].strip() == "6 done, 12 left"  # 6 maskings x 3 seeds, 3 x 2 of them run
    study = load_study(more)
    for cell in study.cells():  # the new cells as if their runs had finished: the run below starts nothing
        if not (Path(cell.output_dir) / "results.json").exists():
            mark_finished(cell)
    lines = []
    run_study(study, jobs=1, report=lines.append, extend=True)
    assert lines[0].startswith(f"extending the study in {run_folder}: table row(s) 'last half'")
    extended = load_study_dir(run_folder)
    assert extended.seeds == [0, 1, 2] and [s.name for s in extended.table] == ["none", "span", "last half"]
    after = folder_snapshot(run_folder)  # the finished cells' files byte for byte; only study.yaml changed
    assert all(after[name] == data for name, data in before.items() if name != STUDY_COPY)
    # Extending is the folder's study from then on: the first file now only lacks what was added.
    assert main(["study", "plan", str(tmp_path / "first.yaml")]) == 2
    assert "seed(s) 2 removed" in capsys.readouterr().err


def test_description_and_slurm_may_change_and_the_copy_follows(tmp_path, run_folder):
    changed = write(tmp_path, "changed.yaml", description="the same grid, described", slurm={"partition": "long"})
    study = load_study(changed)
    assert bind_study_folder(study) == []
    run_study(study, jobs=1, report=lambda line: None)  # every cell finished: nothing runs
    copy = load_study_dir(run_folder)
    assert copy.description == "the same grid, described" and copy.slurm == {"partition": "long"}


def test_a_moved_or_copied_recipe_with_the_same_arguments_is_the_same_study(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "r.yaml").write_text("learning_rate: 0.001\n")
    first = load_study(write(tmp_path, "first.yaml", recipes=[str(tmp_path / "recipes" / "r.yaml")]))
    save_study_copy(first)
    (tmp_path / "r_copy.yaml").write_text("learning_rate: 0.001\n")
    assert bind_study_folder(load_study(write(tmp_path, "second.yaml", recipes=[str(tmp_path / "r_copy.yaml")]))) == []
    (tmp_path / "r_copy.yaml").write_text("learning_rate: 0.002\n")
    with pytest.raises(ValueError, match=r"holds another study .*: recipes \["):
        bind_study_folder(load_study(write(tmp_path, "second.yaml", recipes=[str(tmp_path / "r_copy.yaml")])))


def test_an_unreadable_study_copy_in_the_folder_is_refused(tmp_path, capsys):
    study = write(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / STUDY_COPY).write_text("seeds: [1, 1]\ntable: [{name: none}]\n")
    assert main(["study", "run", str(study)]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'out'} holds a study copy that cannot be read" in error and "repeat a seed" in error
    assert (tmp_path / "out" / STUDY_COPY).read_text() == "seeds: [1, 1]\ntable: [{name: none}]\n"


COMMITTED = sorted((REPOSITORY / "docs" / "results").glob("study_*/study.yaml"))


@pytest.mark.parametrize("copy", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_the_shipped_study_files_are_the_studies_of_the_committed_folders(copy, monkeypatch, capsys):
    """`study plan studies/FILE.yaml --output-dir docs/results/study_NAME` is not refused as another study, and
    `study report`'s reading of the folder is unchanged."""
    monkeypatch.chdir(REPOSITORY)
    folder = copy.parent.relative_to(REPOSITORY)
    committed = load_study_dir(folder)
    shipped = next(
        p for p in (REPOSITORY / "studies").glob("*.yaml") if load_study(p, check_data=False).name == committed.name
    )
    assert bind_study_folder(load_study(shipped.relative_to(REPOSITORY), str(folder), check_data=False)) == []
    assert main(["study", "plan", str(shipped.relative_to(REPOSITORY)), "--output-dir", str(folder)]) == 0
    if reported(copy.parent):  # a study still running has cells left
        assert "done" in capsys.readouterr().out.splitlines()[-1]


def reported(folder) -> bool:
    """Whether a committed study folder holds its report (a study in progress commits its finished cells first)."""
    return (folder / "table1.csv").is_file()
