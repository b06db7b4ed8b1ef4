"""The arguments of a training run: which recipe is in force, one-line errors that name the closest flag, a short
--help, and progress lines within an epoch."""

import importlib.util
import io
import logging
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from expression_perceiver.training.arguments import (
    DataArguments,
    ExpressionTrainingArguments,
    MaskingArguments,
    ModelArguments,
)
from expression_perceiver.training.recipe_parser import (
    COMMON_TRAINING_ARGUMENTS,
    RecipeArgumentParser,
    command_line,
    parse_arguments,
    recipes_in_force,
)
from expression_perceiver.training.run import main

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO = REPOSITORY / "configs" / "demo.yaml"
FIRST = REPOSITORY / "configs" / "masking" / "first.yaml"


def load_train_script():
    """`train.py` as a module (it lives beside the package, not in it)."""
    spec = importlib.util.spec_from_file_location("train_script", REPOSITORY / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Which recipe is in force.


def test_flags_alone_change_the_demo_recipe_of_train_py(tmp_path):
    model, data, _, training, recipe = parse_arguments(["--max_steps", "2"], default_recipe=DEMO, prog="train.py")
    demo = yaml.safe_load(DEMO.read_text())
    assert training.max_steps == 2 and training.output_dir == demo["output_dir"] == "outputs/demo"
    assert model.config_overrides == demo["config_overrides"] and data.synthetic_num_genes == 3000
    assert recipe == str(DEMO)


def test_a_recipe_file_given_replaces_the_demo_recipe():
    model, data, masking, training, recipe = parse_arguments([str(FIRST), "--seed", "3"], default_recipe=DEMO)
    assert masking.mask_strategy == "first" and training.seed == 3
    assert model.config_overrides is None and training.output_dir == "outputs/dna_perceiver"
    assert data.synthetic_num_genes == DataArguments().synthetic_num_genes and recipe == str(FIRST)


def test_the_command_line_train_has_no_demo_base():
    model, _, _, training, recipe = parse_arguments(["--max_steps", "2"])
    assert model.config_overrides is None and training.output_dir == "outputs/dna_perceiver"
    assert training.max_steps == 2 and recipe == "command-line arguments"


def test_the_recipe_in_force_is_one_line(monkeypatch, tmp_path):
    monkeypatch.chdir(REPOSITORY)
    line = recipes_in_force(["--max_steps", "2"], DEMO)
    assert line == "recipe: configs/demo.yaml + command-line flags --max_steps 2"
    assert recipes_in_force([], DEMO) == "recipe: configs/demo.yaml"
    assert recipes_in_force([str(FIRST), "--seed", "3"], DEMO) == (
        "recipe: configs/masking/first.yaml + command-line flags --seed 3"
    )
    assert recipes_in_force(["--max_steps", "2"]) == (
        "recipe: none (the arguments' defaults) + command-line flags --max_steps 2"
    )


def test_a_run_logs_its_recipe_first(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(REPOSITORY)
    missing = tmp_path / "no-dataset"
    arguments = ["--max_steps", "2", "--dataset_dir", str(missing), "--output_dir", str(tmp_path / "run")]
    with caplog.at_level(logging.INFO), pytest.raises((ValueError, OSError)):  # fails at the data, after the line
        main(arguments, default_recipe=DEMO, prog="train.py")
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("recipe: ")]
    assert lines == [f"recipe: configs/demo.yaml + command-line flags --max_steps 2 --dataset_dir {missing} "
                     f"--output_dir {tmp_path / 'run'}"]  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_the_recorded_command_repeats_the_run():
    assert command_line("train.py", ["--max_steps", "2"]) == "accelerate launch train.py --max_steps 2"
    assert command_line("expression-perceiver train", ["a b.yaml"]) == "expression-perceiver train 'a b.yaml'"


# Misspelt flags and recipe keys.


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--learning_rat", "0.1"], "unknown argument --learning_rat; did you mean --learning_rate?"),
        (["--max_step", "2"], "unknown argument --max_step; did you mean --max_steps?"),
        (["--mask_strategi=first"], "unknown argument --mask_strategi; did you mean --mask_strategy?"),
        (["--help_all"], "unknown argument --help_all; did you mean --help-all?"),
        (["--qqqqqq", "1"], "unknown argument --qqqqqq (`expression-perceiver train --help-all` lists every argument)"),
        (["--seed", "3", str(FIRST)], f"unexpected argument '{FIRST}' (recipe files come first, before any flag"),
    ],
)
def test_a_misspelt_flag_names_the_closest_one(flags, message):
    # Even where the other values would be refused (0 epochs): the misspelling is named first.
    with pytest.raises(ValueError) as raised:
        parse_arguments([*flags, "--num_train_epochs", "0"])
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_misspelt_recipe_key_names_the_recipe_and_the_closest_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_type: dna_perceiver\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError) as raised:
        parse_arguments([str(recipe)])
    assert str(raised.value) == f"recipe {recipe}: unknown argument learning_rat; did you mean learning_rate?"


