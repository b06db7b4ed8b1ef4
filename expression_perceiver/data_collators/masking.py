"""Masking augmentation of sequence inputs: a collator that pads a batch and masks or removes runs of positions.

The masking study hides a random run of 1,000 consecutive bases of each 20,000-base promoter at every training
step (`strategy="random_span"`), and in ablations always the first, central or last 10,000 bases (`"first"`,
`"middle"`, `"last"`). Hidden positions are either replaced by a mask token (`mode="mask"`, input length
unchanged) or removed (`mode="drop"`, the sequence shifts left and the batch is as wide as its longest remaining
sequence: the bases are suppressed and the model reads a shorter input).

Reproducibility. Span starts come from no random-number generator: each is a counter-based hash (splitmix64) of
`(seed, stream, epoch, key, span number)`, where `key` is the example's `idx` (its row in its split), `stream` is
0 in training and 1 in evaluation (where `epoch` is always 0). The same seed therefore gives the same masks
whatever the number of DataLoader workers, processes (DDP ranks), batch size or shuffling, and a new epoch gives
new masks. An example without `idx` is keyed by a 64-bit fingerprint of its token ids instead: still
deterministic and independent of workers and batch composition, but identical sequences then share their masks.

With the Hugging Face `Trainer`:

```python
>>> collator = MaskingCollator(NucleotideTokenizer(), MaskingSettings("random_span"), seed=0)
>>> args = TrainingArguments(..., remove_unused_columns=False)  # keeps `idx` and `sequence` for the collator
>>> trainer = Trainer(model, args, data_collator=collator, callbacks=[MaskingEpochCallback(collator)], ...)
```

Two facts of the `Trainer` to know (checked with transformers 5.24 and torch 2.13):

- It hands one `data_collator` to training, evaluation and prediction. Evaluation wants
  `collator.for_evaluation()` (untouched inputs in `mask` mode, a fixed crop in `drop` mode): a `Trainer`
  subclass swaps it in when it builds a DataLoader that is not for training (`_get_dataloader(is_training=False)`).
- DataLoader workers run a copy of the collator taken when the epoch's iterator starts them (a fork of the main
  process, or a pickle under spawn/forkserver); later changes in the main process do not reach them. `Trainer`
  calls `on_epoch_begin` before it creates that iterator, and without persistent workers
  (`dataloader_persistent_workers=False`, the default) the workers are started anew every epoch, so they see the
  new `epoch`. Persistent workers keep the copy of the first epoch and would repeat its masks in every epoch:
  `MaskingEpochCallback` refuses that setting. With `num_workers=0` the collator runs in the main process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

MaskingStrategy = Literal["none", "random_span", "first", "middle", "last"]
MaskingMode = Literal["mask", "drop"]

STRATEGIES: tuple[str, ...] = get_args(MaskingStrategy)
MODES: tuple[str, ...] = get_args(MaskingMode)
# The study's span lengths: a random run of 1,000 bases, or half of a 20,000-base window for the fixed ablations.
DEFAULT_MASK_LENGTHS = {"random_span": 1_000, "first": 10_000, "middle": 10_000, "last": 10_000}
TRAINING_STREAM = 0
EVALUATION_STREAM = 1

UINT64_MODULUS = 2**64


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser applied element-wise to a `uint64` array (wrapping arithmetic, no state)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def span_hashes(seed: int, stream: int, epoch: int, keys: np.ndarray, num_spans: int) -> np.ndarray:
    """(batch, num_spans) `uint64` hashes: `h = splitmix64(h ^ word)` folded over seed, stream, epoch, key and span
    number, starting from `h = 0`. Integers are taken modulo 2**64."""
    state = np.zeros(1, dtype=np.uint64)
    for word in (seed, stream, epoch):
        state = splitmix64(state ^ np.uint64(word % UINT64_MODULUS))
    per_example = splitmix64(state ^ keys.astype(np.uint64))
    return splitmix64(per_example[:, None] ^ np.arange(num_spans, dtype=np.uint64)[None, :])


def random_span_starts(hashes: np.ndarray, lengths: np.ndarray, mask_length: int | np.ndarray) -> np.ndarray:
    """Uniform span starts in `[0, max(length - mask_length, 0)]` from hashes, as `hash % (number of starts)`
    (the modulo bias is below 2**-40 for any sequence length under 2**24). `mask_length` is one length or one per
    row."""
    num_starts = np.maximum(lengths - mask_length, 0) + 1
    return (hashes % num_starts.astype(np.uint64)[:, None]).astype(np.int64)


def fixed_span_starts(strategy: str, lengths: np.ndarray, mask_length: int | np.ndarray) -> np.ndarray:
    """(batch, 1) span starts of the `first`, `middle` (centred, rounded towards the start) or `last` positions;
    a sequence shorter than the span starts at 0."""
    room = np.maximum(lengths - mask_length, 0)
    starts = {"first": np.zeros_like(room), "middle": room // 2, "last": room}[strategy]
    return starts[:, None]


def sequence_fingerprints(input_ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A 64-bit hash per row of the valid token ids and their positions (the key of examples without `idx`)."""
    position_weights = splitmix64(np.arange(input_ids.shape[1], dtype=np.uint64))
    tokens = np.where(valid, input_ids.astype(np.uint64) + np.uint64(1), np.uint64(0))
    return splitmix64((tokens * position_weights).sum(axis=1, dtype=np.uint64) ^ valid.sum(axis=1).astype(np.uint64))


