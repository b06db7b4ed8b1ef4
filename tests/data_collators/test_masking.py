"""MaskingCollator against a per-position reference, plus reproducibility, evaluation, fields and model checks."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerState, TrainingArguments

from expression_perceiver.data_collators import MaskingCollator, MaskingEpochCallback, MaskingSettings
from expression_perceiver.modeling import (
    AminoAcidTokenizer,
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    NucleotideTokenizer,
)

PAD, MASK, N = 0, 4, 9
DNA_IDS = {"A": 5, "C": 6, "G": 7, "T": 8, "N": 9}
UINT64 = 2**64 - 1


@pytest.fixture(scope="module")
def tokenizer():
    return NucleotideTokenizer()


def random_dna(length: int, rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("ACGT"), size=length))


def reference_splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & UINT64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & UINT64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & UINT64
    return z ^ (z >> 31)


def reference_random_start(seed, stream, epoch, key, span, length, mask_length) -> int:
    """The documented key derivation in plain Python integers: h = splitmix64(h ^ word), then h % starts."""
    h = 0
    for word in (seed, stream, epoch, key, span):
        h = reference_splitmix64(h ^ (word % 2**64))
    return h % (max(length - mask_length, 0) + 1)


def reference_covered(strategy, length, mask_length, num_spans=1, seed=0, stream=0, epoch=0, key=0) -> set[int]:
    """Positions of one unpadded sequence covered by the spans."""
    if strategy == "random_span":
        starts = [reference_random_start(seed, stream, epoch, key, s, length, mask_length) for s in range(num_spans)]
    else:
        room = max(length - mask_length, 0)
        starts = [{"first": 0, "middle": room // 2, "last": room}[strategy]]
    return {p for start in starts for p in range(start, min(start + mask_length, length))}


def reference_batch(sequences, covered, mode, mask_id=MASK):
    """Expected (input_ids, attention_mask) built position by position."""
    rows = []
    for sequence, hidden in zip(sequences, covered, strict=True):
        ids = [DNA_IDS[base] for base in sequence]
        if mode == "mask":
            rows.append([mask_id if p in hidden else token for p, token in enumerate(ids)])
        else:
            rows.append([token for p, token in enumerate(ids) if p not in hidden])
    width = max(len(row) for row in rows)
    input_ids = [row + [PAD] * (width - len(row)) for row in rows]
    attention_mask = [[1] * len(row) + [0] * (width - len(row)) for row in rows]
    return torch.tensor(input_ids), torch.tensor(attention_mask)


def dna_examples(lengths, seed=0, first_idx=100):
    rng = np.random.default_rng(seed)
    return [{"sequence": random_dna(n, rng), "idx": first_idx + i} for i, n in enumerate(lengths)]


LENGTHS = [37, 50, 64, 23]


@pytest.mark.parametrize("mode", ["mask", "drop"])
@pytest.mark.parametrize(
    ("strategy", "mask_length", "num_spans"),
    [("random_span", 8, 1), ("random_span", 5, 3), ("first", 16, 1), ("middle", 15, 1), ("last", 16, 1)],
)
def test_training_batch_matches_reference(tokenizer, strategy, mode, mask_length, num_spans):
    collator = MaskingCollator(
        tokenizer,
        MaskingSettings(strategy=strategy, mode=mode, mask_length=mask_length, num_spans=num_spans),
        seed=7,
        epoch=3,
    )
    examples = dna_examples(LENGTHS)
    batch = collator(examples)
    covered = [
        reference_covered(strategy, len(ex["sequence"]), mask_length, num_spans, seed=7, epoch=3, key=ex["idx"])
        for ex in examples
    ]
    expected_ids, expected_mask = reference_batch([ex["sequence"] for ex in examples], covered, mode)
    assert batch["input_ids"].dtype == torch.int64 and batch["attention_mask"].dtype == torch.int64
    torch.testing.assert_close(batch["input_ids"], expected_ids, rtol=0, atol=0)
    torch.testing.assert_close(batch["attention_mask"], expected_mask, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["mask", "drop"])
@pytest.mark.parametrize("strategy", ["random_span", "first", "middle", "last"])
def test_fractional_spans_match_reference_with_each_sequence_its_own_length(tokenizer, strategy, mode):
    fraction = 0.3
    collator = MaskingCollator(
        tokenizer, MaskingSettings(strategy=strategy, mode=mode, mask_fraction=fraction), seed=7, epoch=3
    )
    examples = dna_examples(LENGTHS)
    batch = collator(examples)
    covered = []
    for ex in examples:
        length = len(ex["sequence"])
        span = max(round(length * fraction), 1)  # 37 -> 11, 50 -> 15, 64 -> 19, 23 -> 7
        covered.append(reference_covered(strategy, length, span, seed=7, epoch=3, key=ex["idx"]))
        assert len(covered[-1]) == span
    expected_ids, expected_mask = reference_batch([ex["sequence"] for ex in examples], covered, mode)
    torch.testing.assert_close(batch["input_ids"], expected_ids, rtol=0, atol=0)
    torch.testing.assert_close(batch["attention_mask"], expected_mask, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mask_fraction": 0.0}, "mask_fraction must lie in"), ({"mask_fraction": 1.5}, "mask_fraction must lie in"),
     ({"mask_fraction": 0.5, "mask_length": 3}, "not both")],
)  # fmt: skip
def test_fraction_errors(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskingCollator(tokenizer, MaskingSettings(strategy="first", **kwargs))


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_strategy_none_only_pads(tokenizer, mode):
    examples = dna_examples(LENGTHS)
    batch = MaskingCollator(tokenizer, MaskingSettings(mode=mode))(examples)
    expected_ids, expected_mask = reference_batch([ex["sequence"] for ex in examples], [set()] * 4, mode)
    assert torch.equal(batch["input_ids"], expected_ids) and torch.equal(batch["attention_mask"], expected_mask)


def test_default_mask_lengths(tokenizer):
    assert MaskingCollator(tokenizer, MaskingSettings(strategy="random_span")).mask_length == 1_000
    for strategy in ("first", "middle", "last"):
        assert MaskingCollator(tokenizer, MaskingSettings(strategy=strategy)).mask_length == 10_000
    assert MaskingCollator(tokenizer, MaskingSettings(strategy="middle", mask_length=5)).mask_length == 5


def test_xpresso_window_spans(tokenizer):
    """The study's settings on a 20,000-base window: a 1,000-base run, or half the window."""
    examples = dna_examples([20_000], first_idx=0)
    for strategy, expected in [("first", (0, 10_000)), ("middle", (5_000, 15_000)), ("last", (10_000, 20_000))]:
        masked = torch.nonzero(
            MaskingCollator(tokenizer, MaskingSettings(strategy=strategy))(examples)["input_ids"][0] == MASK
        )
        assert (int(masked.min()), int(masked.max()) + 1, len(masked)) == (*expected, 10_000)
    masked = torch.nonzero(
        MaskingCollator(tokenizer, MaskingSettings(strategy="random_span"))(examples)["input_ids"][0] == MASK
    )
    assert len(masked) == 1_000 and int(masked.max() - masked.min()) == 999