def test_train_py_answers_a_misspelt_flag_in_one_line_with_exit_code_2(capsys):
    assert load_train_script().main(["--learning_rat", "0.1"]) == 2
    assert (
        capsys.readouterr().err == "train.py: error: unknown argument --learning_rat; did you mean --learning_rate?\n"
    )


# --help.


def test_every_option_of_our_dataclasses_has_help():
    own = [*fields(ModelArguments), *fields(DataArguments), *fields(MaskingArguments)]
    own += [field for field in fields(ExpressionTrainingArguments) if field.name in vars(ExpressionTrainingArguments)]
    assert len(own) > 25
    for field in own:
        assert field.metadata.get("help", "").strip(), f"--{field.name} has no help"
    parser = RecipeArgumentParser()
    for _, actions in parser.help_sections(full=False):
        for action in actions:
            assert action.help and action.help.strip(), f"{action.option_strings[0]} has no help"


def help_text(monkeypatch, capsys, argv, **kwargs) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exited:
        parse_arguments(argv, **kwargs)
    assert exited.value.code in (0, None)
    return capsys.readouterr().out


def test_help_is_short_and_names_the_command_and_help_all(monkeypatch, capsys):
    text = help_text(monkeypatch, capsys, ["--help"])
    lines = text.splitlines()
    assert len(lines) < 150
    assert lines[0] == "usage: expression-perceiver train [RECIPE.yaml ...] [--flag value ...]"
    assert "`expression-perceiver train --help-all`" in " ".join(text.split())
    sections = [line for line in lines if line.endswith(":") and not line.startswith(" ")]
    assert sections[:4] == ["model arguments:", "data arguments:", "masking arguments:", "training arguments:"]
    for name in ["model_type", "dataset_dir", "mask_strategy", *COMMON_TRAINING_ARGUMENTS]:
        assert f"  --{name} " in text, name
    assert "--gradient_accumulation_steps" not in text and "--learning-rate" not in text

    every = help_text(monkeypatch, capsys, ["--help-all"])
    assert len(every.splitlines()) > 3 * len(lines) and "--gradient_accumulation_steps" in every
    assert every.index("model arguments:") < every.index("all other training arguments")


def test_train_py_help_names_train_py_and_its_demo_base(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPOSITORY)
    broken = tmp_path / "broken.yaml"
    broken.write_text("[unclosed")
    text = help_text(monkeypatch, capsys, [str(broken), "-h"], default_recipe=DEMO, prog="train.py")
    assert text.splitlines()[0] == "usage: train.py [RECIPE.yaml ...] [--flag value ...]"
    assert "configs/demo.yaml is the base" in " ".join(text.split()) and "`train.py --help-all`" in text


# Progress within an epoch.


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_is_on_at_a_terminal_and_off_in_a_log_file(monkeypatch):
    *_, logged, _ = parse_arguments(["--output_dir", "x"])  # pytest's stderr is not a terminal
    assert logged.disable_tqdm is True
    monkeypatch.setattr("sys.stderr", Terminal())
    *_, terminal, _ = parse_arguments(["--output_dir", "x"])
    *_, asked, _ = parse_arguments(["--output_dir", "x", "--disable_tqdm", "true"])
    assert terminal.disable_tqdm is False and asked.disable_tqdm is True


def test_the_demo_logs_its_loss_several_times_an_epoch():
    _, data, _, training, _ = parse_arguments([], default_recipe=DEMO)
    steps_per_epoch = int(0.8 * data.synthetic_num_genes) // training.per_device_train_batch_size
    assert training.logging_strategy == "steps" and steps_per_epoch // training.logging_steps >= 4
    assert "disable_tqdm" not in yaml.safe_load(DEMO.read_text())
