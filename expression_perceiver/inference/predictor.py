"""Running models over examples: `Predictor` (one model or an ensemble, expression predictions) and `Embedder` (one
base model, summary vectors or latents).

Both score batches of already-built examples (`predict_batch`, `embed_batch`: ids, sequences and features as given,
whatever made them: a file, a variant, a mutagenesis scan) and stream any number of examples with bounded memory
(`predict_chunks`, `embed_chunks`, `stream`): a chunk of examples is read, sorted by length so that each batch holds
sequences of similar lengths (little padding), run batch by batch, and handed back in input order with the index of
its first example in the stream (`start`). In a launched run the chunks are shared out between the processes
(`task.stream_chunks`).

Outputs do not depend on the batch size or on a sequence's neighbours in its batch: padding is masked out of the
attention, the convolutions and the pooling, and the batch norms use their running statistics (evaluation mode).
In float32 the same sequence gives the same numbers to within rounding (about 1e-9 here) in any batch; under bf16
autocast (the default on a GPU that supports it) to within bf16 rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.standardization import in_data_units
from .inputs import Example, ModelInputs
from .models import LoadedModel, ModelLoadError, check_ensemble, load_model
from .task import Chunk, check_batch_size, process_state, stream_chunks

if TYPE_CHECKING:
    from accelerate import PartialState

PRECISIONS = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DEFAULT_BATCH_SIZE = 32
CHUNK_BATCHES = 32  # batches per sorted chunk: the memory bound is this many batches of examples


def choose_device(device: str | torch.device | None = None, state: PartialState | None = None) -> torch.device:
    """`device`, or CUDA when available (in a multi-process run, the process's local GPU), else the CPU; a CUDA
    device asked for where none exists is an error."""
    if device is None or str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = state.local_process_index if state is not None else 0
        return torch.device("cuda", local % torch.cuda.device_count())
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device {device}: not a device ({error})") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available here (use cpu)")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
    return chosen


def choose_precision(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """The precision models run in: `dtype`, or by default bf16 autocast on a GPU that supports it, else float32.
    Weights stay in float32; lower precisions run through `torch.autocast`."""
    if dtype is None or str(dtype) == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in PRECISIONS.values():
            raise ValueError(f"dtype {dtype}: use float32, bfloat16 or float16")
        return dtype
    if str(dtype) not in PRECISIONS:
        raise ValueError(f"--dtype {dtype}: use auto, float32, bfloat16 or float16")
    precision = PRECISIONS[str(dtype)]
    if precision == torch.float16 and device.type != "cuda":
        raise ValueError("--dtype float16 needs a GPU; use float32 or bfloat16 on the CPU")
    return precision


def precision_name(precision: torch.dtype) -> str:
    return {torch.bfloat16: "bfloat16 autocast", torch.float16: "float16 autocast"}.get(precision, "float32")


def example_cost(example: Example) -> tuple[int, int]:
    """What sorting within a chunk orders by: the sequence's length, then the protein's."""
    return len(example.sequence), len(example.protein_sequence or "")


class _Runner:
    """Models on a device, run over examples in sorted batches (see the module docstring)."""

    def __init__(self, members: list[LoadedModel], device=None, dtype=None):
        if not members:
            raise ValueError("no model given")
        self.members = members
        self.device = choose_device(device, self.state)
        self.precision = choose_precision(self.device, dtype)
        for member in members:
            member.model.to(self.device).eval()

    @property
    def state(self) -> PartialState:
        """This process's place in a launched run, asked for each time: a training run in the same process may
        reset accelerate's shared state."""
        return process_state()

    @property
    def first(self) -> LoadedModel:
        return self.members[0]

    @property
    def model_type(self) -> str:
        return self.first.config.model_type

    @property
    def model_inputs(self) -> ModelInputs:
        """What the models read (`InputPreparer` fits examples to it)."""
        means = {member.feature_mean for member in self.members}
        stored = next(iter(means)) if len(means) == 1 else None
        if stored is not None:
            fill, source = stored, "the training feature means stored in the checkpoint (feature_mean)"
        else:
            fill = (0.0,) * self.first.num_features
            source = (
                "zeros: the checkpoint stores no training feature means, and zero is their mean only for z-scored "
                "features (as Xpresso's half-life features are)"
            )
        return ModelInputs(
            alphabet=self.first.family.alphabet,
            max_length=self.first.max_length,
            num_features=self.first.num_features,
            protein_max_length=self.first.protein_max_length,
            feature_fill=fill if self.first.num_features else None,
            feature_fill_source=source if self.first.num_features else "",
        )

    def describe_device(self) -> dict[str, str]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return {"device": str(self.device), "device_name": name, "dtype": precision_name(self.precision)}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.precision, enabled=self.precision != torch.float32)

    def _batch(self, member: LoadedModel, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """The member's evaluation collator over the examples, on the device. Every example must fit the model
        (`InputPreparer`): a longer sequence or a missing feature vector is a ValueError from the model."""
        rows = []
        for example in examples:
            row: dict[str, Any] = {"sequence": example.sequence}
            if member.num_features:
                if example.features is None:
                    raise ValueError(f"example {example.id!r} has no features; model {member.spec} reads them")
                row["features"] = example.features
            if member.family.reads_protein:
                if not example.protein_sequence:
                    raise ValueError(f"example {example.id!r} has no protein; model {member.spec} reads one")
                row["protein_sequence"] = example.protein_sequence
            rows.append(row)
        batch = member.collator(rows)
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def _batches(self, examples: Sequence[Example]) -> Iterator[tuple[LoadedModel, dict[str, torch.Tensor]]]:
        """Each member with its batch; members with the same collator share one."""
        built: dict[int, dict[str, torch.Tensor]] = {}
        for member in self.members:
            key = collation_key(member)
            if key not in built:
                built[key] = self._batch(member, examples)
            yield member, built[key]

    def stream(
        self,
        examples: Iterable[Example],
        run_batch: Callable[[Sequence[Example]], np.ndarray],
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[Chunk]:
        """`run_batch`'s results for any number of examples: chunks of `chunk_size` examples (default 32 batches) in
        input order, each run in sorted batches (`run_chunk`) by one of the processes; `on_batch(n)` is called after
        each batch of n examples this process runs."""
        check_batch_size(batch_size)
        chunk_size = chunk_size or batch_size * CHUNK_BATCHES
        return stream_chunks(
            examples, lambda chunk: run_chunk(chunk, run_batch, batch_size, on_batch), chunk_size, self.state
        )


def run_chunk(
    chunk: list[Example],
    run_batch: Callable[[Sequence[Example]], np.ndarray],
    batch_size: int,
    on_batch: Callable[[int], None] | None,
) -> np.ndarray:
    """The chunk's results in its order, run in batches of similar lengths (sorted by `example_cost`)."""
    order = sorted(range(len(chunk)), key=lambda index: example_cost(chunk[index]))
    values = None
    for first in range(0, len(chunk), batch_size):
        indices = order[first : first + batch_size]
        result = run_batch([chunk[index] for index in indices])
        if values is None:
            values = np.empty((len(chunk), *result.shape[1:]), dtype=result.dtype)
        values[indices] = result
        if on_batch is not None:
            on_batch(len(indices))
    return values


def collation_key(member: LoadedModel) -> int:
    """Members whose collators build identical batches share them: same vocabulary, same evaluation masking."""
    collator = member.collator
    protein = member.protein_tokenizer
    return hash(
        (
            tuple(sorted(member.tokenizer.get_vocab().items())),
            tuple(sorted(protein.get_vocab().items())) if protein is not None else None,
            collator.strategy if collator.applies_masking() else "none",
            collator.mode,
            collator.mask_length,
            collator.mask_fraction,
            collator.num_spans,
            collator.seed,
        )
    )


class Predictor(_Runner):
    """Expression predictions of one model or an ensemble (the members must read the same inputs and predict the
    same outputs in the same units: `check_ensemble`).

    Values are in the training labels' units when the checkpoints store the label standardisation
    (`config.label_mean`, `config.label_std`), else z-scores (`units`).

    >>> predictor = Predictor.from_pretrained(["runs/seed0", "org/dna-perceiver@v1"])
    >>> predictor.predict_batch([Example("g1", "ACGT" * 250, features=(0.0,) * 8)]).shape  # (batch, members, outputs)
    """

    def __init__(self, members: list[LoadedModel], device=None, dtype=None):
        check_ensemble(members)
        super().__init__(members, device, dtype)
        self.scales = [member.label_scale for member in members]

    @classmethod
    def from_pretrained(
        cls,
        models: str | Sequence[str],
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> Predictor:
        """Loads each model (a local folder, or a Hub id `org/name` or `org/name@revision`) with its head; the
        device defaults to CUDA when available and the precision to bf16 autocast on a GPU that supports it."""
        specs = [models] if isinstance(models, str | bytes) or not isinstance(models, Sequence) else list(models)
        if not specs:
            raise ModelLoadError("no model given")
        return cls([load_model(spec) for spec in specs], device, dtype)

    @property
    def units(self) -> str:
        """`original` (the training labels' units) or `z-score`."""
        return "original" if self.scales[0] is not None else "z-score"

    @property
    def output_names(self) -> list[str]:
        return self.first.output_names

    @property
    def output_units(self) -> list[str]:
        """Each output's units in words."""
        if self.units == "z-score":
            return ["z-score (the checkpoint stores no label_mean/label_std)"] * len(self.output_names)
        if self.first.label_units:
            return self.first.label_units
        return ["the training labels' units (config label_mean/label_std)"] * len(self.output_names)

    @property
    def num_outputs(self) -> int:
        return self.first.num_labels

    def describe_outputs(self) -> list[dict[str, str]]:
        """Each output's name and units, for a record."""
        return [
            {"name": name, "units": units} for name, units in zip(self.output_names, self.output_units, strict=True)
        ]

    def predict_batch(self, examples: Sequence[Example]) -> np.ndarray:
        """Predictions of every member for a batch of prepared examples, (batch, members, outputs) float64, in the
        order given."""
        if not examples:
            return np.empty((0, len(self.members), self.num_outputs))
        values = np.empty((len(examples), len(self.members), self.num_outputs))
        with torch.inference_mode(), self._autocast():
            for index, (member, batch) in enumerate(self._batches(examples)):
                logits = member.model(**batch).logits.float().cpu().numpy().astype(np.float64)
                scale = self.scales[index]
                values[:, index] = in_data_units(logits, *scale) if scale is not None else logits
        return values

    def predict_chunks(
        self,
        examples: Iterable[Example],
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[Chunk]:
        """Streams predictions: chunks of `chunk_size` examples (default 32 batches) in input order, each with
        `values` (chunk, members, outputs); `on_batch(n)` is called after each batch of n examples."""
        return self.stream(examples, self.predict_batch, batch_size, chunk_size, on_batch)


class Embedder(_Runner):
    """Summary vectors (`pooler_output`, what the regression head reads) or latents (`last_hidden_state`) of one
    model's base model (`AutoModel`)."""

    @classmethod
    def from_pretrained(
        cls, model: str, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> Embedder:
        return cls([load_model(model, base_model=True)], device, dtype)

    def embed_batch(self, examples: Sequence[Example], latents: bool = False) -> np.ndarray:
        """(batch, summary width) float32, or (batch, latents, latent width) with `latents`, in the order given.
        For the Protein&DNAPerceiver the summary is the promoter's then the protein's; its latents are the
        promoter encoder's."""
        if not examples:
            raise ValueError("no examples to embed")
        member = self.first
        with torch.inference_mode(), self._autocast():
            output = member.model(**self._batch(member, examples))
            values = output.last_hidden_state if latents else output.pooler_output
            return values.float().cpu().numpy()

    def embed_chunks(
        self,
        examples: Iterable[Example],
        latents: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[Chunk]:
        """Streams embeddings in input order (see `Predictor.predict_chunks`)."""
        return self.stream(examples, lambda batch: self.embed_batch(batch, latents), batch_size, chunk_size, on_batch)


__all__ = ["Chunk", "Embedder", "Predictor", "choose_device", "choose_precision", "precision_name"]
