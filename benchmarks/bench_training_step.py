"""End-to-end training steps against the bare model's steps on pre-made tensors, same model and batch.

End to end: a `datasets.Dataset` with a string `sequence` column (plus label, 8 features and `idx`), saved with
`save_to_disk` and read back with `load_from_disk` (memory-mapped Arrow), iterated by a `torch.utils.data.DataLoader`
(shuffled, in the main process) whose `collate_fn` is the `MaskingCollator` (random_span: tokenisation, padding,
masking), then forward, backward and an Adam step. Bare: the same steps on one batch collated beforehand.

    python benchmarks/bench_training_step.py --batch 8 --length 20000
"""

import argparse
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import torch
from bench_utils import interleaved_medians, machine_line, markdown_table
from datasets import Dataset, load_from_disk

from expression_perceiver.data_collators import MaskingCollator, MaskingSettings
from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification, NucleotideTokenizer

MODELS = {
    "default DNAPerceiver (conv branch), 8 features": dict(num_features=8),
    "encoder only (use_conv_branch=False), 8 features": dict(num_features=8, use_conv_branch=False),
}


def write_dataset(folder: str, rows: int, length: int, seed: int = 0) -> Dataset:
    """Random promoters with labels and features, saved to disk and loaded back memory-mapped."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    Dataset.from_dict(
        {
            "sequence": [letters[rng.integers(0, 4, length)].tobytes().decode("ascii") for _ in range(rows)],
            "label": rng.normal(size=rows).tolist(),
            "features": rng.normal(size=(rows, 8)).astype(np.float32).tolist(),
            "idx": list(range(rows)),
        }
    ).save_to_disk(folder)
    return load_from_disk(folder)


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    while True:
        yield from loader


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def step_pair(overrides: dict, dataset: Dataset, batch: int, length: int) -> dict[str, Callable[[], None]]:
    """The end-to-end step and the bare step of one model (each with its own copy of the same initial weights)."""
    collator = MaskingCollator(NucleotideTokenizer(), MaskingSettings(strategy="random_span"), seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, collate_fn=collator, num_workers=0, drop_last=True
    )
    batches = endless(loader)
    premade = collator([dataset[i] for i in range(batch)])
    steps = {}
    for name in ("end to end", "bare"):
        torch.manual_seed(0)
        model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**overrides, max_sequence_length=length))
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        if name == "bare":
            steps[name] = lambda m=model, o=optimizer: training_step(m, o, premade)
        else:
            steps[name] = lambda m=model, o=optimizer: training_step(m, o, next(batches))
    return steps


def training_step_comparison(batch: int = 8, length: int = 20_000, repeats: int = 5) -> dict[str, dict[str, float]]:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        dataset = write_dataset(folder, rows=batch * 4, length=length)
        for label, overrides in MODELS.items():
            seconds = interleaved_medians(step_pair(overrides, dataset, batch, length), repeats)
            results[label] = {name: batch / value for name, value in seconds.items()}
    return results


def print_training_step(results: dict[str, dict[str, float]], batch: int, length: int) -> None:
    print(f"\n### End-to-end training step against the bare model, batch {batch} x {length:,}\n")
    rows = [
        [label, f"{entry['bare']:.2f}", f"{entry['end to end']:.2f}", f"{entry['end to end'] / entry['bare']:.0%}"]
        for label, entry in results.items()
    ]
    print(markdown_table(["model", "bare sequences/s", "end-to-end sequences/s", "end to end / bare"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (medians are reported)")
    args = parser.parse_args()
    print(machine_line())
    print_training_step(training_step_comparison(args.batch, args.length, args.repeats), args.batch, args.length)


if __name__ == "__main__":
    main()
