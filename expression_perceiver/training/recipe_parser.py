"""The arguments of a training run: `train.py [RECIPE.yaml ...] [--flag value ...]`.

Recipes (YAML or JSON mappings of argument names to values) apply in order, then the flags override them. Errors are
one line (a ValueError the command line prints), a misspelt flag or recipe key names the closest known one, and
`--help` lists our own arguments and the most used `TrainingArguments` (`--help-all` lists every one).
"""

import argparse
import difflib
import os
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from .arguments import DataArguments, ExpressionTrainingArguments, MaskingArguments, ModelArguments

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
COMMAND = "expression-perceiver train"  # the usage line's program when none is given
TRAIN_SCRIPT = "train.py"  # the program of `accelerate launch train.py`
USAGE = "%(prog)s [RECIPE.yaml ...] [--flag value ...]"

# The `TrainingArguments` that most runs set: `--help` lists them next to our own; `--help-all` lists the rest.
COMMON_TRAINING_ARGUMENTS = (
    "output_dir", "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "seed",
    "early_stopping_patience", "push_to_hub", "hub_model_id", "resume_from_checkpoint", "use_cpu", "bf16",
    "logging_steps", "disable_tqdm",
)  # fmt: skip

OWN_GROUPS = (
    ("model arguments", ModelArguments),
    ("data arguments", DataArguments),
    ("masking arguments", MaskingArguments),
)
SHORT_HELP_LEAVES_OUT = ("remove_unused_columns", "greater_is_better")  # settings of the recipe, rarely changed
HELP_FLAGS = ("-h", "--help")
HELP_ALL_FLAG = "--help-all"


