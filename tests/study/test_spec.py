"""Study files: cells, their folders and arguments, and errors that name the file and the field."""

from pathlib import Path

import pytest
import yaml

from expression_perceiver.data_collators import MaskingCollator, MaskingSettings
from expression_perceiver.modeling import NucleotideTokenizer
from expression_perceiver.study.spec import cell_key, load_study, load_study_dir, save_study_copy, study_masking
from expression_perceiver.training.run import masking_collator, parse_arguments

REPOSITORY = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPOSITORY / "studies").glob("*.yaml"))


def write_study(tmp_path: Path, **fields) -> Path:
    values = {
        "name": "s",
        "output_dir": str(tmp_path / "out"),
        "seeds": 2,
        "table": [{"name": "none", "strategy": "none"}, {"name": "span", "strategy": "random_span", "mask_length": 3}],
        "figure": [{"strategy": "random_span", "mask_length": [0, 3, 6]}],
        **fields,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_cells_are_unique_maskings_times_seeds_shared_between_table_and_figure(tmp_path):
    study = load_study(write_study(tmp_path, seeds=[3, 7]))
    names = [cell.name for cell in study.cells()]
    # size 0 is the `none` cell and the table's 3-base span is the figure's: 3 maskings, not 5; Table 1 first,
    # seed by seed, so that a study cut short has every row
    assert names == ["none/seed3", "random_span-mask-3/seed3", "none/seed7", "random_span-mask-3/seed7",
                     "random_span-mask-6/seed3", "random_span-mask-6/seed7"]  # fmt: skip
    cell = study.cells()[3]
    assert cell.output_dir == str(tmp_path / "out" / "cells" / "random_span-mask-3" / "seed7")
    _, _, masking, training, _ = parse_arguments(list(cell.argv))
    assert (masking.mask_strategy, masking.mask_mode, masking.mask_length) == ("random_span", "mask", 3)
    assert training.seed == 7 and training.output_dir == cell.output_dir
    assert training.resume_from_checkpoint == "auto"


def test_fractions_overrides_and_recipes_reach_the_cell_arguments(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epochs: 7\nlearning_rate: 0.01\n")
    study = load_study(
        write_study(
            tmp_path,
            recipes=["recipe.yaml"],  # relative to the study file
            overrides={"learning_rate": 0.003, "use_cpu": True},
            table=[{"name": "none"}, {"name": "last", "strategy": "last", "mode": "drop", "mask_fraction": 0.5}],
            figure=[],
        )
    )
    cell = next(c for c in study.cells() if c.masking.strategy == "last")
    assert cell.name == "last-drop-f0.5/seed0"
    _, _, masking, training, recipe_name = parse_arguments(list(cell.argv))
    assert masking.mask_fraction == 0.5 and masking.mask_length is None and masking.mask_mode == "drop"
    assert training.num_train_epochs == 7 and training.learning_rate == 0.003  # the override wins over the recipe
    assert recipe_name == str(recipe)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"seeds": 0}, "seeds must be a count >= 1"),
        ({"seeds": [1, 1]}, "repeat a seed"),
        ({"reference": "baseline"}, "reference 'baseline' is not a table row"),
        (
            {"table": [{"name": "none"}, {"name": "x", "strategy": "sideways", "mask_length": 3}]},
            "table[1] (x): unknown masking strategy 'sideways'",
        ),
        ({"table": [{"name": "none"}, {"name": "x", "strategy": "first"}]}, "needs a mask_length or a mask_fraction"),
        ({"table": [{"name": "none"}, {"name": "x", "strategy": "first", "mask_length": [1, 2]}]}, "one mask size"),
        ({"figure": [{"strategy": "last", "mask_fraction": [0.5, 1.5]}]}, "figure[0]: mask_fraction must lie"),
        ({"overrides": {"seed": 3}}, "overrides may not set seed"),
        ({"recipes": ["missing.yaml"]}, "recipe missing.yaml: cannot be read"),
    ],
)
def test_a_bad_study_file_is_refused_naming_the_file_and_the_field(tmp_path, fields, message):
    path = write_study(tmp_path, **fields)
    with pytest.raises(ValueError) as error:
        load_study(path)
    assert message in str(error.value)
    assert str(path) in str(error.value) or "recipe" in message


def test_the_study_copy_reproduces_the_cells_wherever_the_folder_moves(tmp_path):
    study = load_study(write_study(tmp_path))
    save_study_copy(study)
    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)
    again = load_study_dir(moved)
    assert [c.name for c in again.cells()] == [c.name for c in study.cells()]
    assert again.cells()[0].output_dir == str(moved / "cells" / "none" / "seed0")


def test_mask_sizes_of_zero_are_no_masking():
    assert study_masking("random_span", length=0) == MaskingSettings() == study_masking("last", "drop", fraction=0)
    assert cell_key(study_masking("random_span", length=0)) == "none"
    assert cell_key(study_masking("first", "drop", fraction=0.25)) == "first-drop-f0.25"


