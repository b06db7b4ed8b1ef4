"""Attributions: which bases (or residues) of each input move its prediction, by one of five methods, with one model
or an ensemble. `expression-perceiver attribute` calls `attribute`.

Methods (`METHODS`):

- `ism`: in-silico mutagenesis, every position changed to every other letter, as `mutagenesis` scores them; the
  hypothetical contribution of letter k at a position is the prediction with k there minus the mean over the
  position's letters;
- `gradient_x_input`: the gradient of the prediction with respect to the one-hot input, centred over the letters at
  each position (the gradient's component along the one-hot simplex, which is all a one-hot input can move), times
  the input;
- `integrated_gradients` (Captum's `IntegratedGradients`, Gauss-Legendre, `steps` points) and `deeplift_shap`
  (Captum's `DeepLift` over `num_references` references, averaged as DeepLIFT/SHAP averages them): per letter
  (x - reference) x multiplier, averaged over the references; hypothetical contributions as DeepLIFT defines them
  for one-hot inputs (each letter's multiplier minus the reference's), averaged over the references. References:
  dinucleotide-shuffled copies of each sequence (`shuffle`, tangermeme's shuffle, seeded; residue-shuffled for
  proteins), every letter at 1/letters (`uniform`), or all zero (`zero`: N at every position);
- `cross_attention`: the model's own cross-attention weights over the positions (`output_attentions=True`), each
  head's averaged over the latents, per Perceiver layer.

Gradient methods run the models on their one-hot input (`inputs_one_hot`), whose outputs are the token path's.
Values are in the predictions' units (the training labels' when the checkpoint stores their standardisation, like
`predict`), for output `target`. Ensembles: attributions are the members' mean, and their spread
(`attributions_std`, ddof=1) is kept. Completeness (integrated gradients and DeepLIFT/SHAP): per sequence,
|sum of attributions (sequence and features) - (prediction - mean reference prediction)|, flagged above
`COMPLETENESS_TOLERANCE` of the label's standard deviation.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.errors import DataError
from .api import prepare_inputs
from .attribution_files import AttributionWriter
from .inputs import CropRule, Example
from .models import LoadedModel
from .mutagenesis import LETTERS, substitution_mask
from .predictor import Predictor
from .substitutions import INCREMENTAL, incremental_scan, scan_path
from .task import Chunk, InferenceRun, RunSummary, report_lines
from .windows import substitutions
from .writers import sidecar_path

METHODS = ("ism", "gradient_x_input", "integrated_gradients", "deeplift_shap", "cross_attention")
REFERENCE_KINDS = ("shuffle", "uniform", "zero")
METHODS_WITH_REFERENCES = ("integrated_gradients", "deeplift_shap")
# |sum of attributions - (prediction - reference prediction)| above this share of the label's standard deviation
# (one z-score unit) flags a sequence as incomplete.
COMPLETENESS_TOLERANCE = 0.01
DEFAULT_ATTRIBUTION_BATCH_SIZE = 8


@dataclass
class AttributionSettings:
    """How attributions are computed (the sidecar records these)."""

    method: str = "integrated_gradients"
    target: int = 0
    references: str = "shuffle"
    num_references: int = 10
    steps: int = 50
    seed: int = 0

    def check(self, num_outputs: int, reads_protein: bool) -> None:
        if self.method not in METHODS:
            raise ValueError(f"--method {self.method}: choose one of {', '.join(METHODS)}")
        if self.references not in REFERENCE_KINDS:
            raise ValueError(f"--references {self.references}: choose one of {', '.join(REFERENCE_KINDS)}")
        if not 0 <= self.target < num_outputs:
            raise ValueError(f"--target {self.target}: the model has {num_outputs} output(s) (0..{num_outputs - 1})")
        if self.num_references < 1 or self.steps < 2:
            raise ValueError("--num-references must be at least 1 and --steps at least 2")
        if reads_protein:
            raise ValueError(
                "attribute reads DNA and protein models; a Protein&DNAPerceiver reads two sequences, attribute "
                "its promoter or protein with a single-sequence model"
            )

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"method": self.method, "target": self.target, "seed": self.seed}
        if self.method in METHODS_WITH_REFERENCES:
            described.update(references=self.references, num_references=self.reference_count)
        if self.method == "integrated_gradients":
            described["steps"] = self.steps
        return described

    @property
    def reference_count(self) -> int:
        """Shuffles differ from one another; a uniform or zero reference is one reference."""
        return self.num_references if self.references == "shuffle" else 1


# --- the models as functions of a one-hot input ------------------------------------------------------------------


class OneHotRegression(nn.Module):
    """One output of a model as a function of its one-hot input (and features), in z-score units: the form Captum
    differentiates. The attention mask and the features travel as extra arguments."""

    def __init__(self, model: nn.Module, target: int):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, one_hot: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        features, mask = (extra[0], extra[1]) if len(extra) == 2 else (None, extra[0])
        logits = self.model(inputs_one_hot=one_hot, attention_mask=mask, features=features).logits
        return logits[:, self.target]


def letter_ids(member: LoadedModel) -> torch.Tensor:
    first = member.encoder_config.first_letter_token_id
    return torch.arange(first, first + member.encoder_config.alphabet_size)


def one_hot_of(input_ids: torch.Tensor, member: LoadedModel) -> torch.Tensor:
    """(batch, length, letters) float32 one-hot of the letters; N, [MASK] and padding all zero."""
    return (input_ids[..., None] == letter_ids(member).to(input_ids.device)).float()


def model_letters(member: LoadedModel) -> str:
    tokens = member.tokenizer.convert_ids_to_tokens(letter_ids(member).tolist())
    return "".join(tokens)


# --- references ---------------------------------------------------------------------------------------------------


def make_references(
    one_hot: torch.Tensor, lengths: Sequence[int], settings: AttributionSettings, seeds: Sequence[int]
) -> torch.Tensor:
    """(batch, references, length, letters): each sequence's references over its own positions. Positions without a
    letter (N, padding) are N in every reference too, so they contribute nothing."""
    batch, length, letters = one_hot.shape
    count = settings.reference_count
    if settings.references == "zero":
        return one_hot.new_zeros(batch, count, length, letters)
    if settings.references == "uniform":
        references = one_hot.new_full((batch, count, length, letters), 1.0 / letters)
    else:
        references = one_hot.new_zeros(batch, count, length, letters)
        for index, size in enumerate(lengths):
            references[index, :, :size] = shuffled(one_hot[index, :size], count, seeds[index], letters == 4)
    references[(one_hot.sum(-1) == 0)[:, None].expand(-1, count, -1)] = 0.0
    return references


def shuffled(one_hot: torch.Tensor, count: int, seed: int, dinucleotide: bool) -> torch.Tensor:
    """`count` shuffles of one (length, letters) sequence: dinucleotide-preserving for DNA (tangermeme), of its
    letters for proteins; N positions stay where they are in a letter shuffle, and join the walk as tangermeme
    allows in a dinucleotide one."""
    if dinucleotide and one_hot.shape[0] > 2:
        from tangermeme.ersatz import dinucleotide_shuffle

        draws = dinucleotide_shuffle(one_hot.T[None].contiguous(), n=count, random_state=seed, allow_N=True)
        return draws[0].transpose(1, 2).to(one_hot.dtype)
    generator = np.random.default_rng(seed)
    out = one_hot[None].repeat(count, 1, 1)
    for draw in range(count):
        out[draw] = one_hot[torch.as_tensor(generator.permutation(one_hot.shape[0]))]
    return out


def sequence_seed(seed: int, example_id: str, index: int) -> int:
    """A sequence's own shuffle seed: from the run's seed and the sequence's id and place, so a sequence gets the
    same references whatever its batch, chunk or process."""
    return (seed * 1_000_003 + zlib.crc32(example_id.encode()) + index * 7919) % (2**32)


# --- one batch, one member ----------------------------------------------------------------------------------------


@dataclass
class MemberAttributions:
    """One member's results for a batch, in the predictions' units: (batch, length, letters) arrays and per-sequence
    values."""

    attributions: np.ndarray | None = None
    hypothetical: np.ndarray | None = None
    cross_attention: np.ndarray | None = None  # (batch, layers, heads, length)
    prediction: np.ndarray | None = None
    reference_prediction: np.ndarray | None = None
    feature_attributions: np.ndarray | None = None


def gradient_x_input(function: OneHotRegression, one_hot, features, mask) -> MemberAttributions:
    one_hot = one_hot.clone().requires_grad_(True)
    inputs = [one_hot]
    if features is not None:
        features = features.clone().requires_grad_(True)
        inputs.append(features)
    with torch.enable_grad():
        output = function(one_hot, *([features] if features is not None else []), mask)
        gradients = torch.autograd.grad(output.sum(), inputs)
    centred = gradients[0] - gradients[0].mean(-1, keepdim=True)
    return MemberAttributions(
        attributions=(centred * one_hot.detach()).numpy(),
        hypothetical=centred.numpy(),
        prediction=output.detach().double().numpy(),
        feature_attributions=(gradients[1] * features.detach()).numpy() if features is not None else None,
    )


def multipliers_against_references(
    method: str, function: OneHotRegression, one_hot, features, mask, references, reference_features, steps: int
) -> MemberAttributions:
    """Integrated gradients or DeepLIFT against each reference (Captum, without multiplying by the inputs: the
    multipliers), combined as DeepLIFT/SHAP combines them."""
    from captum.attr import DeepLift, IntegratedGradients

    batch, count = references.shape[:2]
    expanded = one_hot.repeat_interleave(count, 0)
    flat_references = references.flatten(0, 1)
    extra_inputs: tuple = ()
    extra_baselines: tuple = ()
    if features is not None:
        extra_inputs = (features.repeat_interleave(count, 0),)
        extra_baselines = (reference_features.expand_as(extra_inputs[0]),)
    expanded_mask = mask.repeat_interleave(count, 0) if mask is not None else None
    inputs = (expanded, *extra_inputs)
    baselines = (flat_references, *extra_baselines)
    with torch.enable_grad(), warnings.catch_warnings():
        # Captum announces that it sets requires_grad and hooks; both are what is asked of it here.
        warnings.filterwarnings("ignore", category=UserWarning, module="captum")
        if method == "integrated_gradients":
            explainer = IntegratedGradients(function, multiply_by_inputs=False)
            found = explainer.attribute(
                inputs, baselines, additional_forward_args=(expanded_mask,), n_steps=steps,
                internal_batch_size=len(expanded),
            )  # fmt: skip
        else:
            explainer = DeepLift(function, multiply_by_inputs=False)
            found = explainer.attribute(inputs, baselines, additional_forward_args=(expanded_mask,))
    multipliers = found[0].detach()
    with torch.no_grad():
        prediction = function(one_hot, *((features,) if features is not None else ()), mask).double()
        reference_prediction = function(flat_references, *extra_baselines, expanded_mask).double()
    difference = expanded - flat_references
    attributions = (difference * multipliers).unflatten(0, (batch, count)).mean(1)
    own = (flat_references * multipliers).sum(-1, keepdim=True)
    hypothetical = (multipliers - own).unflatten(0, (batch, count)).mean(1)
    feature_attributions = None
    if features is not None:
        feature_difference = extra_inputs[0] - extra_baselines[0]
        feature_attributions = (feature_difference * found[1].detach()).unflatten(0, (batch, count)).mean(1).numpy()
    return MemberAttributions(
        attributions=attributions.numpy(),
        hypothetical=hypothetical.numpy(),
        prediction=prediction.numpy(),
        reference_prediction=reference_prediction.unflatten(0, (batch, count)).mean(1).numpy(),
        feature_attributions=feature_attributions,
    )


def cross_attention_maps(member: LoadedModel, batch: dict[str, torch.Tensor]) -> MemberAttributions:
    with torch.no_grad():
        outputs = member.model(**batch, output_attentions=True)
        layers = torch.stack([weights.mean(2) for weights in outputs.cross_attentions], dim=1)
        prediction = outputs.logits[:, 0].double()
    return MemberAttributions(cross_attention=layers.float().numpy(), prediction=prediction.numpy())


# --- the run -----------------------------------------------------------------------------------------------------


class Attributor:
    """Runs one method over batches of prepared examples for every member of a `Predictor` and combines them."""

    def __init__(self, predictor: Predictor, settings: AttributionSettings):
        self.predictor = predictor
        self.settings = settings
        if predictor.device.type != "cpu" and predictor.precision != torch.float32:
            predictor.precision = torch.float32  # gradients and completeness in float32
        self.functions = [OneHotRegression(member.model, settings.target) for member in predictor.members]
        self.letters = model_letters(predictor.first)
        self.incremental_ism = settings.method == "ism" and scan_path(predictor, True) == INCREMENTAL

    def reference_features(self, member: LoadedModel, device) -> torch.Tensor:
        """The features' reference: the training means the checkpoint stores, else zeros (z-scored features)."""
        fill = self.predictor.model_inputs.feature_fill or (0.0,) * member.num_features
        return torch.tensor(fill, dtype=torch.float32, device=device)[None]

    def in_units(self, index: int, values: np.ndarray | None, shift: bool = False) -> np.ndarray | None:
        """z-score values of output `target` in the predictions' units (differences are only scaled)."""
        scale = self.predictor.scales[index]
        if values is None or scale is None:
            return values
        mean, std = scale[0][self.settings.target], scale[1][self.settings.target]
        return values * std + (mean if shift else 0.0)

    def run_batch(self, examples: Sequence[Example]) -> np.ndarray:
        """One dict of arrays per example (see `AttributionWriter.add`), as an object array in the order given."""
        if self.settings.method == "ism":
            members = [self.ism(example) for example in examples]
            per_member = [[member[i] for member in members] for i in range(len(self.predictor.members))]
            one_hot = None
        else:
            per_member, one_hot = [], None
            for index, (member, batch) in enumerate(self.predictor._batches(examples)):
                found, one_hot = self.member_batch(index, member, batch, examples)
                per_member.append(found)
        return self.combine(examples, per_member, one_hot)

    def member_batch(self, index: int, member: LoadedModel, batch: dict, examples: Sequence[Example]):
        settings, function = self.settings, self.functions[index]
        one_hot = one_hot_of(batch["input_ids"], member)
        mask = batch.get("attention_mask")
        mask = mask.bool() if mask is not None else None
        features = batch.get("features")
        features = features.float() if features is not None else None
        if settings.method == "cross_attention":
            found = cross_attention_maps(member, batch)
            found.prediction = self.in_units(index, found.prediction, shift=True)
            return found, one_hot
        if settings.method == "gradient_x_input":
            found = gradient_x_input(function, one_hot, features, mask)
        else:
            lengths = [len(example.sequence) for example in examples]
            seeds = [sequence_seed(settings.seed, example.id, 0) for example in examples]
            references = make_references(one_hot, lengths, settings, seeds)
            reference_features = self.reference_features(member, one_hot.device) if features is not None else None
            found = multipliers_against_references(
                settings.method, function, one_hot, features, mask, references, reference_features, settings.steps
            )
        found.attributions = self.in_units(index, found.attributions)
        found.hypothetical = self.in_units(index, found.hypothetical)
        found.feature_attributions = self.in_units(index, found.feature_attributions)
        found.prediction = self.in_units(index, found.prediction, shift=True)
        found.reference_prediction = self.in_units(index, found.reference_prediction, shift=True)
        return found, one_hot

    def ism(self, example: Example) -> list[MemberAttributions]:
        """Every substitution of the example scored by every member: (length, letters) deltas per member."""
        letters = LETTERS[self.predictor.model_inputs.alphabet]
        if letters != self.letters:
            raise DataError(f"the model's letters {self.letters} are not the alphabet's {letters}")
        sequence = example.sequence
        positions = np.arange(len(sequence))
        made = substitution_mask(sequence, positions, letters)
        rows, columns = np.nonzero(made)
        members = len(self.predictor.members)
        if self.incremental_ism:  # each substitution at the cost of what it changes, as mutagenesis scores it
            shape = (len(positions), len(letters), members, self.predictor.num_outputs)
            ref_pred, alt_pred = incremental_scan(self.predictor, example, positions, letters, rows, columns, shape)
            reference = ref_pred[:, self.settings.target]
            values = np.concatenate([reference[None], alt_pred[rows, columns, :, self.settings.target]])
        else:
            mutants = [
                Example(example.id, mutant, example.features, example.protein_sequence)
                for _, _, mutant in substitutions(sequence, positions, letters)
            ]
            scored = [example, *mutants]
            values = np.concatenate(
                [
                    self.predictor.predict_batch(scored[start : start + 64])[..., self.settings.target]
                    for start in range(0, len(scored), 64)
                ]
            )  # (1 + substitutions, members)
            reference = values[0]
        one_hot = np.frombuffer(sequence.encode(), np.uint8)[:, None] == np.frombuffer(letters.encode(), np.uint8)
        found = []
        for index in range(len(self.predictor.members)):
            filled = np.full(made.shape, reference[index])
            filled[rows, columns] = values[1:, index]
            hypothetical = filled - filled.mean(-1, keepdims=True)
            hypothetical[~one_hot.any(-1)] = 0.0  # N: nothing was substituted there
            found.append(
                MemberAttributions(
                    attributions=hypothetical * one_hot,
                    hypothetical=hypothetical,
                    prediction=np.asarray([reference[index]]),
                )
            )
        return found

    def combine(self, examples, per_member: list, one_hot: torch.Tensor | None) -> np.ndarray:
        """Each example's arrays over its own positions, the members' mean and spread."""
        results = np.empty(len(examples), dtype=object)
        members = len(per_member)
        for row, example in enumerate(examples):
            length = len(example.sequence)
            item: dict[str, Any] = {"id": example.id, "length": length}
            if self.settings.method == "ism":
                found = [member[row] for member in per_member]
                item["one_hot"] = (
                    np.frombuffer(example.sequence.encode(), np.uint8)[:, None]
                    == np.frombuffer(self.letters.encode(), np.uint8)
                ).astype(np.float32)
                picked = {name: [getattr(each, name) for each in found] for name in ("attributions", "hypothetical")}
                picked["prediction"] = [each.prediction[0] for each in found]
            else:
                item["one_hot"] = one_hot[row, :length].numpy()
                picked = {}
                for name in ("attributions", "hypothetical", "feature_attributions"):
                    values = [getattr(each, name) for each in per_member]
                    if values[0] is not None:
                        picked[name] = [value[row, :length] if value.ndim == 3 else value[row] for value in values]
                if per_member[0].cross_attention is not None:
                    picked["cross_attention"] = [each.cross_attention[row, ..., :length] for each in per_member]
                for name in ("prediction", "reference_prediction"):
                    if getattr(per_member[0], name) is not None:
                        picked[name] = [getattr(each, name)[row] for each in per_member]
            for name, values in picked.items():
                stacked = np.stack([np.asarray(value, dtype=np.float64) for value in values])
                item[name] = stacked.mean(0)
                if name == "attributions" and members > 1:
                    item["attributions_std"] = stacked.std(0, ddof=1)
            if "reference_prediction" in item:
                total = item["attributions"].sum() + item.get("feature_attributions", np.zeros(1)).sum()
                item["completeness_error"] = abs(total - (item["prediction"] - item["reference_prediction"]))
            results[row] = item
        return results


