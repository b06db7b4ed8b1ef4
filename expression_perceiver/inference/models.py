"""Models to predict with: a local checkpoint folder or a Hub repository (`org/name`, `org/name@revision`), loaded
with this package's classes and the checkpoint's own tokenizer, with what a prediction must record of it.

A Hub model is fetched with `snapshot_download` into the Hugging Face cache (checked against the Hub's record of
each file, as training does before fine-tuning; with `HF_HUB_OFFLINE=1` the cached copy is used as it is), so a model
fetched once works offline afterwards. The revision a prediction used is the snapshot's resolved commit hash.

What a checkpoint tells about its outputs:

- `config.label_mean` / `config.label_std` (written by every training run, see `training.trainer.build_model`): the
  train split's label mean and standard deviation. The model's logits are standardised labels; `logits * label_std
  + label_mean` is in the data's units. A checkpoint without them predicts z-scores, and says so.
- the outputs' names (`id2label`) and units (`label_units`), the features' names (`feature_names`) and the masking
  the run trained with (`training_masking`, `training_seed`), all in `config.json` (`training.trainer.
  record_model_facts`). A model trained with `--mask_mode drop` read its validation and test inputs with the masked
  positions removed; prediction does the same (`evaluation_collator`).

Checkpoints written before these facts moved into the config kept them in the run's `results.json`; for those
alone they are read from there into the loaded config (`adopt_run_report_facts`), so the same checkpoint gives the
same names and numbers. Nothing else reads `results.json`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoTokenizer, PreTrainedModel

from ..data.dataset_dict import DatasetMetadata
from ..data.standardization import calibrated_scale
from ..data_collators import MaskingCollator, MaskingSettings
from ..data_collators.masking import arguments_as_fields
from ..formats import PROTEIN_TOKENIZER_FOLDER
from ..hub import ModelLocationError, ModelSource, file_sha256, first_line
from ..hub import resolve_model as resolve_location
from ..modeling import FAMILIES, AminoAcidTokenizer, ModelFamily
from ..modeling.checkpoints import read_checkpoint

logger = logging.getLogger(__name__)

RUN_RESULTS_FILE = "results.json"
DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


class ModelLoadError(ValueError):
    """A model that cannot be used (no such folder or Hub repository, no weights, not one of this package's model
    types, a config that does not fit its weights or its family, members of an ensemble that disagree). The message
    is one line naming the model."""


def resolve_model(spec: str) -> ModelSource:
    """The local folder of a model folder or Hub id (`hub.resolve_model`), errors naming the model."""
    try:
        return resolve_location(str(spec))
    except ModelLocationError as error:
        raise ModelLoadError(f"model {spec}: {error}") from None


def has_named_labels(config) -> bool:
    labels = [config.id2label[i] for i in range(config.num_labels)] if config.id2label else []
    return bool(labels) and not any(DEFAULT_LABEL.match(str(label)) for label in labels)


def adopt_run_report_facts(config, encoder_config, folder: Path) -> None:
    """For a checkpoint saved before its facts moved into `config.json`: the label names and units, the feature
    names, the masking and the seed from the training run's `results.json` beside it, into the loaded config (in
    memory). A config that has them already is left alone."""
    path = folder / RUN_RESULTS_FILE
    if config.training_masking is not None or not path.is_file():
        return
    try:
        results = json.loads(path.read_text())
        data = results.get("data") or {}
        metadata = DatasetMetadata.from_dict(data) if data else None
        masking = (results.get("arguments") or {}).get("masking") or {}
    except (json.JSONDecodeError, TypeError, AttributeError) as error:
        logger.warning("%s: cannot be read (%s); the model's outputs are named by its config", path, error)
        return
    if metadata is not None and len(metadata.label_names) == config.num_labels and not has_named_labels(config):
        config.id2label = dict(enumerate(metadata.label_names))
        config.label2id = {name: index for index, name in enumerate(metadata.label_names)}
        config.label_units = list(metadata.label_units)
    if metadata is not None and encoder_config.feature_names is None:
        if len(metadata.feature_names) == encoder_config.num_features and encoder_config.num_features:
            encoder_config.feature_names = list(metadata.feature_names)
    config.training_masking = arguments_as_fields(masking)  # checked where the collator is built
    config.training_seed = results.get("seed")


@contextmanager
def quiet_transformers():
    """Loading a base model from a checkpoint with a head logs the head's unused weights (expected, not news), and
    loading shows a progress bar per model that would bury the one line that matters."""
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.logging.enable_progress_bar()


@dataclass
class LoadedModel:
    """A model ready to run, with its tokenizer(s), its evaluation collator and what a prediction records of it."""

    source: ModelSource
    model: PreTrainedModel
    family: ModelFamily
    tokenizer: Any
    protein_tokenizer: Any | None
    tokenizer_origin: str
    weights: dict[str, str]
    collator: MaskingCollator = field(init=False)

    def __post_init__(self):
        self.collator = evaluation_collator(self)

    @property
    def config(self):
        return self.model.config

    @property
    def spec(self) -> str:
        return self.source.spec

    @property
    def encoder_config(self):
        """The configuration of the main (promoter or protein) encoder."""
        return self.config.dna_config if self.family.reads_protein else self.config

    @property
    def max_length(self) -> int:
        return int(self.encoder_config.max_sequence_length)

    @property
    def protein_max_length(self) -> int | None:
        return int(self.config.protein_config.max_sequence_length) if self.family.reads_protein else None

    @property
    def num_features(self) -> int:
        return int(self.encoder_config.num_features)

    @property
    def num_labels(self) -> int:
        return int(self.config.num_labels)

    @property
    def label_scale(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean, std) that take the model's outputs to the training labels' units, per output (the calibration, when
        the checkpoint carries one, folded in), or None when the checkpoint does not store them."""
        mean, std = getattr(self.config, "label_mean", None), getattr(self.config, "label_std", None)
        if mean is None or std is None:
            if self.calibration:
                raise ModelLoadError(f"model {self.spec}: config has a calibration but no label_mean/label_std")
            return None
        mean, std = np.atleast_1d(np.asarray(mean, dtype=np.float64)), np.atleast_1d(np.asarray(std, dtype=np.float64))
        if mean.shape != (self.num_labels,) or std.shape != (self.num_labels,):
            raise ModelLoadError(
                f"model {self.spec}: config label_mean/label_std have {mean.size}/{std.size} values for "
                f"{self.num_labels} outputs"
            )
        calibration = self.calibration
        if calibration and (len(calibration["slope"]), len(calibration["intercept"])) != (self.num_labels,) * 2:
            raise ModelLoadError(f"model {self.spec}: config calibration does not have one line per output")
        return calibrated_scale(mean, std, calibration)

    @property
    def calibration(self) -> dict | None:
        """The line fitted on the validation split (config `calibration`), applied with the label scale; None when
        the model carries none."""
        return getattr(self.config, "calibration", None) or None

    @property
    def feature_mean(self) -> tuple[float, ...] | None:
        """Training means of the features when the checkpoint stores them (config `feature_mean`), else None."""
        mean = getattr(self.encoder_config, "feature_mean", None)
        if mean is None:
            mean = getattr(self.config, "feature_mean", None)
        return tuple(float(value) for value in mean) if mean is not None else None

    @property
    def output_names(self) -> list[str]:
        """The outputs' names: the config's labels (`id2label`, the training data's label names) when they are
        named, else `output` (`output_0`, `output_1`, ... with several), as the pipeline names them."""
        if has_named_labels(self.config):
            return [str(self.config.id2label[i]) for i in range(self.num_labels)]
        return ["output"] if self.num_labels == 1 else [f"output_{i}" for i in range(self.num_labels)]

    @property
    def label_units(self) -> list[str] | None:
        units = getattr(self.config, "label_units", None)
        return list(units) if units and len(units) == self.num_labels else None

    @property
    def feature_names(self) -> list[str] | None:
        names = getattr(self.encoder_config, "feature_names", None)
        return list(names) if names else None

    def describe(self) -> dict[str, Any]:
        scale = self.label_scale
        described = {
            **self.source.describe(),
            "model_type": self.config.model_type,
            "class": type(self.model).__name__,
            "weights_sha256": self.weights,
            "tokenizer": self.tokenizer_origin,
            "max_sequence_length": self.max_length,
            "num_features": self.num_features,
            "num_labels": self.num_labels,
            "label_mean": getattr(self.config, "label_mean", None) if scale else None,
            "label_std": getattr(self.config, "label_std", None) if scale else None,
            "calibration": self.calibration,
            "evaluation_masking": describe_evaluation_masking(self.collator),
        }
        if self.family.reads_protein:
            described["protein_max_sequence_length"] = self.protein_max_length
        if self.label_units:
            described["label_units"] = self.label_units
        return described


