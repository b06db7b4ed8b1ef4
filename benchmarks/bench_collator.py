"""Throughput of the masking collator against a training step of the default DNAPerceiver.

Collates batches of random promoter-length DNA (with a label, 8 features and an `idx` per example, as in Xpresso)
for every masking strategy and mode, from string sequences and from pre-tokenized int64 ids (what the numpy and
torch formatters of `datasets` yield), then times forward + backward + Adam step of
`DNAPerceiverForSequenceClassification(DNAPerceiverConfig(num_features=8))` on the same batch shape. Prints a
Markdown table of sequences/s and the ratio collator/model.

    python benchmarks/bench_collator.py --batch-size 50 --length 20000 --repeats 10 --model-steps 3
"""

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from expression_perceiver.data_collators import MaskingCollator, MaskingSettings
from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification, NucleotideTokenizer

SETTINGS = [
    ("none", "mask"),
    ("random_span", "mask"),
    ("random_span", "drop"),
    ("first", "mask"),
    ("first", "drop"),
    ("middle", "mask"),
    ("middle", "drop"),
    ("last", "mask"),
    ("last", "drop"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=50, help="sequences per collated batch")
    parser.add_argument("--length", type=int, default=20_000, help="bases per sequence")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per collator setting")
    parser.add_argument("--model-batch-size", type=int, default=None, help="batch of the model step (default: same)")
    parser.add_argument("--model-steps", type=int, default=3, help="timed training steps after one warm-up step")
    parser.add_argument("--skip-model", action="store_true", help="time the collator only")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_examples(batch_size: int, length: int, seed: int, tokenizer: NucleotideTokenizer) -> dict[str, list[dict]]:
    """The same batch as string sequences and as pre-tokenized int64 ids."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    strings = [letters[rng.integers(0, 4, length)].tobytes().decode("ascii") for _ in range(batch_size)]
    extras = [
        {"label": float(rng.normal()), "features": rng.normal(size=8).tolist(), "idx": i} for i in range(batch_size)
    ]
    return {
        "sequence": [{"sequence": s, **extra} for s, extra in zip(strings, extras, strict=True)],
        "input_ids": [
            {"input_ids": tokenizer.encode_fast(s).astype(np.int64), **extra}
            for s, extra in zip(strings, extras, strict=True)
        ],
    }


def median_seconds(step: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_sequences_per_second(batch_size: int, length: int, steps: int, seed: int) -> tuple[float, float]:
    """(sequences/s, seconds/step) of a DNAPerceiver training step (forward, backward, Adam) on random DNA."""
    torch.manual_seed(seed)
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(num_features=8, max_sequence_length=length))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    tokenizer = NucleotideTokenizer()
    batch = MaskingCollator(tokenizer)(make_examples(batch_size, length, seed, tokenizer)["input_ids"])

    def training_step():
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = median_seconds(training_step, steps)
    return batch_size / seconds, seconds


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return names[0] if names else platform.processor()


def main() -> None:
    args = parse_args()
    tokenizer = NucleotideTokenizer()
    examples = make_examples(args.batch_size, args.length, args.seed, tokenizer)
    print(
        f"CPU: {cpu_model()}, nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )
    model_rate = None
    if not args.skip_model:
        model_batch = args.model_batch_size or args.batch_size
        model_rate, step_seconds = model_sequences_per_second(model_batch, args.length, args.model_steps, args.seed)
        print(
            f"model training step: batch {model_batch} x {args.length}, {step_seconds:.2f} s/step, "
            f"{model_rate:.2f} sequences/s (median of {args.model_steps} steps after 1 warm-up)"
        )
    print(f"\ncollator: batch {args.batch_size} x {args.length}, median of {args.repeats} batches after 1 warm-up\n")
    print("| input | strategy | mode | ms/batch | sequences/s | collator/model |")
    print("|---|---|---|---:|---:|---:|")
    for source, batch_examples in examples.items():
        for strategy, mode in SETTINGS:
            collator = MaskingCollator(
                tokenizer, MaskingSettings(strategy=strategy, mode=mode), seed=args.seed, epoch=1
            )
            seconds = median_seconds(lambda c=collator, b=batch_examples: c(b), args.repeats)
            rate = args.batch_size / seconds
            ratio = f"{rate / model_rate:,.0f}" if model_rate else "-"
            shown_mode = "-" if strategy == "none" else mode
            print(f"| {source} | {strategy} | {shown_mode} | {seconds * 1e3:.1f} | {rate:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