# --- writing ------------------------------------------------------------------------------------------------------

POSITION_ARRAYS = ("one_hot", "attributions", "hypothetical", "attributions_std", "cross_attention")
ROW_ARRAYS = ("prediction", "reference_prediction", "completeness_error", "feature_attributions")


class AttributionSink:
    """The chunks of an attribution run into an `AttributionWriter` (a file) or lists (a result in memory)."""

    def __init__(self, writer: AttributionWriter | None):
        self.writer = writer
        self.items: list[dict] = []
        self.rows = 0
        self.incomplete = 0
        self.completeness: list[float] = []

    def add(self, chunk: Chunk) -> None:
        items = list(chunk.values)
        self.rows += len(items)
        for item in items:
            if "completeness_error" in item:
                self.completeness.append(float(item["completeness_error"]))
        if self.writer is None:
            self.items += items
            return
        positions = {name: [item[name] for item in items] for name in POSITION_ARRAYS if name in items[0]}
        rows = {name: np.stack([np.asarray(item[name]) for item in items]) for name in ROW_ARRAYS if name in items[0]}
        self.writer.add([item["id"] for item in items], [item["length"] for item in items], positions, rows)

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.commit()

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()


def positions_of(length: int, tss_index: int | None) -> tuple[np.ndarray, str]:
    if tss_index is None:
        return np.arange(length, dtype=np.int64), "start"
    return np.arange(length, dtype=np.int64) - tss_index, "tss"