@pytest.mark.parametrize("strategy", ["random_span", "first", "middle", "last"])
def test_spans_never_cover_padding(tokenizer, strategy):
    """Pre-padded examples (attention_mask zeros at the end) and ragged lengths: only valid positions are hidden."""
    rng = np.random.default_rng(1)
    examples = []
    for i, n in enumerate([40, 12, 33, 25, 40]):
        valid = int(rng.integers(10, n + 1))
        ids = [DNA_IDS[b] for b in random_dna(valid, rng)] + [PAD] * (n - valid)
        examples.append({"input_ids": ids, "attention_mask": [1] * valid + [0] * (n - valid), "idx": i})
    for seed in range(20):
        batch = MaskingCollator(tokenizer, MaskingSettings(strategy=strategy, mask_length=9), seed=seed)(examples)
        hidden = batch["input_ids"] == MASK
        assert not (hidden & (batch["attention_mask"] == 0)).any()
        lengths = batch["attention_mask"].sum(1)
        assert torch.equal(hidden.sum(1), torch.clamp(lengths, max=9))
        # each span is one contiguous run inside its sequence
        for row, n in zip(hidden, lengths, strict=True):
            positions = torch.nonzero(row)[:, 0]
            assert int(positions.max() - positions.min()) + 1 == len(positions) and int(positions.max()) < int(n)


