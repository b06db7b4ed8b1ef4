"""Study files: a base recipe, a dataset, masking settings, seeds and overrides, expanded into cells.

A study file (YAML) reads

```yaml
name: epd_human_masking
recipes: [configs/epd_human_dna_perceiver.yaml]   # composed in order, like train.py's
dataset_dir: outputs/data/epd_human
output_dir: outputs/studies/epd_human
seeds: 5                                          # a count (seeds 0..4) or a list
overrides: {num_train_epochs: 40}                 # any train.py flag
reference: none                                   # the Table 1 row every other row is tested against
table:                                            # Table 1: one row per setting
  - {name: none, strategy: none}
  - {name: random 5%, strategy: random_span, mask_length: 3}
  - {name: first half removed, strategy: first, mode: drop, mask_length: 30}
figure:                                           # Figure 1: r2 against mask size, one curve per entry
  - {strategy: random_span, mask_length: [0, 3, 6, 12, 24, 36]}
slurm: {partition: gpu, time_min: 600, gpus_per_task: 1, extra_sbatch: ["--qos=normal"]}
```

Mask sizes are positions (`mask_length`) or fractions of each sequence's own length (`mask_fraction`), so one grid
serves 60-base promoters, 20,000-base windows and proteins of any length; a size of 0 is no masking. A cell is one
masking (strategy, mode, size) and one seed; it is an ordinary training run in `OUTPUT_DIR/cells/MASKING/seedN`.
Cells with the same masking are the same cell wherever they appear (Table 1 and Figure 1 share them).

`dataset_dir` is a prepared dataset folder (`expression-perceiver prepare ... -o DIR`; a study file's comments say
how to build its own). A study that names one is refused at once, with that command, while the folder does not
exist: planning a cost estimate or running cells on data that is not there would fail only after minutes.

The whole file is checked before any cell starts, each problem in one line naming the study file and the field:
every field's type, seeds (whole numbers in 0..2**32-1, the range every random generator a run seeds accepts), mask
sizes (whole positions, or fractions in [0, 1]; 0 is no masking), and every cell's full argument list, parsed as its
run will parse it (recipes, overrides, dataset, masking flags, seed; `MaskingArguments.settings()` too), so that a
misspelt override, a bad value or a recipe's `--mask_*` value that clashes with a table row fails at `study plan`,
not in every cell.

A study's folder is bound to its study: `study run` keeps the study as run in `OUTPUT_DIR/study.yaml`, and a study
that differs from that copy (its name, recipes, dataset_dir, overrides, reference, a table row's masking, a removed
row, seed or mask size) is refused for that folder with one line naming what changed: give it a folder of its own.
A study that only adds to the copy (new seeds, table rows, figure curves or mask sizes) extends the folder with
`--extend`; without it, it is refused with that hint. The description and the `slurm:` mapping may change freely.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.atomic import AtomicFile
from ..data.dataset_dict import METADATA_FILE
from ..data_collators import MaskingSettings
from ..training.arguments import masking_flags
from ..training.recipe_parser import RECIPE_SUFFIXES, RecipeArgumentParser, closest
from ..training.run import arguments_identity, parse_arguments, recipe_flags

STUDY_COPY = "study.yaml"  # the study file as run, kept in its output folder so that `study report DIR` needs no more


def study_masking(
    strategy: str = "none", mode: str = "mask", length: int | None = None, fraction: float | None = None
) -> MaskingSettings:
    """The settings of one masking of a study file (checked by `MaskingSettings`); a size of 0, or strategy none in
    any mode, is no masking, the one `MaskingSettings()` every such entry shares."""
    if strategy == "none" or length == 0 or fraction == 0:
        MaskingSettings(strategy, mode)  # the names are checked all the same
        return MaskingSettings()
    return MaskingSettings(strategy, mode, mask_length=length, mask_fraction=fraction)


def mask_size(masking: MaskingSettings) -> float:
    """The mask size on Figure 1's axis: positions, or the fraction; 0 without masking."""
    if masking.strategy == "none":
        return 0
    return masking.mask_length if masking.mask_fraction is None else masking.mask_fraction


def cell_key(masking: MaskingSettings) -> str:
    """The cell folder's name: 'none', 'random_span-mask-3', 'first-drop-f0.5'."""
    if masking.strategy == "none":
        return "none"
    size = str(masking.mask_length) if masking.mask_fraction is None else f"f{masking.mask_fraction:g}"
    return f"{masking.strategy}-{masking.mode}-{size}"