def default_tss_index(described: dict[str, Any]) -> int | None:
    """The TSS's index in the windows of an Xpresso HDF5 file or of BED + genome windows (TSS at 10,000 of 20,000);
    unknown (None) for other inputs unless given."""
    from ..formats import XPRESSO_TSS_INDEX

    if described.get("kind") in ("xpresso", "genome"):
        window = described.get("window")
        return XPRESSO_TSS_INDEX - (window[0] if window else 0)
    return None


def attribute(
    inputs: Any,
    models: str | Sequence[str] | Predictor,
    *,
    method: str = "integrated_gradients",
    output: str | os.PathLike | None = None,
    target: int = 0,
    references: str = "shuffle",
    num_references: int = 10,
    steps: int = 50,
    seed: int = 0,
    tss_index: int | None = None,
    features: Any = None,
    fill_missing_features: bool = False,
    crop: CropRule = "start",
    batch_size: int = DEFAULT_ATTRIBUTION_BATCH_SIZE,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> RunSummary | list[dict[str, Any]] | None:
    """Attributions of every input's prediction to its positions and letters (see the module docstring).

    Args:
        inputs, models, features, fill_missing_features, crop, batch_size, device, overwrite, progress: as for
            `predict` (an ensemble's attributions are its members' mean).
        method: one of `METHODS`.
        output: the `.npz` to write (with `<output>.json`); None returns one dict of arrays per input.
        target: which output to explain (0 for single-output models).
        references, num_references, steps: the references of integrated gradients and DeepLIFT/SHAP (`shuffle`,
            `uniform`, `zero`), how many shuffles, and integrated gradients' integration points.
        seed: the shuffles' seed (each sequence's shuffles depend on it and the sequence's id only).
        tss_index: the TSS's index in the input sequences, so positions are written relative to it (known for
            Xpresso HDF5 and BED + genome windows).

    Returns:
        with `output`, a `RunSummary`; else a list of dicts (`id`, `length`, `one_hot`, `attributions`, ...).
    """
    output = Path(output) if output is not None else None
    if output is not None and output.suffix.lower() != ".npz":
        raise ValueError(f"{output.name}: write attributions to a .npz file")
    files = [output, sidecar_path(output)] if output is not None else []
    settings = AttributionSettings(method, target, references, num_references, steps, seed)
    with InferenceRun("attribute", files, batch_size=batch_size, overwrite=overwrite, progress=progress) as run:
        predictor = run.load(Predictor, models, device, None)
        settings.check(predictor.num_outputs, predictor.first.family.reads_protein)
        attributor = Attributor(predictor, settings)
        prepared = prepare_inputs(run, inputs, features, None, fill_missing_features, crop)
        described = prepared.resolved.describe()
        if tss_index is None:
            tss_index = default_tss_index(described)
        total = prepared.resolved.total
        chunks = run.chunks(prepared.examples, run_batch=attributor.run_batch, total=total)
        metadata = {
            "method": method,
            "letters": attributor.letters,
            "alphabet": predictor.model_inputs.alphabet,
            "output": predictor.output_names[target],
            "units": predictor.output_units[target],
            "tss_index": tss_index,
            "models": [member.describe() for member in predictor.members],
            **settings.describe(),
        }
        if output is None:
            sink = run.collect(chunks, AttributionSink(None))
            return sink.items
        positions, origin = positions_of(predictor.model_inputs.max_length, tss_index)
        metadata["origin"] = origin
        constants = {"positions": positions}
        if predictor.model_inputs.num_features:
            constants["feature_names"] = np.asarray(predictor.first.feature_names or [], dtype=str)
        sink = run.write(chunks, lambda: AttributionSink(AttributionWriter(output, metadata, constants)))
        if sink is None:
            return None
        record = run.record(
            {
                "input": described,
                "counts": prepared.preparer.counts_dict(),
                "read_report": report_lines(prepared.preparer.report),
                **settings.describe(),
                "output": predictor.output_names[target],
                "units": predictor.output_units[target],
                "tss_index": tss_index,
                "origin": origin,
            },
            after={
                "completeness": completeness_summary(sink.completeness, predictor),
                "batch_size": run.batch_size,
                "processes": run.processes,
                "rows": sink.rows,
                "wall_time_s": run.wall_time_s(),
            },
        )
        return run.finish(output, record, sink.rows)


def completeness_summary(errors: list[float], predictor: Predictor) -> dict[str, Any] | None:
    """How far the attributions' sums are from the prediction's change, and how many sequences exceed the
    tolerance (a share of the label's standard deviation, in the predictions' units)."""
    if not errors:
        return None
    scale = predictor.scales[0]
    tolerance = COMPLETENESS_TOLERANCE * (float(scale[1][0]) if scale is not None else 1.0)
    values = np.asarray(errors)
    return {
        "tolerance": tolerance,
        "definition": "|sum of attributions - (prediction - mean reference prediction)| per sequence; tolerance "
        f"{COMPLETENESS_TOLERANCE} of the label's standard deviation",
        "median": float(np.median(values)),
        "max": float(values.max()),
        "flagged": int((values > tolerance).sum()),
        "n": len(values),
    }


__all__ = ["METHODS", "AttributionSettings", "attribute"]
