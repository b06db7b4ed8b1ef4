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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.dataset_dict import METADATA_FILE
from ..data_collators import MaskingSettings
from ..training.arguments import masking_flags
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


def parse_masking(entry: dict[str, Any], where: str) -> list[MaskingSettings]:
    """The maskings of a table row or figure curve: one per listed size."""
    known = {"name", "strategy", "mode", "mask_length", "mask_fraction"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (expected {', '.join(sorted(known))})")
    strategy, mode = entry.get("strategy", "none"), entry.get("mode", "mask")
    if "mask_length" in entry and "mask_fraction" in entry:
        raise ValueError(f"{where}: give mask_length or mask_fraction, not both")
    if strategy != "none" and "mask_length" not in entry and "mask_fraction" not in entry:
        raise ValueError(f"{where}: strategy {strategy!r} needs a mask_length or a mask_fraction")
    try:
        if "mask_fraction" in entry:
            return [study_masking(strategy, mode, fraction=float(f)) for f in as_list(entry["mask_fraction"])]
        if "mask_length" in entry:
            return [study_masking(strategy, mode, length=int(n)) for n in as_list(entry["mask_length"])]
        return [study_masking(strategy, mode)]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def parse_seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{where}: seeds must be a count >= 1 or a list, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ValueError(f"{where}: seeds {value} repeat a seed")
        return list(value)
    raise ValueError(f"{where}: seeds must be a count >= 1 or a non-empty list of integers, got {value!r}")


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


def load_study(
    path: str | Path, output_dir: str | None = None, check_recipes: bool = True, check_data: bool | None = None
) -> Study:
    """Reads and checks a study file; `output_dir` overrides the file's. Errors name the file and the field.
    `check_recipes=False` reads a finished study's copy where its recipes are not at hand (to report it).
    `check_data` (by default as `check_recipes`) refuses a `dataset_dir` that does not exist, before anything is
    measured or run."""
    path = Path(path)
    try:
        text = path.read_text()
        values = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"study file {path}: cannot be read ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"study file {path}: expected a mapping of fields")
    known = {
        "name", "description", "recipes", "dataset_dir", "output_dir", "seeds", "overrides", "reference", "table",
        "figure", "slurm",
    }  # fmt: skip
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"study file {path}: unknown field(s) {', '.join(unknown)}")
    for required in ("table", "seeds"):
        if required not in values:
            raise ValueError(f"study file {path}: missing field {required!r}")
    table = []
    for i, entry in enumerate(as_list(values["table"])):
        where = f"study file {path}: table[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{where}: expected a mapping with a name")
        maskings = parse_masking(entry, where)
        if len(maskings) != 1:
            raise ValueError(f"{where}: a table row has one mask size (lists of sizes go under figure)")
        table.append(Setting(str(entry["name"]), maskings[0]))
    names = [setting.name for setting in table]
    if len(set(names)) != len(names):
        raise ValueError(f"study file {path}: table names repeat")
    reference = values.get("reference", "none")
    if reference not in names:
        raise ValueError(f"study file {path}: reference {reference!r} is not a table row ({', '.join(names)})")
    figure = []
    for i, entry in enumerate(as_list(values.get("figure") or [])):
        where = f"study file {path}: figure[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping")
        maskings = tuple(parse_masking(entry, where))
        figure.append(Curve(entry.get("strategy", "none"), entry.get("mode", "mask"), maskings))
    recipes = [resolve_recipe(str(recipe), path.parent) for recipe in as_list(values.get("recipes") or [])]
    for recipe in recipes if check_recipes else []:
        recipe_flags(recipe)  # a missing or malformed recipe fails now, not in every cell
    overrides = values.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"study file {path}: overrides must be a mapping of train.py flags to values")
    for reserved in ("seed", "output_dir", "mask_strategy", "mask_mode", "mask_length", "mask_fraction"):
        if reserved in overrides:
            raise ValueError(f"study file {path}: overrides may not set {reserved} (the study sets it per cell)")
    if check_recipes if check_data is None else check_data:
        check_dataset(path, text, values.get("dataset_dir"))
    return Study(
        name=str(values.get("name") or path.stem),
        path=str(path),
        description=str(values.get("description") or ""),
        recipes=recipes,
        dataset_dir=values.get("dataset_dir"),
        output_dir=str(output_dir or values.get("output_dir") or Path("outputs/studies") / path.stem),
        seeds=parse_seeds(values["seeds"], f"study file {path}"),
        overrides=dict(overrides),
        reference=str(reference),
        table=table,
        figure=figure,
        slurm=dict(values.get("slurm") or {}),
    )


def save_study_copy(study: Study) -> Path:
    """Writes the study as run into its output folder (the report reads it from there)."""
    target = Path(study.output_dir) / STUDY_COPY
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump({**study.to_dict(), "output_dir": "."}, sort_keys=False))
    return target


def load_study_dir(directory: str | Path) -> Study:
    """The study run in `directory` (from its `study.yaml`), with its output folder where it now lies."""
    directory = Path(directory)
    if not (directory / STUDY_COPY).is_file():
        raise ValueError(f"{directory}: no {STUDY_COPY}; is this a study's output folder (`study run` writes it)?")
    return load_study(directory / STUDY_COPY, output_dir=str(directory), check_recipes=False)


def cell_identity(cell: Cell, processes: int = 1) -> dict:
    """The run identity the cell's `results.json` must carry, data fingerprint aside (it is checked by the run)."""
    *parsed, _ = parse_arguments(list(cell.argv))
    return without_fingerprint(arguments_identity(*parsed, world_size=processes, data_fingerprint=""))


def without_fingerprint(identity: dict) -> dict:
    return {key: value for key, value in identity.items() if key != "data_fingerprint"}