def evaluation_collator(loaded: LoadedModel) -> MaskingCollator:
    """The collator the training run evaluated with: padding only, or, for a run that trained with `mask_mode drop`,
    the same positions removed. Without `idx` a random span is keyed by the sequence itself (deterministic, the same
    in any batch), where training keyed it by the row of the split."""
    try:
        masking = MaskingSettings.from_dict(getattr(loaded.config, "training_masking", None) or {})
        if masking.mode != "drop":
            masking = MaskingSettings()  # mask mode leaves evaluation inputs untouched
        return MaskingCollator(
            tokenizer=loaded.tokenizer,
            masking=masking,
            seed=int(getattr(loaded.config, "training_seed", None) or 0),
            training=False,
            protein_tokenizer=loaded.protein_tokenizer,
        )
    except ValueError as error:
        raise ModelLoadError(f"model {loaded.spec}: its config's training_masking is not usable ({error})") from None


def describe_evaluation_masking(collator: MaskingCollator) -> str:
    if not collator.applies_masking():
        return "none"
    return f"{collator.strategy}, {collator.describe_span()} removed (mode drop, as in the run's evaluation)"


def _load_tokenizers(source: ModelSource, family: ModelFamily) -> tuple[Any, Any | None, str]:
    folder = source.folder
    has_tokenizer = (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()
    try:  # this package's tokenizer classes only: code in the folder is never run
        tokenizer = (
            AutoTokenizer.from_pretrained(folder, trust_remote_code=False) if has_tokenizer else family.tokenizer()
        )
        protein_tokenizer = None
        if family.reads_protein:
            protein_folder = folder / PROTEIN_TOKENIZER_FOLDER
            protein_tokenizer = (
                AutoTokenizer.from_pretrained(protein_folder, trust_remote_code=False)
                if (protein_folder / "tokenizer_config.json").is_file()
                else AminoAcidTokenizer()
            )
    except Exception as error:  # transformers' and tokenizers' own error types
        raise ModelLoadError(f"model {source.spec}: cannot load its tokenizer ({first_line(error)})") from None
    origin = "checkpoint" if has_tokenizer else f"{type(tokenizer).__name__} (the checkpoint has none)"
    return tokenizer, protein_tokenizer, origin


def load_model(spec: str | os.PathLike, base_model: bool = False) -> LoadedModel:
    """Resolves and loads one model: with its head (the family's `...ForSequenceClassification`, to predict) or the
    base model (to embed), in float32, in evaluation mode, on the CPU.

    Before anything is built, `modeling.checkpoints.read_checkpoint` checks the checkpoint: its config.json's model_type
    is one of ours and matches its family (architectures, vocabulary), and its safetensors weights (their headers)
    have every tensor, and only the tensors, of the model the config builds, at the same shapes (a mismatch names the
    config field, the tensor and both shapes). The model is then loaded with this package's own classes from its
    safetensors weights: no code and no pickle in the folder is ever run. A base model's checkpoint (no regression
    head) can be embedded, not predicted with."""
    source = resolve_model(str(spec))
    folder = source.folder
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"model {source.spec}: {folder} holds no config.json (not a model checkpoint)")
    try:
        config, weights = read_checkpoint(folder, head_optional=base_model)
    except ValueError as error:
        raise ModelLoadError(f"model {source.spec}: {error}") from None
    family = FAMILIES[config.model_type]
    model_class = family.model_class if base_model else family.head_class
    try:
        with quiet_transformers():
            model = model_class.from_pretrained(folder, config=config, use_safetensors=True, dtype=torch.float32)
    except Exception as error:  # what a header cannot show: tensor data cut short or unreadable
        raise ModelLoadError(f"model {source.spec}: cannot load its weights ({first_line(error)})") from None
    model.eval()
    tokenizer, protein_tokenizer, origin = _load_tokenizers(source, family)
    hashes = {path.name: file_sha256(path) for path in weights}
    adopt_run_report_facts(model.config, model.config.dna_config if family.reads_protein else model.config, folder)
    loaded = LoadedModel(source, model, family, tokenizer, protein_tokenizer, origin, hashes)
    check_tokenizer(loaded)
    return loaded