def test_short_sequence_is_clipped_in_mask_mode(tokenizer):
    examples = dna_examples([6, 30])
    for strategy in ("random_span", "first", "middle", "last"):
        batch = MaskingCollator(tokenizer, MaskingSettings(strategy=strategy, mask_length=10))(examples)
        assert (batch["input_ids"][0, :6] == MASK).all() and (batch["input_ids"][0, 6:] == PAD).all()
        assert int((batch["input_ids"][1] == MASK).sum()) == 10


@pytest.mark.parametrize("strategy", ["random_span", "first", "middle", "last"])
def test_drop_mode_refuses_to_empty_a_sequence(tokenizer, strategy):
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy=strategy, mode="drop", mask_length=10))
    with pytest.raises(ValueError, match=r"idx=101.*length is 10"):
        collator(dna_examples([30, 10]))
    with pytest.raises(ValueError, match="batch position 1"):
        collator([{"sequence": "ACGTACGTACGTACGT"}, {"sequence": "ACG"}])


@pytest.mark.parametrize("strategy", ["random_span", "first", "middle", "last"])
def test_evaluation_mask_mode_is_untouched(tokenizer, strategy):
    examples = dna_examples(LENGTHS)
    evaluation = MaskingCollator(tokenizer, MaskingSettings(strategy=strategy, mask_length=8)).for_evaluation()
    assert evaluation.training is False
    expected = MaskingCollator(tokenizer)(examples)
    batch = evaluation(examples)
    assert torch.equal(batch["input_ids"], expected["input_ids"])
    assert torch.equal(batch["attention_mask"], expected["attention_mask"])


@pytest.mark.parametrize("strategy", ["first", "middle", "last"])
def test_evaluation_drop_mode_crops_like_training(tokenizer, strategy):
    examples = dna_examples(LENGTHS)
    training = MaskingCollator(tokenizer, MaskingSettings(strategy=strategy, mode="drop", mask_length=12), epoch=4)
    train_batch, eval_batch = training(examples), training.for_evaluation()(examples)
    assert torch.equal(train_batch["input_ids"], eval_batch["input_ids"])
    assert torch.equal(train_batch["attention_mask"], eval_batch["attention_mask"])


def test_evaluation_random_span_drop_is_fixed_across_epochs(tokenizer):
    examples = dna_examples([60] * 4)
    batches = [
        MaskingCollator(
            tokenizer, MaskingSettings(strategy="random_span", mode="drop", mask_length=8), seed=5, epoch=epoch
        ).for_evaluation()(examples)
        for epoch in (0, 1, 9)
    ]
    for batch in batches[1:]:
        assert torch.equal(batch["input_ids"], batches[0]["input_ids"])
    assert batches[0]["input_ids"].shape == (4, 52)  # the model receives the training input length
    covered = [reference_covered("random_span", 60, 8, seed=5, stream=1, key=ex["idx"]) for ex in examples]
    expected_ids, _ = reference_batch([ex["sequence"] for ex in examples], covered, "drop")
    assert torch.equal(batches[0]["input_ids"], expected_ids)


def test_mask_token_n_or_mask(tokenizer):
    examples = dna_examples([30])
    with_n = MaskingCollator(tokenizer, MaskingSettings(strategy="first", mask_length=5, mask_token="N"))(examples)[
        "input_ids"
    ][0]
    with_mask = MaskingCollator(tokenizer, MaskingSettings(strategy="first", mask_length=5))(examples)["input_ids"][0]
    assert (with_n[:5] == N).all() and (with_mask[:5] == MASK).all()
    assert torch.equal(with_n[5:], with_mask[5:])


def test_reproducibility_seed_and_epoch(tokenizer):
    examples = dna_examples([200] * 8)

    def hidden(**kwargs):
        return (
            MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mask_length=10), **kwargs)(examples)[
                "input_ids"
            ]
            == 4
        )

    assert torch.equal(hidden(seed=1, epoch=2), hidden(seed=1, epoch=2))
    assert not torch.equal(hidden(seed=1, epoch=2), hidden(seed=1, epoch=3))
    assert not torch.equal(hidden(seed=1, epoch=2), hidden(seed=2, epoch=2))


def test_masks_follow_idx_not_batch_position(tokenizer):
    examples = dna_examples([100, 120, 90])
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mask_length=7), seed=3)
    forward, backward = collator(examples), collator(examples[::-1])
    for i in range(3):
        row = forward["input_ids"][i][forward["attention_mask"][i].bool()]
        reversed_row = backward["input_ids"][2 - i][backward["attention_mask"][2 - i].bool()]
        assert torch.equal(row, reversed_row)