@dataclass(frozen=True)
class Setting:
    """A Table 1 row: a named masking."""

    name: str
    masking: MaskingSettings


@dataclass(frozen=True)
class Curve:
    """A Figure 1 curve: one strategy and mode over several mask sizes."""

    strategy: str
    mode: str
    maskings: tuple[MaskingSettings, ...]

    @property
    def label(self) -> str:
        return f"{self.strategy} ({self.mode})"


@dataclass(frozen=True)
class Cell:
    """One training run of the study: a masking and a seed, with its folder and `train.py` arguments."""

    masking: MaskingSettings
    seed: int
    output_dir: str
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{cell_key(self.masking)}/seed{self.seed}"


@dataclass
class Study:
    """A parsed study file (see the module docstring)."""

    name: str
    path: str
    recipes: list[str]
    output_dir: str
    seeds: list[int]
    table: list[Setting]
    figure: list[Curve] = field(default_factory=list)
    reference: str = "none"
    dataset_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def cells(self) -> list[Cell]:
        """Every cell, once, in a stable order: Table 1's settings seed by seed (so that a study cut short has every
        row at some n), then Figure 1's other sizes seed by seed."""
        table = list(dict.fromkeys(setting.masking for setting in self.table))
        figure = [m for m in dict.fromkeys(m for curve in self.figure for m in curve.maskings) if m not in table]
        return [self.cell(masking, seed) for group in (table, figure) for seed in self.seeds for masking in group]

    def cell(self, masking: MaskingSettings, seed: int) -> Cell:
        output_dir = str(Path(self.output_dir) / "cells" / cell_key(masking) / f"seed{seed}")
        dataset = ["--dataset_dir", self.dataset_dir] if self.dataset_dir else []
        argv = (
            *self.recipes,
            *override_flags(self.overrides),
            *dataset,
            *masking_flags(masking),
            "--seed", str(seed),
            "--output_dir", output_dir,
            "--resume_from_checkpoint", "auto",
        )  # fmt: skip
        return Cell(masking=masking, seed=seed, output_dir=output_dir, argv=tuple(argv))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "recipes": self.recipes,
            "dataset_dir": self.dataset_dir,
            "output_dir": self.output_dir,
            "seeds": self.seeds,
            "overrides": self.overrides,
            "reference": self.reference,
            "table": [{"name": s.name, **masking_fields(s.masking)} for s in self.table],
            "figure": [{"strategy": c.strategy, "mode": c.mode, **curve_sizes(c)} for c in self.figure],
            "slurm": self.slurm,
        }


def override_flags(overrides: dict[str, Any]) -> list[str]:
    flags = []
    for name, value in overrides.items():
        values = value if isinstance(value, list) else [value]
        flags += [f"--{name}", *(str(v).lower() if isinstance(v, bool) else str(v) for v in values)]
    return flags


def masking_fields(masking: MaskingSettings) -> dict[str, Any]:
    """A table row's masking as the study file writes it."""
    fields = {"strategy": masking.strategy, "mode": masking.mode}
    if masking.strategy == "none":
        return fields
    if masking.mask_fraction is not None:
        return {**fields, "mask_fraction": masking.mask_fraction}
    return {**fields, "mask_length": masking.mask_length}


def curve_sizes(curve: Curve) -> dict[str, list]:
    if any(m.mask_fraction is not None for m in curve.maskings):
        return {"mask_fraction": [mask_size(m) for m in curve.maskings]}
    return {"mask_length": [mask_size(m) for m in curve.maskings]}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# Seeds a run accepts: `set_seed` seeds Python, NumPy and torch, and NumPy takes 0..2**32-1 only.
LARGEST_SEED = 2**32 - 1
# A count of seeds beyond this is a typo (every seed is one training run per masking), not a study.
MOST_SEEDS = 10_000
# Overrides the study sets for every cell itself: an override would be overruled or would move the cell elsewhere.
RESERVED_OVERRIDES = (
    "seed", "output_dir", "resume_from_checkpoint", "dataset_dir", "mask_strategy", "mask_mode", "mask_length",
    "mask_fraction",
)  # fmt: skip