def yaml_problem(error: yaml.YAMLError) -> str:
    """'expected ',' or ']', line 2 column 1': PyYAML's several-line message as one line."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem}, line {mark.line + 1} column {mark.column + 1}" if mark is not None else problem


def recipe_values(path: str) -> dict:
    """A YAML/JSON recipe's mapping of argument names to values."""
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as error:
        raise ValueError(f"recipe {path}: cannot be read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ValueError(f"recipe {path}: not valid YAML ({yaml_problem(error)})") from None
    if not isinstance(values, dict):
        raise ValueError(f"recipe {path}: expected a mapping of argument names to values")
    return values


def as_flags(values: dict) -> list[str]:
    flags = []
    for name, value in values.items():
        if value is None:
            continue
        values_of = value if isinstance(value, list) else [value]
        flags += [f"--{name}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in values_of)]
    return flags


def recipe_flags(path: str) -> list[str]:
    """A YAML/JSON recipe as command-line flags, so that recipes compose and later flags override them."""
    return as_flags(recipe_values(path))


def closest(word: str, candidates) -> str | None:
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class OneSpellingFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option under its first spelling with a short value name (`--learning_rate X`, not also
    `--learning-rate LEARNING_RATE`), and no '(default: None)'."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 34, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        if action.type is string_to_bool:
            return "true|false"
        if action.type in (int, float):
            return "N" if action.type is int else "X"
        return "PATH" if action.dest.endswith(("_dir", "_path", "_or_path", "checkpoint")) else "VALUE"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings:
            return super()._format_action_invocation(action)
        if action.nargs == 0:
            return ", ".join(action.option_strings)
        return f"{action.option_strings[0]} {self._format_args(action, self._get_default_metavar_for_optional(action))}"

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.nargs == 0:
            return action.help or ""
        return super()._get_help_string(action)


class HelpAction(argparse.Action):
    """`--help`: our own arguments and the most used training ones; `--help-all`: every argument."""

    def __init__(self, option_strings, dest, full: bool, help: str):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)
        self.full = full

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help(full=self.full)
        parser.exit()


class RecipeArgumentParser(HfArgumentParser):
    """`HfArgumentParser` over the four argument dataclasses whose errors are one line (a ValueError the command line
    prints) naming the closest known flag, and whose `--help` is a short list (`--help-all`: every argument)."""

    def __init__(self, prog: str = COMMAND, description: str | None = None):
        super().__init__(
            (ModelArguments, DataArguments, MaskingArguments, ExpressionTrainingArguments),
            prog=prog,
            usage=USAGE,
            description=description,
            formatter_class=OneSpellingFormatter,
            add_help=False,
            allow_abbrev=False,  # a misspelt flag must fail, not become whichever flag it happens to begin
        )
        self.add_argument(*HELP_FLAGS, action=HelpAction, full=False, help="This list.")
        self.add_argument(HELP_ALL_FLAG, action=HelpAction, full=True, help="Every argument, TrainingArguments too.")

    def known_options(self) -> list[str]:
        return [option for option in self._option_string_actions if option.startswith("--")]

    def argument_names(self) -> set[str]:
        """The names a recipe may use: each option without its leading dashes."""
        return {option[2:] for option in self.known_options() if option not in (*HELP_FLAGS, HELP_ALL_FLAG)}

    def unknown_argument(self, argument: str) -> str:
        """'unknown argument --learning_rat; did you mean --learning_rate?'."""
        name = argument.split("=", 1)[0]
        if not name.startswith("-"):
            hint = "recipe files come first, before any flag" if name.endswith(RECIPE_SUFFIXES) else "not a flag"
            return f"unexpected argument {name!r} ({hint}; `{self.prog} --help` lists the arguments)"
        suggestion = closest(name, self.known_options())
        if suggestion:
            return f"unknown argument {name}; did you mean {suggestion}?"
        return f"unknown argument {name} (`{self.prog} --help-all` lists every argument)"

    def check_recipe_keys(self, path: str, values: dict) -> None:
        """A misspelt key in a recipe is named with the recipe and the closest known key."""
        known = self.argument_names()
        names = {action.dest for action in self._actions if action.option_strings and action.dest in known}
        for key in values:
            if str(key) not in known:
                suggestion = closest(str(key), names)
                hint = f"; did you mean {suggestion}?" if suggestion else f" (`{self.prog} --help-all` lists them)"
                raise ValueError(f"recipe {path}: unknown argument {key}{hint}")

    def parse_known_args(self, args=None, namespace=None):
        namespace, remaining = super().parse_known_args(args, namespace)
        if remaining:  # before the dataclasses check their values: a misspelt flag is the first thing to fix
            self.error(f"unrecognized arguments: {' '.join(remaining)}", remaining)
        return namespace, remaining

    def error(self, message: str, unrecognized: list[str] | None = None):
        if unrecognized:
            raise ValueError(self.unknown_argument(unrecognized[0]))
        raise ValueError(f"{message} (`{self.prog} --help` lists the arguments)")

    def help_sections(self, full: bool) -> list[tuple[str, list[argparse.Action]]]:
        """Our own arguments first, then the training arguments: the most used ones, or with `full` every one."""
        by_dest: dict[str, argparse.Action] = {}
        for action in self._actions:
            by_dest.setdefault(action.dest, action)  # a boolean's `--no_x` complement is left out
        sections = [(title, [by_dest[field.name] for field in fields(group)]) for title, group in OWN_GROUPS]
        own = [name for name in ExpressionTrainingArguments.__dataclass_fields__ if is_own_training_argument(name)]
        training = list(COMMON_TRAINING_ARGUMENTS) + [
            name for name in own if name not in COMMON_TRAINING_ARGUMENTS and name not in SHORT_HELP_LEAVES_OUT
        ]
        sections.append(("training arguments", [by_dest[name] for name in training]))
        if full:
            listed = set(training)
            others = [
                action
                for field in fields(ExpressionTrainingArguments)
                if field.init and field.name not in listed and (action := by_dest.get(field.name)) is not None
            ]
            sections.append(("all other training arguments (TrainingArguments)", others))
        helps = [action for action in self._actions if isinstance(action, HelpAction)]
        return [*sections, ("help", helps)]

    def format_help(self, full: bool = False) -> str:
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, [], [])
        formatter.add_text(self.description)
        for title, actions in self.help_sections(full):
            formatter.start_section(title)
            formatter.add_arguments(actions)
            formatter.end_section()
        if not full:
            hidden = len(self.help_sections(full=True)[-2][1])
            formatter.add_text(
                f"All other TrainingArguments ({hidden} more: gradient_accumulation_steps, lr_scheduler_type, "
                f"report_to, ...) are listed by `{self.prog} --help-all`."
            )
        return formatter.format_help()

    def print_help(self, file=None, full: bool = False) -> None:
        self._print_message(self.format_help(full), file or sys.stdout)