def test_examples_without_idx_are_keyed_by_content(tokenizer):
    rng = np.random.default_rng(4)
    sequences = [random_dna(300, rng) for _ in range(3)]
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mask_length=10))
    alone = collator([{"sequence": sequences[1]}])["input_ids"][0]
    among = collator([{"sequence": s} for s in sequences])["input_ids"]
    assert torch.equal(alone, among[1])
    starts = [int(torch.nonzero(row == MASK)[0]) for row in among]
    assert len(set(starts)) == 3


class DNADataset(Dataset):
    def __init__(self, size: int):
        rng = np.random.default_rng(11)
        self.sequences = [random_dna(int(rng.integers(80, 120)), rng) for _ in range(size)]

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, i):
        return {"sequence": self.sequences[i], "idx": i, "label": float(i)}


def masks_by_idx(loader) -> dict[int, torch.Tensor]:
    masks = {}
    for batch in loader:
        for row, mask, label in zip(batch["input_ids"], batch["attention_mask"], batch["labels"], strict=True):
            masks[int(label)] = (row[mask.bool()] == MASK).nonzero()[:, 0]
    return masks


def test_masks_independent_of_workers_and_batching(tokenizer):
    dataset = DNADataset(12)
    collator = MaskingCollator(
        tokenizer, MaskingSettings(strategy="random_span", mask_length=9, num_spans=2), seed=21, epoch=1
    )
    single = masks_by_idx(DataLoader(dataset, batch_size=4, num_workers=0, collate_fn=collator))
    workers = masks_by_idx(DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collator, shuffle=True))
    assert single.keys() == workers.keys() == set(range(12))
    for i in range(12):
        assert torch.equal(single[i], workers[i])


def test_epoch_callback(tokenizer):
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span"))
    callback = MaskingEpochCallback(collator)
    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)  # creates no directory
    callback.on_epoch_begin(args, TrainerState(epoch=3.0), None)
    assert collator.epoch == 3
    callback.on_epoch_begin(args, TrainerState(epoch=1.5), None)  # resumed mid-epoch
    assert collator.epoch == 1
    persistent = TrainingArguments(
        output_dir="unused",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=2,
        dataloader_persistent_workers=True,
    )
    with pytest.raises(ValueError, match="persistent"):
        callback.on_train_begin(persistent, TrainerState(), None)


