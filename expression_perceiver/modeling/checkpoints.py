"""A checkpoint folder checked against its model family and its weights before any model is built (not part of the
Hub bundle): what fine-tuning and prediction load, one clear line for anything that does not fit."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

from ..hub import first_line
from .families import FAMILIES, MODEL_TYPES
from .modeling_expression_perceiver import PROTEIN_DNA_HEAD_KEY_MAPPING, PerceiverExpressionConfig
from .tokenization_expression_perceiver import AminoAcidTokenizer


def read_checkpoint(folder: str | Path, head_optional: bool = False):
    """The configuration of a checkpoint folder of one of our model types, checked against its family and its
    weights before any model is built, and its safetensors weight files: `(config, files)`. Anything that does not
    fit is a `ValueError` of one line (without the checkpoint's name, which callers put first):

    - `config.json` is read as data: its `model_type` must be one of ours, whose own configuration class reads it
      (no code in the folder is ever run); its `architectures` must name that family's classes, and each encoder's
      `vocab_size` must hold the ids of its family's tokenizer, so a `model_type` edited onto another family's
      weights is refused;
    - only safetensors weights are read (never a pickle): their headers' tensor names and shapes, no tensor data,
      against the state dict of the model the config builds on the meta device (no memory, no initialisation).
      A mismatch names the config field that explains it when one does (found by building the model again with each
      field changed, and seeing which tensors change), the tensor and both shapes; missing and unexpected tensors
      are named. With `head_optional`, a checkpoint without the regression head (a base model's) passes.
    """
    folder = Path(folder)
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read its config.json ({first_line(error)})") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise ValueError(f"a {model_type!r} checkpoint, not one of {', '.join(MODEL_TYPES)} (config.json model_type)")
    family = FAMILIES[model_type]
    try:
        config = family.config_class.from_pretrained(folder)
    except Exception as error:  # a field the configuration refuses, in transformers' or our own words
        raise ValueError(f"cannot read its config.json ({first_line(error)})") from None

    classes = {cls.__name__: f.model_type for f in FAMILIES.values() for cls in (f.model_class, f.head_class)}
    foreign = [name for name in config.architectures or [] if classes.get(name) != model_type]
    if foreign:
        owner = f", a {classes[foreign[0]]} class" if foreign[0] in classes else ", not one of its classes"
        raise ValueError(
            f"config.json says model_type {model_type!r} but architectures {foreign[0]}{owner}: the model_type does "
            "not match the weights"
        )
    encoders = [("", config)]
    if family.reads_protein:
        encoders = [("dna_config.", config.dna_config), ("protein_config.", config.protein_config)]
    for (prefix, encoder), tokenizer in zip(encoders, [family.tokenizer(), AminoAcidTokenizer()], strict=False):
        ids = max(tokenizer.get_vocab().values()) + 1
        if encoder.vocab_size < ids:
            raise ValueError(
                f"config.json {prefix}vocab_size is {encoder.vocab_size}, but a {model_type} reads {ids} token ids "
                f"({type(tokenizer).__name__}): the model_type does not match the weights"
            )

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"cannot load its weights: {index.name} cannot be read ({first_line(error)})") from None
        files = [folder / name for name in names]
    else:
        files = [folder / "model.safetensors"]
    absent = [path.name for path in files if not path.is_file()]
    if absent and not index.is_file() and any(folder.glob("pytorch_model*.bin")):
        raise ValueError(
            "cannot load its weights: it holds PyTorch pickle weights only (pytorch_model.bin); this package reads "
            "safetensors weights (model.safetensors), never a pickle"
        )
    if absent:
        raise ValueError(f"cannot load its weights: {absent[0]} is missing (an unfinished or partial checkpoint?)")
    found: dict[str, tuple[int, ...]] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                    found[name] = tuple(weights.get_slice(name).get_shape())
        except Exception as error:  # safetensors' own error: a cut file, a header that is not JSON, not safetensors
            raise ValueError(f"cannot load its weights: {path.name} is not readable safetensors ({error})") from None
    if family.reads_protein:  # the earlier Protein&DNA head layout, read as today's (as `from_pretrained` does)
        for pattern, replacement in PROTEIN_DNA_HEAD_KEY_MAPPING.items():
            found = {re.sub(pattern, replacement, name): shape for name, shape in found.items()}

    def shapes(candidate) -> dict[str, tuple[int, ...]]:
        with torch.device("meta"):
            model = family.head_class(candidate)
        return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}

    def differing_dims(name: str, other: dict[str, tuple[int, ...]]) -> set[int]:
        if len(other[name]) != len(expected[name]):
            return set(range(max(len(other[name]), len(expected[name]))))
        return {i for i, (a, b) in enumerate(zip(other[name], expected[name], strict=True)) if a != b}

    expected = shapes(config)
    head = {name for name in expected if name.startswith("head.")}
    missing = [name for name in expected if name not in found]
    if head_optional and head <= set(missing):  # a base model's checkpoint: the head is new
        missing = [name for name in missing if name not in head]
    unexpected = [name for name in found if name not in expected]
    differing = [name for name in expected if name in found and found[name] != expected[name]]
    if not (missing or unexpected or differing):
        return config, files

    # Which field explains which tensor: the model built again with each field changed (larger and smaller integers,
    # the other boolean or encoding, a tower block more or less). A change explains the tensors it resizes, and the
    # tensors it removes or adds when it removes none the weights hold.
    effects: dict[str, tuple[set[str], dict[str, set[int]]]] = {}

    def changing(field: str, changed) -> None:
        try:
            other = shapes(changed)
        except Exception:  # a value no model is built with: it explains nothing
            return
        keys, dims = effects.setdefault(field, (set(), {}))
        if not (set(expected) - set(other)) & set(found):
            keys |= set(other) ^ set(expected)
        for name in set(other) & set(expected):
            if other[name] != expected[name]:
                dims.setdefault(name, set()).update(differing_dims(name, other))

    fields = [name for name, kind in PerceiverExpressionConfig.__annotations__.items() if "int" in str(kind)]
    for prefix, encoder in encoders:
        for field in [*fields, "use_conv_branch", "position_encoding"]:
            value = getattr(encoder, field, None)
            if isinstance(value, bool):
                variants = [not value]
            elif isinstance(value, int):
                variants = [value + 2, value // 2] if value > 1 else [value + 2]
            elif field == "position_encoding":
                variants = ["fixed" if value == "learnable" else "learnable"]
            elif field == "conv_tower_channels" and value:
                variants = [[size + 2 for size in value], [*value, value[-1]], value[:-1]]
            else:
                continue
            for variant in variants:
                changed = copy.deepcopy(config)
                setattr(getattr(changed, prefix[:-1]) if prefix else changed, field, variant)
                changing(prefix + field, changed)
    changed = copy.deepcopy(config)
    changed.num_labels = config.num_labels + 1
    changing("num_labels", changed)

    def explaining(name: str) -> list[str]:
        if name in differing:
            dims = differing_dims(name, found)
            exact = [field for field, (_, changed) in effects.items() if changed.get(name) == dims]
            return exact or [field for field, (_, changed) in effects.items() if changed.get(name, set()) & dims]
        return [field for field, (keys, _) in effects.items() if name in keys]

    # The fewest fields that explain every tensor that can be explained: those that alone explain one, then the
    # field explaining most of the rest, and so on; a field that explains the same tensors as a chosen one is named
    # beside it.
    problems = {name: explaining(name) for name in [*differing, *missing, *unexpected]}
    chosen = list(dict.fromkeys(candidates[0] for candidates in problems.values() if len(candidates) == 1))
    left = {name for name, candidates in problems.items() if candidates and not set(candidates) & set(chosen)}
    while left:
        counts: dict[str, int] = {}
        for name in sorted(left, key=list(problems).index):
            for field in problems[name]:
                counts[field] = counts.get(field, 0) + 1
        best = max(counts, key=lambda field: counts[field])  # the first of equals, in the order fields were tried
        chosen.append(best)
        left = {name for name in left if best not in problems[name]}
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, candidates in problems.items():
        field = next((field for field in chosen if field in candidates), None)
        groups.setdefault((field,) if field else (), []).append(name)
    for fields_named in list(groups):
        if fields_named:
            names = groups.pop(fields_named)
            equals = [f for f in effects if f not in chosen and all(f in problems[name] for name in names)]
            groups[fields_named + tuple(equals)] = names

    def value_of(field: str):
        prefix, _, name = field.rpartition(".")
        return getattr(getattr(config, prefix) if prefix else config, name)

    def shown(shape: tuple[int, ...]) -> str:
        return "[" + ", ".join(str(size) for size in shape) + "]"

    def listed(names: list[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    parts = []
    for candidates, names in groups.items():
        clauses = []
        stated = " or ".join(candidates)
        sizes = [name for name in names if name in differing]
        if sizes:
            example = sizes[0]
            if len(candidates) == 1:  # a tensor whose one changed size is the field itself tells the weights' value
                for name in sizes:
                    dims = differing_dims(name, found)
                    if len(dims) == 1 and expected[name][min(dims)] == value_of(candidates[0]):
                        example = name
                        stated = f"{candidates[0]} is {value_of(candidates[0])} in config.json, "
                        stated += f"{found[name][min(dims)]} in the weights"
                        break
            more = len(sizes) - 1
            more = f" (and {more} more tensor{'s' if more > 1 else ''})" if more else ""
            clauses.append(
                f"{example} is {shown(found[example])} in the weights, {shown(expected[example])} by config.json{more}"
            )
        absent = [name for name in names if name in missing]
        if absent:
            base = " (a base model's checkpoint, without the regression head)" if set(absent) == head else ""
            clauses.append(f"missing from the weights: {listed(absent)}{base}")
        extra = [name for name in names if name in unexpected]
        if extra:
            clauses.append(f"in the weights but not in the model config.json builds: {listed(extra)}")
        parts.append((f"{stated}: " if stated else "") + "; ".join(clauses))
    named = files[0].name if len(files) == 1 else f"its {len(files)} safetensors files"
    summary = "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more mismatches" if len(parts) > 4 else "")
    raise ValueError(f"cannot load its weights: config.json does not match {named}: {summary}")