def mask_span(valid: np.ndarray, starts: np.ndarray, mask_length: int | np.ndarray) -> np.ndarray:
    """(batch, length) `bool`: the valid positions whose rank among their row's valid positions lies in
    `[start, start + mask_length)` for any of the row's `starts` (batch, num_spans); `mask_length` is one length or
    one per row. Padding is never covered."""
    rank = np.cumsum(valid, axis=1) - 1  # rank counts valid positions only, so spans skip padding
    span_length = np.broadcast_to(np.asarray(mask_length), (valid.shape[0],))[:, None]
    covered = np.zeros_like(valid)
    for start in starts.T:  # one pass per span number, each over the whole batch
        covered |= (rank >= start[:, None]) & (rank < start[:, None] + span_length)
    return covered & valid


def pad_sequences(
    sequences: Sequence[np.ndarray], pad_token_id: int, masks: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads 1-D id arrays into (batch, longest) ids and a `bool` validity mask; `masks` (one per sequence)
    marks positions of a sequence that are themselves padding."""
    lengths = np.array([len(ids) for ids in sequences], dtype=np.int64)
    width = int(lengths.max(initial=0))
    dtype = np.result_type(*{ids.dtype for ids in sequences}) if sequences else np.int64
    input_ids = np.full((len(sequences), width), pad_token_id, dtype=dtype)
    filled = np.arange(width)[None, :] < lengths[:, None]
    valid = filled.copy()
    if width:
        input_ids[filled] = np.concatenate(sequences)
        if masks is not None:
            valid[filled] = np.concatenate(masks).astype(bool)
    return input_ids, valid


def drop_positions(input_ids: np.ndarray, keep: np.ndarray, pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Removes the positions where `keep` is False: each row's kept ids shift left, right-padded to the longest."""
    lengths = keep.sum(axis=1)
    width = int(lengths.max(initial=0))
    valid = np.arange(width)[None, :] < lengths[:, None]
    dropped = np.full((input_ids.shape[0], width), pad_token_id, dtype=input_ids.dtype)
    dropped[valid] = input_ids[keep]  # row-major order keeps each row's ids in order
    return dropped, valid


def example_keys(examples: list[dict[str, Any]], input_ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """`uint64` key of each example's spans: its `idx`, or a fingerprint of its tokens when it has none."""
    indices = [example.get("idx") for example in examples]
    has_idx = np.array([index is not None for index in indices])
    keys = np.zeros(len(examples), dtype=np.uint64)
    keys[has_idx] = [int(index) % UINT64_MODULUS for index in indices if index is not None]
    if not has_idx.all():
        keys[~has_idx] = sequence_fingerprints(input_ids[~has_idx], valid[~has_idx])
    return keys


def describe_example(example: dict[str, Any], position: int) -> str:
    """How errors name an example: its `idx` when it has one, else its position in the batch."""
    if example.get("idx") is not None:
        return f"idx={int(example['idx'])}"
    return f"batch position {position}"


def as_array(value: Any) -> np.ndarray:
    """A numpy array of a list, numpy array or tensor (without copying arrays and CPU tensors)."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def as_id_array(value: Any) -> np.ndarray:
    """A 1-D integer numpy array from a list, numpy array or tensor of token ids."""
    ids = as_array(value)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"token ids must be a 1-D sequence of integers, got shape {ids.shape} and dtype {ids.dtype}")
    return ids if ids.size else ids.astype(np.int64)


def tokenizer_pad_id(tokenizer: PreTrainedTokenizerBase | None) -> int:
    """The tokenizer's pad id, 0 when there is no tokenizer or it defines none."""
    pad_token_id = getattr(tokenizer, "pad_token_id", None)
    return 0 if pad_token_id is None else pad_token_id


def encode_sequence(tokenizer: PreTrainedTokenizerBase, sequence: str) -> np.ndarray:
    """Token ids of one sequence: the tokenizer's vectorised `encode_fast` when it has one, else its call."""
    if hasattr(tokenizer, "encode_fast"):
        return tokenizer.encode_fast(sequence)
    return np.asarray(tokenizer(sequence, add_special_tokens=False)["input_ids"], dtype=np.int64)


# Each settings field's name as an argument of a training run (`--mask_strategy`, ...; `MaskingArguments`).
ARGUMENT_NAMES = {
    "strategy": "mask_strategy",
    "mode": "mask_mode",
    "mask_length": "mask_length",
    "mask_fraction": "mask_fraction",
    "num_spans": "mask_num_spans",
    "mask_token": "mask_token",
}


@dataclass(frozen=True)
class MaskingSettings:
    """The masking augmentation of a run, in the one vocabulary that the study file, the training arguments
    (`MaskingArguments.settings()`), this collator and a model's config (`training_masking`) share; checked here,
    once.

    Args:
        strategy: `"none"`, `"random_span"` (start uniform over each sequence's valid positions, drawn anew at each
            epoch), `"first"`, `"middle"` or `"last"` (the first, central or last `mask_length` valid positions).
        mode: `"mask"` (replace with `mask_token`) or `"drop"` (remove the positions).
        mask_length: positions per span; None means 1,000 for `random_span` and 10,000 for the others (resolved when
            the settings are built).
        mask_fraction: instead of `mask_length`, the span as a fraction (0 < f <= 1) of each sequence's own valid
            length, rounded to the nearest position and at least 1: one setting then fits sequences of any length.
        num_spans: spans per sequence for `random_span` (drawn independently; they may overlap).
        mask_token: token written over masked positions, as a string of the tokenizer's vocabulary (`"[MASK]"` or
            `"N"` for DNA).
    """

    strategy: MaskingStrategy = "none"
    mode: MaskingMode = "mask"
    mask_length: int | None = None
    mask_fraction: float | None = None
    num_spans: int = 1
    mask_token: str = "[MASK]"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown masking strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown masking mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.mask_fraction is not None:
            if self.mask_length is not None:
                raise ValueError("give mask_length or mask_fraction, not both")
            if not 0 < self.mask_fraction <= 1:
                raise ValueError(f"mask_fraction must lie in (0, 1], got {self.mask_fraction}")
        elif self.mask_length is None:
            object.__setattr__(self, "mask_length", DEFAULT_MASK_LENGTHS.get(self.strategy))
        elif self.mask_length < 1:
            raise ValueError(f"mask_length must be at least 1, got {self.mask_length}")
        if self.num_spans < 1:
            raise ValueError(f"num_spans must be at least 1, got {self.num_spans}")
        if self.num_spans > 1 and self.strategy != "random_span":
            raise ValueError(f"num_spans > 1 needs strategy='random_span', got strategy={self.strategy!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a model's config records them (`training_masking`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MaskingSettings:
        """Settings from `to_dict()`'s form; an unknown key is an error naming it."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown masking field(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> MaskingSettings:
        """Settings from a training run's masking arguments (`--mask_*` names, as `results.json` records them);
        arguments absent take the settings' defaults."""
        return cls(**arguments_as_fields(arguments))

    def describe_span(self) -> str:
        """'3 positions' or '0.05 of each sequence's length'."""
        if self.mask_fraction is not None:
            return f"{self.mask_fraction:.4g} of each sequence's length"
        return f"{self.mask_length:,} positions"

    def describe(self) -> str:
        """'none' or 'random_span, 2 x 1,000 positions, mode mask'."""
        if self.strategy == "none":
            return "none"
        spans = f"{self.num_spans} x " if self.num_spans > 1 else ""
        return f"{self.strategy}, {spans}{self.describe_span()}, mode {self.mode}"


def arguments_as_fields(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A training run's masking arguments (`--mask_*` names) under the settings' field names, unchecked; other keys
    are left out."""
    return {field: arguments[name] for field, name in ARGUMENT_NAMES.items() if name in arguments}


@dataclass
class MaskingCollator:
    """Pads a batch of examples and, in training, masks (or removes) runs of positions of each sequence.

    Usable as `data_collator=` of `transformers.Trainer` and as `collate_fn=` of a `torch.utils.data.DataLoader`.

    Each example is a dict with `input_ids` (ints) or `sequence` (a string, tokenized with `tokenizer`), and
    optionally `attention_mask`, `label` or `labels` (a float or a list of floats), `features` (a list of floats),
    `protein_input_ids` or `protein_sequence` (tokenized with `protein_tokenizer`; padded, never masked) and
    `idx` (the example's row in its split, which keys its masks). Other keys are ignored. The batch is a dict of
    tensors: `input_ids` and `attention_mask` (int64, right-padded with the tokenizer's pad id), `labels`
    (float32, (batch,) or (batch, k)), `features` (float32, (batch, F)), `protein_input_ids` and
    `protein_attention_mask`, each present when the examples carry it.

    Spans are placed within each sequence's valid (unpadded) positions. In `mask` mode a span longer than its
    sequence is clipped to it; in `drop` mode a sequence left empty raises `ValueError`. In evaluation
    (`training=False`, see `for_evaluation`) `mask` mode returns inputs untouched, and `drop` mode crops them as in
    training, so the model sees inputs of the same length: the same positions for `first`, `middle` and `last`,
    and for `random_span` a span per example that is fixed across epochs.

    Args:
        tokenizer: tokenizer of `sequence`; also gives the pad id and resolves the settings' `mask_token`.
        masking: what to mask (`MaskingSettings`: strategy, mode, span, spans per sequence, mask token); none by
            default.
        seed: seed of the span hashes.
        epoch: training epoch, part of the span hashes (set by `MaskingEpochCallback`).
        training: whether to apply training masks (True) or evaluation behaviour (False).
        protein_tokenizer: tokenizer of `protein_sequence`, needed only when examples carry one.
    """

    tokenizer: PreTrainedTokenizerBase = field(repr=False)
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    seed: int = 0
    epoch: int = 0
    training: bool = True
    protein_tokenizer: PreTrainedTokenizerBase | None = field(default=None, repr=False)
    mask_token_id: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.masking, MaskingSettings):
            raise TypeError(f"masking must be MaskingSettings, got {type(self.masking).__name__}")
        vocabulary = self.tokenizer.get_vocab()
        if self.mode == "mask" and self.mask_token not in vocabulary:
            raise ValueError(
                f"mask_token {self.mask_token!r} is not in the vocabulary of {type(self.tokenizer).__name__}"
            )
        self.mask_token_id = vocabulary.get(self.mask_token)

    # The settings' fields, read where the masks are computed.
    strategy = property(lambda self: self.masking.strategy)
    mode = property(lambda self: self.masking.mode)
    mask_length = property(lambda self: self.masking.mask_length)
    mask_fraction = property(lambda self: self.masking.mask_fraction)
    num_spans = property(lambda self: self.masking.num_spans)
    mask_token = property(lambda self: self.masking.mask_token)

    @property
    def pad_token_id(self) -> int:
        return tokenizer_pad_id(self.tokenizer)

    def for_evaluation(self) -> MaskingCollator:
        """A copy of this collator with `training=False`."""
        return dataclasses.replace(self, training=False)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Collates a list of examples into a dict of tensors (see the class docstring)."""
        if not examples:
            raise ValueError("cannot collate an empty batch")
        input_ids, valid = self.pad_examples(examples, "input_ids", "sequence", "attention_mask", self.tokenizer)
        input_ids, valid = self.apply_masking(examples, input_ids, valid)
        batch = {
            "input_ids": torch.from_numpy(input_ids).long(),
            "attention_mask": torch.from_numpy(valid).long(),
        }
        labels = self.stack_floats(examples, ("labels", "label"), "labels")
        if labels is not None:
            batch["labels"] = torch.from_numpy(labels)
        features = self.stack_floats(examples, ("features",), "features")
        if features is not None:
            batch["features"] = torch.from_numpy(features)
        if self.has_field(examples, ("protein_input_ids", "protein_sequence"), "protein_input_ids"):
            protein_ids, protein_valid = self.pad_examples(
                examples, "protein_input_ids", "protein_sequence", "protein_attention_mask", self.protein_tokenizer
            )
            batch["protein_input_ids"] = torch.from_numpy(protein_ids).long()
            batch["protein_attention_mask"] = torch.from_numpy(protein_valid).long()
        return batch

    def applies_masking(self) -> bool:
        """Whether batches are altered: training masks, or evaluation crops in `drop` mode."""
        return self.strategy != "none" and (self.training or self.mode == "drop")

    def apply_masking(
        self, examples: list[dict[str, Any]], input_ids: np.ndarray, valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks or drops the spans of every row of a padded batch."""
        if not self.applies_masking():
            return input_ids, valid
        lengths = valid.sum(axis=1)
        span_lengths = self.span_lengths(lengths)
        if self.strategy == "random_span":
            keys = example_keys(examples, input_ids, valid)
            stream, epoch = (TRAINING_STREAM, self.epoch) if self.training else (EVALUATION_STREAM, 0)
            hashes = span_hashes(self.seed, stream, epoch, keys, self.num_spans)
            starts = random_span_starts(hashes, lengths, span_lengths)
        else:
            starts = fixed_span_starts(self.strategy, lengths, span_lengths)
        covered = mask_span(valid, starts, span_lengths)
        if self.mode == "mask":
            return np.where(covered, np.asarray(self.mask_token_id, dtype=input_ids.dtype), input_ids), valid
        keep = valid & ~covered
        self.check_not_emptied(examples, lengths, keep.sum(axis=1))
        return drop_positions(input_ids, keep, self.pad_token_id)

    def span_lengths(self, lengths: np.ndarray) -> np.ndarray:
        """Positions per span of each row: `mask_length`, or `mask_fraction` of the row's valid length."""
        if self.mask_fraction is None:
            return np.full(len(lengths), self.mask_length, dtype=np.int64)
        return np.maximum(np.rint(lengths * self.mask_fraction).astype(np.int64), 1)

    def describe_span(self) -> str:
        return self.masking.describe_span()

    def check_not_emptied(self, examples: list[dict[str, Any]], lengths: np.ndarray, kept: np.ndarray) -> None:
        """`ValueError` naming the first example that drop mode would leave without any position."""
        emptied = np.flatnonzero(kept == 0)
        if emptied.size:
            position = int(emptied[0])
            raise ValueError(
                f"drop mode would leave the sequence of example {describe_example(examples[position], position)} "
                f"empty: its length is {int(lengths[position])} and the {self.strategy} masking covers "
                f"{self.num_spans} span(s) of {self.describe_span()}; use a shorter span or mode='mask'"
            )

    def pad_examples(
        self,
        examples: list[dict[str, Any]],
        ids_key: str,
        text_key: str,
        mask_key: str,
        tokenizer: PreTrainedTokenizerBase | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Padded ids and validity mask of one sequence field, from its ids or its text."""
        sequences = []
        for position, example in enumerate(examples):
            if example.get(ids_key) is not None:
                sequences.append(as_id_array(example[ids_key]))
            elif example.get(text_key) is not None:
                if tokenizer is None:
                    raise ValueError(f"example {describe_example(example, position)} has `{text_key}` but no tokenizer")
                sequences.append(encode_sequence(tokenizer, example[text_key]))
            else:
                raise ValueError(
                    f"example {describe_example(example, position)} has neither `{ids_key}` nor `{text_key}`"
                )
        masks = None
        if any(example.get(mask_key) is not None for example in examples):
            masks = [
                np.ones(len(ids), dtype=bool)
                if example.get(mask_key) is None
                else as_array(example[mask_key]).astype(bool)
                for example, ids in zip(examples, sequences, strict=True)
            ]
            self.check_mask_lengths(examples, sequences, masks, mask_key)
        return pad_sequences(sequences, tokenizer_pad_id(tokenizer), masks)

    @staticmethod
    def check_mask_lengths(
        examples: list[dict[str, Any]], sequences: list[np.ndarray], masks: list[np.ndarray], mask_key: str
    ) -> None:
        for position, (example, ids, mask) in enumerate(zip(examples, sequences, masks, strict=True)):
            if len(mask) != len(ids):
                raise ValueError(
                    f"`{mask_key}` of example {describe_example(example, position)} has length {len(mask)}, "
                    f"its ids {len(ids)}"
                )

    @staticmethod
    def has_field(examples: list[dict[str, Any]], keys: tuple[str, ...], name: str) -> bool:
        """Whether the batch carries a field; every example or none must have it."""
        present = [any(example.get(key) is not None for key in keys) for example in examples]
        if any(present) and not all(present):
            position = present.index(False)
            raise ValueError(
                f"example {describe_example(examples[position], position)} has no `{name}` while others have one"
            )
        return all(present)

    def stack_floats(self, examples: list[dict[str, Any]], keys: tuple[str, ...], name: str) -> np.ndarray | None:
        """float32 array stacking the first present key of each example; `ValueError` on ragged or NaN values."""
        if not self.has_field(examples, keys, name):
            return None
        values = [next(example[key] for key in keys if example.get(key) is not None) for example in examples]
        rows = [as_array(value).astype(np.float32) for value in values]
        shapes = {row.shape for row in rows}
        if len(shapes) > 1:
            raise ValueError(f"`{name}` have different shapes across the batch: {sorted(shapes)}")
        stacked = np.stack(rows)
        bad = np.flatnonzero(~np.isfinite(stacked.reshape(len(rows), -1)).all(axis=1))
        if bad.size:
            position = int(bad[0])
            raise ValueError(
                f"`{name}` of example {describe_example(examples[position], position)} is not finite "
                f"(NaN or infinite): {values[position]!r}"
            )
        return stacked


class MaskingEpochCallback(TrainerCallback):
    """Keeps a `MaskingCollator`'s `epoch` in step with the `Trainer`, so that every epoch draws new spans.

    `on_epoch_begin` runs before the epoch's DataLoader iterator (and its workers) is created, so workers
    re-created each epoch copy the new value. Persistent workers keep their first copy, hence their first epoch's
    masks: training with `dataloader_persistent_workers=True` and workers raises `ValueError` at its start.
    """

    def __init__(self, collator: MaskingCollator):
        self.collator = collator

    def on_train_begin(self, args, state, control, **kwargs):
        if args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
            raise ValueError(
                "MaskingEpochCallback cannot reach persistent DataLoader workers: they would reuse the first epoch's "
                "masks. Set dataloader_persistent_workers=False (workers are then re-created each epoch)."
            )

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is whole at an epoch's start, and `epoch + fraction` when resuming mid-epoch.
        self.collator.epoch = int(state.epoch or 0)