def check_tokenizer(loaded: LoadedModel) -> None:
    """The checkpoint's tokenizer must read the family's vocabulary (a protein model's folder with DNA tokenizer files
    would read every amino acid as unknown), and its ids must be ids the model embeds."""
    pairs = [(loaded.tokenizer, loaded.encoder_config.vocab_size, "tokenizer", loaded.family.tokenizer())]
    if loaded.family.reads_protein:
        protein = (loaded.protein_tokenizer, loaded.config.protein_config.vocab_size, "protein tokenizer")
        pairs.append((*protein, AminoAcidTokenizer()))
    for tokenizer, vocab_size, what, expected in pairs:
        if tokenizer.get_vocab() != expected.get_vocab():
            raise ModelLoadError(
                f"model {loaded.spec}: its {what} ({type(tokenizer).__name__}) does not read the vocabulary of a "
                f"{loaded.config.model_type} ({type(expected).__name__})"
            )
        largest = max(tokenizer.get_vocab().values())
        if largest >= vocab_size:
            raise ModelLoadError(
                f"model {loaded.spec}: its {what} has ids up to {largest}, the model embeds {vocab_size}"
            )


def compatibility(loaded: LoadedModel) -> dict[str, Any]:
    """What members of an ensemble must share: they read the same inputs and predict the same outputs in the same
    units."""
    signature = {
        "model type": loaded.config.model_type,
        "alphabet": loaded.family.alphabet,
        "tokenizer vocabulary": sorted(loaded.tokenizer.get_vocab().items()),
        "max_sequence_length (window)": loaded.max_length,
        "num_features": loaded.num_features,
        "number of outputs": loaded.num_labels,
        "units": "original (label_mean/label_std)" if loaded.label_scale is not None else "z-scores",
    }
    if loaded.family.reads_protein:
        signature["protein max_sequence_length"] = loaded.protein_max_length
    return signature


def check_ensemble(members: list[LoadedModel]) -> None:
    """`ModelLoadError` naming the first member that differs from the first one in what they must share."""
    first = members[0]
    expected = compatibility(first)
    for member in members[1:]:
        found = compatibility(member)
        for key, value in expected.items():
            if found[key] != value:
                shown = (lambda v: "a different one") if key == "tokenizer vocabulary" else repr
                raise ModelLoadError(
                    f"model {member.spec}: {key} {shown(found[key])} where {first.spec} has {shown(value)}; the "
                    "models of an ensemble must read the same inputs and predict the same outputs"
                )
        if first.output_names != member.output_names:
            raise ModelLoadError(
                f"model {member.spec}: predicts {', '.join(member.output_names)} where {first.spec} predicts "
                f"{', '.join(first.output_names)}; the models of an ensemble must predict the same outputs"
            )


__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "ModelSource",
    "check_ensemble",
    "load_model",
    "resolve_model",
]