class MaskRecorder(nn.Module):
    """A stand-in model that records, per training batch, the first masked position of each example by label."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, input_ids, attention_mask=None, labels=None):
        if self.training:
            first_masked = (input_ids == MASK).int().argmax(dim=1)
            self.seen.append(dict(zip(labels.int().tolist(), first_masked.tolist(), strict=True)))
        return {"loss": (self.weight * 0 + 1).sum(), "logits": labels[:, None]}


def test_trainer_workers_see_each_epoch(tokenizer, tmp_path):
    """With the callback, epoch e of a `Trainer` run (2 re-created workers, shuffled) masks as `epoch=e` does."""
    dataset = DNADataset(8)
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mask_length=10), seed=1)
    model = MaskRecorder()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=3,
        per_device_train_batch_size=4,
        dataloader_num_workers=2,
        remove_unused_columns=False,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(
        model, args, train_dataset=dataset, data_collator=collator, callbacks=[MaskingEpochCallback(collator)]
    ).train()
    seen = [{**model.seen[2 * epoch], **model.seen[2 * epoch + 1]} for epoch in range(3)]
    for epoch in range(3):
        batch = MaskingCollator(
            tokenizer, MaskingSettings(strategy="random_span", mask_length=10), seed=1, epoch=epoch
        )([dataset[i] for i in range(8)])
        assert seen[epoch] == dict(enumerate((batch["input_ids"] == MASK).int().argmax(dim=1).tolist()))
    assert seen[0] != seen[1]


def test_labels_and_features(tokenizer):
    examples = [
        {"input_ids": np.array([5, 6, 7]), "label": 0.5, "features": [1.0] * 8, "other": "ignored"},
        {"input_ids": torch.tensor([8, 5]), "label": -1.25, "features": np.arange(8.0)},
    ]
    batch = MaskingCollator(tokenizer)(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "features"}
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [0.5, -1.25]
    assert batch["features"].dtype == torch.float32 and batch["features"].shape == (2, 8)
    assert batch["features"][1].tolist() == list(range(8))
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 5, 0]]
    two_labels = MaskingCollator(tokenizer)(
        [{"input_ids": [5], "labels": [1.0, 2.0]}, {"input_ids": [6], "labels": [3, 4]}]
    )
    assert two_labels["labels"].shape == (2, 2) and two_labels["labels"].dtype == torch.float32


def test_ids_sequences_lists_and_tensors_agree(tokenizer):
    sequence = "ACGTNacgtR"
    ids = tokenizer(sequence)["input_ids"]
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="first", mask_length=3))
    batches = [
        collator([{"sequence": sequence}]),
        collator([{"input_ids": ids}]),
        collator([{"input_ids": np.array(ids, dtype=np.uint8)}]),
        collator([{"input_ids": torch.tensor(ids)}]),
    ]
    for batch in batches[1:]:
        assert torch.equal(batch["input_ids"], batches[0]["input_ids"])


def test_protein_fields_are_padded_not_masked(tokenizer):
    proteins = AminoAcidTokenizer()
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="first", mask_length=4), protein_tokenizer=proteins)
    batch = collator(
        [
            {"sequence": "ACGTACGT", "protein_sequence": "MKV*"},
            {"sequence": "ACGTAC", "protein_input_ids": [proteins.convert_tokens_to_ids("W")] * 5},
        ]
    )
    assert batch["protein_input_ids"].tolist() == [proteins("MKV*")["input_ids"] + [0, 0], [proteins.vocab["W"]] * 5]
    assert batch["protein_attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert (batch["input_ids"][:, :4] == MASK).all()
    with pytest.raises(ValueError, match="protein_sequence"):
        MaskingCollator(tokenizer)([{"sequence": "ACGT", "protein_sequence": "MKV"}])


def test_protein_inputs_can_be_masked():
    proteins = AminoAcidTokenizer()
    batch = MaskingCollator(proteins, MaskingSettings(strategy="last", mode="drop", mask_length=2))(
        [{"sequence": "MKVLW"}]
    )
    assert batch["input_ids"].tolist() == [proteins("MKV")["input_ids"]]


@pytest.mark.parametrize("field", ["label", "features"])
def test_nan_is_rejected_naming_the_example(tokenizer, field):
    value = {"label": float("nan"), "features": [0.0, float("nan")]}[field]
    good = {"label": 1.0, "features": [0.0, 1.0]}[field]
    with pytest.raises(ValueError, match=r"idx=7"):
        MaskingCollator(tokenizer)(
            [{"sequence": "ACGT", field: good, "idx": 6}, {"sequence": "AC", field: value, "idx": 7}]
        )
    with pytest.raises(ValueError, match="batch position 1"):
        MaskingCollator(tokenizer)([{"sequence": "ACGT", field: good}, {"sequence": "AC", field: value}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "everywhere"}, "unknown masking strategy"),
        ({"mode": "blur"}, "unknown masking mode"),
        ({"strategy": "first", "mask_length": 0}, "mask_length"),
        ({"strategy": "random_span", "num_spans": 0}, "num_spans"),
        ({"strategy": "first", "num_spans": 2}, "num_spans"),
        ({"strategy": "first", "mask_token": "[HOLE]"}, "not in the vocabulary"),
    ],
)
def test_configuration_errors(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskingCollator(tokenizer, MaskingSettings(**kwargs))


def test_collator_pickles_for_worker_processes(tokenizer):
    collator = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mask_length=5), seed=2)
    examples = dna_examples([40, 30])
    assert torch.equal(pickle.loads(pickle.dumps(collator))(examples)["input_ids"], collator(examples)["input_ids"])


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_batch_runs_through_dna_perceiver(tokenizer, mode):
    torch.manual_seed(0)
    config = DNAPerceiverConfig(num_latents=8, latent_dim=16, max_sequence_length=2000, num_features=8)
    model = DNAPerceiverForSequenceClassification(config)
    rng = np.random.default_rng(0)
    examples = [
        {"sequence": random_dna(n, rng), "label": float(i), "features": rng.normal(size=8).tolist(), "idx": i}
        for i, n in enumerate([2000, 1500, 1800])
    ]
    batch = MaskingCollator(tokenizer, MaskingSettings(strategy="random_span", mode=mode, mask_length=300))(examples)
    output = model(**batch)
    assert output.logits.shape == (3, 1) and torch.isfinite(output.loss)
    output.loss.backward()