def is_own_training_argument(name: str) -> bool:
    """A training argument that `ExpressionTrainingArguments` declares itself (a new one or a new default)."""
    return name in ExpressionTrainingArguments.__annotations__


def description(default_recipe: Path | None) -> str:
    base = (
        f"With no recipe file, {display_path(default_recipe)} is the base: `--max_steps 2` alone means that recipe "
        "with --max_steps 2; a recipe file given replaces it."
        if default_recipe is not None
        else "With no recipe file, the defaults below are the base."
    )
    return (
        "Train a Perceiver. Recipes (YAML or JSON files whose keys are the argument names below) apply in order, "
        f"then the flags override them. {base} Booleans take true or false; dashes may replace underscores."
    )


def display_path(path: str | Path) -> str:
    """The path relative to the working folder when it lies inside it."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # another drive
        return str(path)


def split_recipes(argv: list[str], default_recipe: Path | None = None) -> tuple[list[str], list[str]]:
    """The leading recipe files, or `default_recipe` when none is given, and the flags after them."""
    given = 0
    while given < len(argv) and argv[given].endswith(RECIPE_SUFFIXES):
        given += 1
    recipes = argv[:given] or ([str(default_recipe)] if default_recipe is not None else [])
    return recipes, argv[given:]


def recipes_in_force(argv: list[str] | None = None, default_recipe: Path | None = None) -> str:
    """'recipe: configs/demo.yaml + command-line flags --max_steps 2': the one line a run starts with."""
    recipes, flags = split_recipes(list(sys.argv[1:] if argv is None else argv), default_recipe)
    parts = [display_path(recipe) for recipe in recipes] or ["none (the arguments' defaults)"]
    if flags:
        parts.append(f"command-line flags {shlex.join(flags)}")
    return "recipe: " + " + ".join(parts)


def command_line(prog: str, argv: list[str]) -> str:
    """The command that repeats a run: 'accelerate launch train.py --max_steps 2' or 'expression-perceiver train
    recipe.yaml'."""
    launcher = "accelerate launch " if prog == TRAIN_SCRIPT else ""
    return f"{launcher}{prog} {shlex.join(argv)}".rstrip()


def mentions(flags: list[str], name: str) -> bool:
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(flag.split("=", 1)[0] in spellings for flag in flags)


def parse_arguments(argv: list[str] | None = None, default_recipe: Path | None = None, prog: str = COMMAND):
    """Dataclass arguments from recipes and flags: `PROG [recipe.yaml ...] [--flag value ...]`.

    Recipes (YAML or JSON) apply in order, then the flags; with no recipe file, `default_recipe` (when given) is the
    base. Without --disable_tqdm anywhere, the progress bar is on when stderr is a terminal and off otherwise (a log
    file gets the logged loss lines instead of carriage-return bars). Returns the four dataclasses and the recipe
    names.
    """
    parser = RecipeArgumentParser(prog, description(default_recipe))
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(flag in (*HELP_FLAGS, HELP_ALL_FLAG) for flag in argv):  # help needs no readable recipe
        parser.print_help(full=HELP_ALL_FLAG in argv)
        parser.exit()
    recipes, command_line = split_recipes(argv, default_recipe)
    flags = []
    for recipe in recipes:
        values = recipe_values(recipe)
        parser.check_recipe_keys(recipe, values)
        flags += as_flags(values)
    flags += command_line
    model_args, data_args, masking_args, training_args = parser.parse_args_into_dataclasses(args=flags)
    if not mentions(flags, "disable_tqdm"):
        training_args.disable_tqdm = not sys.stderr.isatty()
    return model_args, data_args, masking_args, training_args, " + ".join(recipes) or "command-line arguments"