def test_a_study_files_masking_reaches_the_collator_as_the_same_settings(tmp_path):
    # The study file's entry becomes MaskingSettings; the cell's flags parse back into the same settings, which the
    # training run hands to the collator unchanged.
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        "seeds: 1\ntable:\n  - {name: none, strategy: none}\n"
        "  - {name: last quarter, strategy: last, mode: drop, mask_fraction: 0.25}\n"
    )
    study = load_study(study_file, output_dir=str(tmp_path / "out"), check_data=False)
    cell = next(cell for cell in study.cells() if cell.masking.strategy == "last")
    assert cell.masking == MaskingSettings("last", "drop", mask_fraction=0.25)
    _, _, masking_args, _, _ = parse_arguments(list(cell.argv))
    collator = masking_collator(masking_args, NucleotideTokenizer(), "dna_perceiver", seed=0)
    assert isinstance(collator, MaskingCollator) and collator.masking == cell.masking


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_shipped_study_files_parse_into_cells_whose_arguments_parse(path, monkeypatch):
    monkeypatch.chdir(REPOSITORY)  # recipes are named from the repository's root
    study = load_study(path, check_data=False)  # their datasets are built by the commands in their comments
    assert len(study.seeds) >= 3 and study.table[0].name == study.reference == "none"
    for cell in study.cells()[:: len(study.seeds)]:  # one seed of each masking
        parse_arguments(list(cell.argv))
    # A study writes outside the repository's tracked files, never into the committed results.
    assert study.output_dir.split("/")[0] in ("outputs", "runs"), study.output_dir


COMMITTED = sorted((REPOSITORY / "docs" / "results").glob("study_*/study.yaml"))


@pytest.mark.parametrize("copy", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_committed_results_are_the_shipped_study_files_cells_under_output_dir(copy, monkeypatch):
    """`study plan studies/FILE.yaml --output-dir docs/results/study_NAME` finds the committed cells finished (the
    cells of the committed study copy, which `study report` reads, are the shipped file's)."""
    from expression_perceiver.study.cells import DONE
    from expression_perceiver.study.executors import study_states

    monkeypatch.chdir(REPOSITORY)
    committed = load_study_dir(copy.parent.relative_to(REPOSITORY))
    shipped = next(study for study in map(load_one, STUDIES) if study.name == committed.name)
    study = load_study(shipped.path, output_dir=str(copy.parent.relative_to(REPOSITORY)), check_data=False)
    assert [cell.argv for cell in study.cells()] == [cell.argv for cell in committed.cells()]
    states = study_states(study)
    assert len(states) == len(study.cells()) and all(
        state.cell.output_dir.startswith("docs/results/") for state in states
    )
    done = [state for state in states if state.state == DONE]
    if (copy.parent / "table1.csv").is_file():  # reported: Table 1 at least is committed whole
        assert len(done) >= len(study.table) * len(study.seeds)


def load_one(path: Path):
    return load_study(path, check_data=False)


def test_a_missing_dataset_is_refused_at_once_with_the_command_that_builds_it(tmp_path, monkeypatch, capsys):
    from expression_perceiver.cli import main

    monkeypatch.chdir(tmp_path)
    values = {"name": "s", "dataset_dir": "outputs/data/d", "output_dir": "outputs/s", "seeds": 1,
              "table": [{"name": "none"}]}  # fmt: skip
    comment = (
        "# Data:\n#   expression-perceiver prepare table path/to/promoters.tsv.gz --alphabet dna \\\n"
        "#       --label-column label -o outputs/data/d\n"
        "# Other: expression-perceiver prepare table x.tsv -o elsewhere\n"
    )
    path = tmp_path / "study.yaml"
    path.write_text(comment + yaml.safe_dump(values))
    command = (
        "expression-perceiver prepare table path/to/promoters.tsv.gz --alphabet dna --label-column label "
        "-o outputs/data/d"
    )
    with pytest.raises(ValueError) as error:
        load_study(path)
    message = str(error.value)
    assert message == (
        f"study file {path}: dataset_dir outputs/data/d does not exist; build it first: `{command}` (from the study "
        "file's comments)"
    )
    # The command line: one line, exit code 2, nothing measured or written.
    assert main(["study", "plan", str(path), "--estimate"]) == 2
    assert main(["study", "run", str(path)]) == 2
    printed = capsys.readouterr()
    assert printed.err.count("dataset_dir outputs/data/d does not exist") == 2 and len(printed.err.splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
    # Without a command in the comments the message still names the field; a folder that is not a prepared dataset is
    # refused too; a finished study's copy is read (to report it) without its data.
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(
        ValueError, match=r"dataset_dir outputs/data/d does not exist; .*prepare \.\.\. -o outputs/data/d"
    ):
        load_study(path)
    (tmp_path / "outputs" / "data" / "d").mkdir(parents=True)
    with pytest.raises(ValueError, match="dataset_dir outputs/data/d is not a prepared dataset"):
        load_study(path)
    (tmp_path / "outputs" / "data" / "d" / "expression_perceiver.json").write_text("{}")
    assert load_study(path).dataset_dir == "outputs/data/d"
    assert load_study(tmp_path / "study.yaml", check_recipes=False).name == "s"