def is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mask_sizes(entry: dict[str, Any], key: str, where: str) -> list:
    """The sizes under `mask_length` (whole numbers >= 0) or `mask_fraction` (numbers in [0, 1]) of an entry: a
    size that is not one is refused rather than rounded (3.7 positions is not 3)."""
    sizes = as_list(entry[key])
    if not sizes:
        raise ValueError(f"{where}: {key} lists no size")
    for size in sizes:
        if key == "mask_length" and not (is_whole_number(size) and size >= 0):
            raise ValueError(f"{where}: mask_length must be a whole number of positions >= 0, got {size!r}")
        if key == "mask_fraction" and not (is_number(size) and 0 <= size <= 1):
            raise ValueError(f"{where}: mask_fraction must lie in [0, 1] (0: no masking), got {size!r}")
    return sizes


def parse_masking(entry: dict[str, Any], where: str) -> list[MaskingSettings]:
    """The maskings of a table row or figure curve: one per listed size."""
    known = {"name", "strategy", "mode", "mask_length", "mask_fraction"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (expected {', '.join(sorted(known))})")
    strategy, mode = entry.get("strategy", "none"), entry.get("mode", "mask")
    for name, value in (("strategy", strategy), ("mode", mode)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a name, got {value!r}")
    if "mask_length" in entry and "mask_fraction" in entry:
        raise ValueError(f"{where}: give mask_length or mask_fraction, not both")
    if strategy != "none" and "mask_length" not in entry and "mask_fraction" not in entry:
        raise ValueError(f"{where}: strategy {strategy!r} needs a mask_length or a mask_fraction")
    try:
        if "mask_fraction" in entry:
            sizes = mask_sizes(entry, "mask_fraction", where)
            return [study_masking(strategy, mode, fraction=float(f)) for f in sizes]
        if "mask_length" in entry:
            return [study_masking(strategy, mode, length=n) for n in mask_sizes(entry, "mask_length", where)]
        return [study_masking(strategy, mode)]
    except (TypeError, ValueError) as error:
        message = str(error)
        raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None


def parse_seeds(value: Any, where: str) -> list[int]:
    """Seeds 0..N-1 for a count N, or the listed seeds: distinct whole numbers in 0..LARGEST_SEED."""
    if is_whole_number(value):
        if not 1 <= value <= MOST_SEEDS:
            raise ValueError(f"{where}: seeds must be a count >= 1 (at most {MOST_SEEDS:,}) or a list, got {value}")
        return list(range(value))
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: seeds must be a count >= 1 or a non-empty list of integers, got {value!r}")
    for seed in value:
        if not is_whole_number(seed):
            raise ValueError(
                f"{where}: seeds must be a count >= 1 or a non-empty list of integers, got {seed!r} in {value!r}"
            )
        if not 0 <= seed <= LARGEST_SEED:
            raise ValueError(
                f"{where}: seed {seed} is out of range: a run's seed is a whole number in 0..{LARGEST_SEED} "
                "(what Python, NumPy and torch accept)"
            )
    if len(set(value)) != len(value):
        raise ValueError(f"{where}: seeds {value} repeat a seed")
    return list(value)


def resolve_recipe(recipe: str, study_dir: Path) -> str:
    """A recipe path as given when it exists from the current folder, else relative to the study file."""
    if Path(recipe).exists() or not (study_dir / recipe).exists():
        return recipe
    return str(study_dir / recipe)


def dataset_command(text: str, dataset_dir: str) -> str | None:
    """The command a study file's comments give to build `dataset_dir` (one ending in `-o DATASET_DIR`, its
    continuation lines joined), or None."""
    comments = [line.strip()[1:].strip() for line in text.splitlines() if line.strip().startswith("#")]
    commands, current = [], ""
    for comment in comments:
        current = f"{current} {comment}".strip() if current else comment
        if current.endswith("\\"):
            current = current[:-1].strip()
            continue
        commands.append(current)
        current = ""
    target = re.compile(rf"(?:-o|--output)\s+{re.escape(dataset_dir.rstrip('/'))}/?$")
    return next((c for c in commands if c.startswith("expression-perceiver ") and target.search(c)), None)


def check_dataset(path: Path, text: str, dataset_dir: str | None) -> None:
    """Refuses a study whose `dataset_dir` does not exist, naming the field and how to build it."""
    if not dataset_dir:
        return
    folder = Path(dataset_dir)
    if folder.exists() and not (folder / METADATA_FILE).is_file():
        raise ValueError(f"study file {path}: dataset_dir {dataset_dir} is not a prepared dataset (no {METADATA_FILE})")
    if folder.exists():
        return
    command = dataset_command(text, str(dataset_dir))
    how = (
        f"`{command}` (from the study file's comments)"
        if command
        else f"`expression-perceiver prepare ... -o {dataset_dir}`"
    )
    raise ValueError(f"study file {path}: dataset_dir {dataset_dir} does not exist; build it first: {how}")


def text_field(values: dict[str, Any], name: str, where: str, default: str | None = None) -> str | None:
    """A field that holds a name or a path: a string (a bare number is taken as written), or absent."""
    value = values.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: {name} must be a text, got {value!r}")
    return str(value)


def check_overrides(overrides: Any, where: str) -> dict[str, Any]:
    """`overrides` as a mapping of train flags (by name) to values: a scalar or a list of scalars each."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: overrides must be a mapping of train.py flags to values, got {overrides!r}")
    for name, value in overrides.items():
        if not isinstance(name, str):
            raise ValueError(f"{where}: overrides: {name!r} is not a flag name")
        if name in RESERVED_OVERRIDES:
            raise ValueError(f"{where}: overrides may not set {name} (the study sets it per cell)")
        for item in as_list(value):
            if item is None or isinstance(item, dict | list):
                raise ValueError(f"{where}: overrides: {name} must be a value or a list of values, got {value!r}")
            if isinstance(item, str) and item.startswith("--"):
                raise ValueError(f"{where}: overrides: {name} has value {item!r}, which reads as a flag")
    return dict(overrides)


def load_study(
    path: str | Path, output_dir: str | None = None, check_recipes: bool = True, check_data: bool | None = None
) -> Study:
    """Reads and checks a study file; `output_dir` overrides the file's. Errors name the file and the field.
    `check_recipes` (the default) also reads the recipes and parses every cell's full argument list as its run will
    (`check_cell_arguments`); `check_recipes=False` reads a finished study's copy where its recipes are not at hand
    (to report it). `check_data` (by default as `check_recipes`) refuses a `dataset_dir` that does not exist, before
    anything is measured or run."""
    path = Path(path)
    try:
        text = path.read_text()
        values = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        problem = " ".join(str(error).split())
        raise ValueError(f"study file {path}: cannot be read ({problem})") from None
    where = f"study file {path}"
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of fields")
    known = {
        "name", "description", "recipes", "dataset_dir", "output_dir", "seeds", "overrides", "reference", "table",
        "figure", "slurm",
    }  # fmt: skip
    unknown = sorted(str(key) for key in set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for required in ("table", "seeds"):
        if required not in values:
            raise ValueError(f"{where}: missing field {required!r}")
    name = text_field(values, "name", where, default=path.stem)
    description = text_field(values, "description", where, default="")
    dataset_dir = text_field(values, "dataset_dir", where)
    file_output_dir = text_field(values, "output_dir", where)
    seeds = parse_seeds(values["seeds"], where)
    table = []
    rows = as_list(values["table"])
    if not rows:
        raise ValueError(f"{where}: table lists no row (Table 1 needs at least its reference row)")
    for i, entry in enumerate(rows):
        row = f"{where}: table[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{row}: expected a mapping with a name")
        if isinstance(entry["name"], bool) or not isinstance(entry["name"], str | int | float):
            raise ValueError(f"{row}: name must be a text, got {entry['name']!r}")
        maskings = parse_masking(entry, f"{row} ({entry['name']})")
        if len(maskings) != 1:
            raise ValueError(f"{row} ({entry['name']}): a table row has one mask size (lists of sizes go under figure)")
        table.append(Setting(str(entry["name"]), maskings[0]))
    names = [setting.name for setting in table]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{where}: table names repeat ({', '.join(map(repr, repeated))})")
    reference = values.get("reference", "none")
    if str(reference) not in names:
        raise ValueError(f"{where}: reference {reference!r} is not a table row ({', '.join(names)})")
    figure = []
    for i, entry in enumerate(as_list(values.get("figure") or [])):
        curve = f"{where}: figure[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{curve}: expected a mapping")
        if "name" in entry:
            raise ValueError(f"{curve}: a figure curve has no name (it is labelled by its strategy and mode)")
        maskings = tuple(parse_masking(entry, curve))
        figure.append(Curve(entry.get("strategy", "none"), entry.get("mode", "mask"), maskings))
        key = (figure[-1].strategy, figure[-1].mode)
        earlier = [j for j, other in enumerate(figure[:-1]) if (other.strategy, other.mode) == key]
        if earlier:
            raise ValueError(f"{curve}: repeats figure[{earlier[0]}]'s curve {figure[-1].label}; list its sizes once")
    recipes = []
    for recipe in as_list(values.get("recipes") or []):
        if not isinstance(recipe, str) or not recipe.endswith(RECIPE_SUFFIXES):
            raise ValueError(f"{where}: recipes: {recipe!r} is not a recipe file ({', '.join(RECIPE_SUFFIXES)})")
        recipes.append(resolve_recipe(recipe, path.parent))
    overrides = check_overrides(values.get("overrides") or {}, where)
    slurm = values.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise ValueError(f"{where}: slurm must be a mapping of options, got {slurm!r}")
    check_slurm(slurm, where)
    study = Study(
        name=name,
        path=str(path),
        description=description,
        recipes=recipes,
        dataset_dir=dataset_dir,
        output_dir=str(output_dir or file_output_dir or Path("outputs/studies") / path.stem),
        seeds=seeds,
        overrides=overrides,
        reference=str(reference),
        table=table,
        figure=figure,
        slurm=dict(slurm),
    )
    if check_recipes:
        for recipe in recipes:
            try:
                recipe_flags(recipe)  # a missing or malformed recipe fails now, not in every cell
            except ValueError as error:
                raise ValueError(f"{where}: recipes: {error}") from None
        check_cell_arguments(study)
    if check_recipes if check_data is None else check_data:
        check_dataset(path, text, dataset_dir)
    return study


def check_slurm(options: dict[str, Any], where: str) -> None:
    """The `slurm:` mapping, checked as `study run --executor slurm` will read it."""
    from .executors import SlurmOptions  # the executors import this module

    try:
        SlurmOptions.from_mapping(options)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


# --- every cell's arguments, parsed as its run will parse them -------------------------------------------------------


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@contextmanager
def quiet_argument_notes() -> Iterator[None]:
    """Parsing a cell's arguments for a check is not a run: the arguments' notes (a GPU recipe on a machine without
    one) are the cell's own run's to print, in its train.log."""
    arguments_logger = logging.getLogger("expression_perceiver.training.arguments")
    level = arguments_logger.level
    arguments_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        arguments_logger.setLevel(level)


def parse_cell_arguments(argv: list[str]):
    """`parse_arguments` of a cell's argument list, quietly: the four argument groups and the recipe names."""
    with quiet_argument_notes():
        return parse_arguments(argv)


def parse_problem(argv: list[str]) -> str | None:
    """Why `argv` does not parse as a training run's arguments (one line), or None when it does."""
    try:
        parse_cell_arguments(argv)
    except (ValueError, TypeError) as error:
        return one_line(error)
    return None


def check_cell_arguments(study: Study) -> None:
    """Parses every cell's full argument list as its run will, with `MaskingArguments.settings()`, so that a bad
    recipe value or override fails now in one line naming the study file and the field, not in every cell."""
    where = f"study file {study.path}"
    names = RecipeArgumentParser().argument_names()
    for name in study.overrides:
        if name not in names:
            suggestion = closest(name, {known.replace("-", "_") for known in names})
            hint = f"; did you mean {suggestion}?" if suggestion else " (`expression-perceiver train --help-all`)"
            raise ValueError(f"{where}: overrides: {name} is not a train flag{hint}")
    recipes = list(study.recipes)
    overrides = override_flags(study.overrides)
    dataset = ["--dataset_dir", study.dataset_dir] if study.dataset_dir else []
    common = [*recipes, *overrides, *dataset, "--output_dir", str(Path(study.output_dir) / "cells")]
    problem = parse_problem(common)
    if problem is not None:
        raise ValueError(f"{where}: {field_at_fault(study, problem)}")
    set_by_recipes = mask_flags_set(recipes, overrides)
    fields = masking_fields_of(study)
    for cell in study.cells():
        try:
            _, _, masking_args, _, _ = parse_cell_arguments(list(cell.argv))
            masking_args.settings()
        except (ValueError, TypeError) as error:
            origin = f" (the recipes or overrides set {', '.join(set_by_recipes)})" if set_by_recipes else ""
            raise ValueError(f"{where}: {fields[cell.masking]}: cell {cell.name}: {one_line(error)}{origin}") from None


def field_at_fault(study: Study, problem: str) -> str:
    """'recipes: ...', 'overrides: NAME: ...' or 'dataset_dir: ...': the first part of the cells' common
    arguments (recipes, then each override, then all overrides, then the dataset) that does not parse."""
    recipes = list(study.recipes)
    recipe_problem = parse_problem(recipes)
    if recipe_problem is not None:
        return f"recipes: {recipe_problem}"
    for name, value in study.overrides.items():
        override_problem = parse_problem([*recipes, *override_flags({name: value})])
        if override_problem is not None:
            return f"overrides: {name}: {override_problem}"
    together = parse_problem([*recipes, *override_flags(study.overrides)])
    if together is not None:
        return f"overrides: {together}"
    return f"dataset_dir: {problem}"


def mask_flags_set(recipes: list[str], overrides: list[str]) -> list[str]:
    """The `--mask_*` arguments the recipes and overrides give every cell (those a cell's masking flags leave)."""
    flags = [*(flag for recipe in recipes for flag in recipe_flags(recipe)), *overrides]
    return list(dict.fromkeys(flag[2:] for flag in flags if flag.startswith("--mask_")))


def masking_fields_of(study: Study) -> dict[MaskingSettings, str]:
    """The study file's first field that asks for each masking: 'table[1] (random 5%)' or 'figure[0]'."""
    fields: dict[MaskingSettings, str] = {}
    for i, setting in enumerate(study.table):
        fields.setdefault(setting.masking, f"table[{i}] ({setting.name})")
    for i, curve in enumerate(study.figure):
        for masking in curve.maskings:
            fields.setdefault(masking, f"figure[{i}] ({curve.label}, size {mask_size(masking):g})")
    return fields


# --- the study's folder and its copy of the study ---------------------------------------------------------------------


def save_study_copy(study: Study) -> Path:
    """Writes the study as run into its output folder (the report reads it from there), whole or not at all."""
    target = Path(study.output_dir) / STUDY_COPY
    with AtomicFile(target) as copy:
        copy.handle.write(yaml.safe_dump({**study.to_dict(), "output_dir": "."}, sort_keys=False))
        copy.commit()
    return target


def load_study_dir(directory: str | Path) -> Study:
    """The study run in `directory` (from its `study.yaml`), with its output folder where it now lies."""
    directory = Path(directory)
    if not (directory / STUDY_COPY).is_file():
        raise ValueError(f"{directory}: no {STUDY_COPY}; is this a study's output folder (`study run` writes it)?")
    return load_study(directory / STUDY_COPY, output_dir=str(directory), check_recipes=False)


def same_path(a: str | None, b: str | None) -> bool:
    """The same file or folder: the same text, or (both existing) the same place."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        return Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def same_recipe(a: str, b: str) -> bool:
    """The same recipe: the same path, or files with the same arguments (a recipe moved or copied)."""
    if same_path(a, b):
        return True
    try:
        return recipe_flags(a) == recipe_flags(b)
    except ValueError:
        return False


def listing(values: list, most: int = 6) -> str:
    shown = ", ".join(str(value) for value in values[:most])
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")


def study_differences(saved: Study, study: Study) -> tuple[list[str], list[str]]:
    """What `study` changes in the study `saved` in its folder (a name, recipes, dataset_dir, overrides, reference,
    a table row's masking, a removed row, seed or mask size), and what it only adds (seeds, table rows, figure curves
    and mask sizes). Description and the slurm mapping are neither: they change no cell and no number."""
    changes, additions = [], []
    if saved.name != study.name:
        changes.append(f"name {saved.name!r} -> {study.name!r}")
    if len(saved.recipes) != len(study.recipes) or not all(
        same_recipe(a, b) for a, b in zip(saved.recipes, study.recipes, strict=False)
    ):
        changes.append(f"recipes [{', '.join(saved.recipes)}] -> [{', '.join(study.recipes)}]")
    if not same_path(saved.dataset_dir, study.dataset_dir):
        changes.append(f"dataset_dir {saved.dataset_dir} -> {study.dataset_dir}")
    old = {name: " ".join(override_flags({name: value})[1:]) for name, value in saved.overrides.items()}
    new = {name: " ".join(override_flags({name: value})[1:]) for name, value in study.overrides.items()}
    for name in dict.fromkeys([*old, *new]):
        if name not in new:
            changes.append(f"overrides: {name} {old[name]} removed")
        elif name not in old:
            changes.append(f"overrides: {name} {new[name]} added")
        elif old[name] != new[name]:
            changes.append(f"overrides: {name} {old[name]} -> {new[name]}")
    if saved.reference != study.reference:
        changes.append(f"reference {saved.reference!r} -> {study.reference!r}")
    rows = {setting.name: setting.masking for setting in study.table}
    for setting in saved.table:
        if setting.name not in rows:
            changes.append(f"table row {setting.name!r} removed")
        elif rows[setting.name] != setting.masking:
            changes.append(
                f"table row {setting.name!r}: masking {setting.masking.describe()} -> {rows[setting.name].describe()}"
            )
    saved_rows = {setting.name for setting in saved.table}
    added_rows = [setting.name for setting in study.table if setting.name not in saved_rows]
    if added_rows:
        additions.append(f"table row(s) {listing([repr(name) for name in added_rows])}")
    curves = {(curve.strategy, curve.mode): curve for curve in study.figure}
    for curve in saved.figure:
        now = curves.get((curve.strategy, curve.mode))
        if now is None:
            changes.append(f"figure curve {curve.label} removed")
            continue
        removed = [mask_size(m) for m in curve.maskings if m not in now.maskings]
        added = [mask_size(m) for m in now.maskings if m not in curve.maskings]
        if removed:
            changes.append(f"figure curve {curve.label}: size(s) {listing(removed)} removed")
        if added:
            additions.append(f"figure curve {curve.label}: size(s) {listing(added)}")
    saved_curves = {(curve.strategy, curve.mode) for curve in saved.figure}
    additions += [f"figure curve {c.label}" for c in study.figure if (c.strategy, c.mode) not in saved_curves]
    removed_seeds = [seed for seed in saved.seeds if seed not in study.seeds]
    added_seeds = [seed for seed in study.seeds if seed not in saved.seeds]
    if removed_seeds:
        changes.append(f"seed(s) {listing(removed_seeds)} removed")
    if added_seeds:
        additions.append(f"seed(s) {listing(added_seeds)}")
    return changes, additions


def bind_study_folder(study: Study, extend: bool = False) -> list[str]:
    """Checks that `study` is the study its output folder holds (its `study.yaml`), before anything is run or
    written there: another study is refused in one line naming what changed; one that only adds seeds, rows, curves
    or mask sizes is refused unless `extend`. Returns what it adds (nothing for the same study or a new folder)."""
    folder = Path(study.output_dir)
    if not (folder / STUDY_COPY).is_file():
        return []
    try:
        saved = load_study_dir(folder)
    except ValueError as error:
        raise ValueError(
            f"{folder} holds a study copy that cannot be read ({error}); give this study its own folder "
            "(--output-dir or output_dir)"
        ) from None
    changes, additions = study_differences(saved, study)
    where = f"study file {study.path}"
    if changes:
        raise ValueError(
            f"{where}: {folder} holds another study ({folder / STUDY_COPY}): {'; '.join(changes)}; give this study "
            "its own folder (--output-dir or output_dir)"
        )
    if additions and not extend:
        raise ValueError(
            f"{where} adds to the study in {folder}: {'; '.join(additions)}; pass --extend to add them (its "
            "finished cells stay finished), or give this study its own folder (--output-dir or output_dir)"
        )
    return additions


def cell_identity(cell: Cell, processes: int = 1) -> dict:
    """The run identity the cell's `results.json` must carry, data fingerprint aside (it is checked by the run)."""
    *parsed, _ = parse_cell_arguments(list(cell.argv))
    return without_fingerprint(arguments_identity(*parsed, world_size=processes, data_fingerprint=""))


def without_fingerprint(identity: dict) -> dict:
    return {key: value for key, value in identity.items() if key != "data_fingerprint"}
