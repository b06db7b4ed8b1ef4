"""Speed, memory and learning of the Perceiver encoder against `transformers.PerceiverModel`, on this machine's CPU.

Subcommands (each prints Markdown; `run_all.py` calls the same functions):

    encoder     ours vs transformers' Perceiver at equal size, batch 8 x 20,000: sequences/s forward and
                forward+backward, and peak memory above the idle process (each in a fresh process)
    scaling     ours from 5,000 to 80,000 positions: time and peak memory against 20,000
    efficiency  GFLOP/s of the cross-attention kernel against this machine's measured matmul peak
    full        the default DNAPerceiver (conv branch included), optionally against an earlier revision
    learning    short training runs of the fast path and the plain formulation on synthetic promoters
    memory-probe  (internal) one configuration's peak memory, run by the others in a fresh process

    python benchmarks/bench_model.py encoder --repeats 7
"""

import argparse
import contextlib
import importlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from bench_utils import (
    REPOSITORY,
    interleaved_medians,
    machine_line,
    markdown_table,
    peak_above_idle_mb,
    run_probe,
)
from transformers import PerceiverConfig, PerceiverModel

from expression_perceiver.modeling import (
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    DNAPerceiverModel,
    NucleotideTokenizer,
)
from expression_perceiver.modeling import kernels_expression_perceiver as kernels

BATCH, LENGTH = 8, 20_000
SCALING_LENGTHS = (5_000, 10_000, 20_000, 40_000, 80_000)
LEARNING_LENGTH = 1_000
PRECISIONS = ("fp32", "bf16")


# The reference, and the reference with transformers' default dropout of attention probabilities (training only).
REFERENCE, REFERENCE_DROPOUT = "reference", "reference, attention dropout 0.1"
# Ours as shipped does about 4x the reference's latent work (8 heads of 64 against 8 of 16, GEGLU); the reference
# cannot be widened (its self-attention output cannot take wider values than its latents), so ours is narrowed.
OURS, OURS_EQUAL_WORK = "ours", "ours at the reference's widths"
EQUAL_WORK_WIDTHS = {"self_attention_head_dim": 16, "cross_attention_head_dim": 32}


def reference_encoder(attention_dropout: float = 0.0) -> PerceiverModel:
    """`transformers.PerceiverModel` at the size of ours: 128 latents of 128, one 1-head cross-attention over 32-d
    inputs (fed pre-embedded, no preprocessor), one block of one 8-head latent self-attention, no decoder. The other
    fields keep transformers' defaults (cross-attention keys/values of 32 channels, self-attention of 128, MLP
    widening 1), except the dropout of attention probabilities, 0 by default here: at transformers' 0.1 the
    reference trains markedly slower on CPU, and the headline comparison should not gain from it."""
    config = PerceiverConfig(
        num_latents=128,
        d_latents=128,
        d_model=32,
        num_blocks=1,
        num_self_attends_per_block=1,
        num_self_attention_heads=8,
        num_cross_attention_heads=1,
        attention_probs_dropout_prob=attention_dropout,
    )
    return PerceiverModel(config)


def our_encoder(length: int = LENGTH, equal_work: bool = False) -> DNAPerceiverModel:
    """Ours at the same size: token embedding + learnable position encoding, 128 latents of 128, one 1-head
    cross-attention (64-d head) and one 8-head latent self-attention block, GEGLU feed-forwards, dropout 0.2;
    `use_conv_branch=False`. With `equal_work`, at the reference's attention widths (`EQUAL_WORK_WIDTHS`)."""
    widths = EQUAL_WORK_WIDTHS if equal_work else {}
    config = DNAPerceiverConfig(use_conv_branch=False, max_sequence_length=max(length, LENGTH), **widths)
    return DNAPerceiverModel(config)


def random_dna_ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Token ids of random A/C/G/T (5..8 in our vocabulary)."""
    return torch.randint(5, 9, (batch, length), generator=torch.Generator().manual_seed(seed))


def encoder_step(which: str, mode: str, precision: str, batch: int, length: int) -> Callable[[], None]:
    """One forward (eval, no grad) or forward+backward (train) of an encoder on a fixed random batch."""
    torch.manual_seed(0)
    if which in (REFERENCE, REFERENCE_DROPOUT):
        model = reference_encoder(attention_dropout=0.1 if which == REFERENCE_DROPOUT else 0.0)
        inputs = {"inputs": torch.randn(batch, length, 32)}
    else:
        model, inputs = our_encoder(length, which == OURS_EQUAL_WORK), {"input_ids": random_dna_ids(batch, length)}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    if mode == "forward":
        model.eval()

        def forward() -> None:
            with torch.no_grad(), autocast:
                model(**inputs)

        return forward
    model.train()

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        with autocast:
            out = model(**inputs).last_hidden_state
        out.float().sum().backward()

    return forward_backward


def memory_probe(which: str, mode: str, precision: str, batch: int, length: int) -> dict:
    """Peak resident memory of one step above the idle process (model and inputs built), in this process."""
    return peak_above_idle_mb(encoder_step(which, mode, precision, batch, length))


def probed_memory(which: str, mode: str, precision: str, batch: int, length: int) -> float:
    """Peak memory above idle (MB) of one configuration, measured in a fresh process."""
    args = ["memory-probe", "--which", which, "--mode", mode, "--precision", precision]
    return run_probe("bench_model.py", [*args, "--batch", str(batch), "--length", str(length)])["delta_mb"]


def encoder_comparison(batch: int = BATCH, length: int = LENGTH, repeats: int = 5, memory: bool = True) -> dict:
    """Sequences/s and (unless `memory` is False) peak memory of ours and the reference, each in fp32 and under bf16
    autocast (and, in training, the reference with transformers' default attention dropout)."""
    results = {}
    for mode in ("forward", "train"):
        configs = [(which, precision) for which in (OURS, OURS_EQUAL_WORK, REFERENCE) for precision in PRECISIONS]
        configs += [(REFERENCE_DROPOUT, "fp32")] if mode == "train" else []
        steps = {
            f"{which} {precision}": encoder_step(which, mode, precision, batch, length) for which, precision in configs
        }
        seconds = interleaved_medians(steps, repeats)
        for (which, precision), name in zip(configs, steps, strict=True):
            results[(mode, which, precision)] = {
                "sequences_per_s": batch / seconds[name],
                "memory_mb": probed_memory(which, mode, precision, batch, length) if memory else float("nan"),
            }
    return results


def print_encoder(results: dict, batch: int, length: int) -> None:
    threads = torch.get_num_threads()
    print(f"\n### Encoder against transformers.PerceiverModel, batch {batch} x {length:,}, {threads} thread(s)\n")
    rows = []
    for mode, label in (("forward", "forward"), ("train", "forward+backward")):
        base = results[(mode, REFERENCE, "fp32")]
        for (entry_mode, which, precision), entry in results.items():
            if entry_mode == mode:
                rows.append(
                    [
                        label,
                        which,
                        precision,
                        f"{entry['sequences_per_s']:.1f}",
                        f"{entry['sequences_per_s'] / base['sequences_per_s']:.2f}x",
                        f"{entry['memory_mb']:.0f}",
                        f"{entry['memory_mb'] / base['memory_mb']:.2f}",
                    ]
                )
    header = ["pass", "model", "precision", "sequences/s", "speed vs ref fp32", "peak MB above idle", "memory vs ref"]
    print(markdown_table(header, rows))


def scaling_comparison(batch: int = BATCH, lengths=SCALING_LENGTHS, repeats: int = 3) -> dict:
    """Forward+backward seconds and peak memory of ours at each length (fp32)."""
    steps = {length: encoder_step(OURS, "train", "fp32", batch, length) for length in lengths}
    seconds = interleaved_medians(steps, repeats)
    return {
        length: {"seconds": seconds[length], "memory_mb": probed_memory(OURS, "train", "fp32", batch, length)}
        for length in lengths
    }


def print_scaling(results: dict, batch: int) -> None:
    print(f"\n### Length scaling of ours, forward+backward, batch {batch}, fp32\n")
    base = results[LENGTH] if LENGTH in results else next(iter(results.values()))
    rows = [
        [
            f"{length:,}",
            f"{entry['seconds'] * 1e3:.0f}",
            f"{entry['seconds'] / base['seconds']:.2f}",
            f"{length / LENGTH:.2f}",
            f"{entry['seconds'] / (batch * length) * 1e9:.0f}",
            f"{entry['memory_mb']:.0f}",
            f"{entry['memory_mb'] / base['memory_mb']:.2f}",
        ]
        for length, entry in results.items()
    ]
    header = ["length", "ms/step", "time vs 20k", "length vs 20k", "ns/position", "peak MB above idle", "memory vs 20k"]
    print(markdown_table(header, rows))


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a large square matrix product in `dtype`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    seconds = interleaved_medians({"matmul": lambda: a @ b}, repeats)["matmul"]
    return 2 * size**3 / seconds / 1e9


def efficiency_comparison(batch: int = BATCH, length: int = LENGTH, repeats: int = 5) -> dict:
    """Achieved GFLOP/s of the chunked cross-attention kernel, forward and forward+backward.

    FLOPs are counted analytically from the matrix products the kernel runs, each 2 * batch * queries * length *
    width: forward 2 (scores, weighted sum), backward 5 (scores and grad . x together: 2, grad query: 1, grad x: 2;
    the recomputed scores are included, as they are executed work)."""
    torch.manual_seed(0)
    encoder = our_encoder(length).perceiver
    tokens, positions = encoder.embedding.centered_tables(length)
    input_ids = random_dna_ids(batch, length)
    queries, width = encoder.config.num_latents * encoder.config.cross_attention_heads, encoder.config.embedding_dim
    query = torch.randn(batch, queries, width) * 0.1
    scale, eps = encoder.config.cross_attention_head_dim**-0.5, encoder.config.layer_norm_eps
    chunk = kernels.positions_per_chunk(queries, encoder.config.max_sequence_length)

    def forward() -> None:
        with torch.no_grad():
            kernels.ChunkedSequenceAttention.apply(query, tokens, positions, input_ids, None, scale, eps, 0, chunk)

    leaf_query, leaf_tokens, leaf_positions = (t.detach().requires_grad_() for t in (query, tokens, positions))

    def forward_backward() -> None:
        out = kernels.ChunkedSequenceAttention.apply(
            leaf_query, leaf_tokens, leaf_positions, input_ids, None, scale, eps, 0, chunk
        )
        out.sum().backward()

    seconds = interleaved_medians({"forward": forward, "forward+backward": forward_backward}, repeats)
    unit = 2 * batch * queries * length * width
    return {
        "forward_gflops": 2 * unit / seconds["forward"] / 1e9,
        "train_gflops": 7 * unit / seconds["forward+backward"] / 1e9,
        "forward_ms": seconds["forward"] * 1e3,
        "train_ms": seconds["forward+backward"] * 1e3,
        "peak_fp32": matmul_peak(torch.float32),
        "peak_bf16": matmul_peak(torch.bfloat16),
    }


def print_efficiency(results: dict, batch: int, length: int) -> None:
    print(f"\n### Cross-attention kernel efficiency, batch {batch} x {length:,}, float32\n")
    print(
        f"Measured matmul peak (2048^3, median of 5): fp32 {results['peak_fp32']:.0f} GFLOP/s, "
        f"bf16 {results['peak_bf16']:.0f} GFLOP/s\n"
    )
    rows = [
        [
            label,
            f"{results[f'{key}_ms']:.1f}",
            f"{results[f'{key}_gflops']:.0f}",
            f"{results[f'{key}_gflops'] / results['peak_fp32']:.0%}",
            f"{results[f'{key}_gflops'] / results['peak_bf16']:.0%}",
        ]
        for key, label in (("forward", "forward"), ("train", "forward+backward"))
    ]
    print(markdown_table(["pass", "ms", "GFLOP/s", "of fp32 peak", "of bf16 peak"], rows))


@contextlib.contextmanager
def bundle_from_revision(revision: str) -> Iterator[object]:
    """The modeling module of the Hub bundle as it was at a git revision, imported from a temporary package."""
    with tempfile.TemporaryDirectory() as folder:
        package = Path(folder) / "bundle_at_revision"
        package.mkdir()

        def git(*arguments: str) -> str:
            run = subprocess.run(["git", *arguments], cwd=REPOSITORY, capture_output=True, text=True, check=True)
            return run.stdout

        for path in git("ls-tree", "--name-only", revision, "expression_perceiver/modeling/").split():
            name = Path(path).name
            # The package's __init__ also imports the tokenizers and the registry; the models alone are needed here.
            (package / name).write_text("" if name == "__init__.py" else git("show", f"{revision}:{path}"))
        sys.path.insert(0, folder)
        try:
            yield importlib.import_module("bundle_at_revision.modeling_expression_perceiver")
        finally:
            sys.path.remove(folder)
            for module in [name for name in sys.modules if name.startswith("bundle_at_revision")]:
                del sys.modules[module]


def full_model_step(model_class, config_class, state: dict, mode: str, batch: int, length: int) -> Callable:
    """Forward (eval, no grad) or forward+backward (train) of the default DNAPerceiver with given weights."""
    model = model_class(config_class())
    model.load_state_dict(state)
    input_ids = random_dna_ids(batch, length)
    labels = torch.randn(batch)
    if mode == "forward":
        model.eval()

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return model(input_ids=input_ids).logits

        return forward
    model.train()

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=input_ids, labels=labels).loss.backward()

    return forward_backward


def full_model_comparison(revision: str | None, batch: int = BATCH, length: int = LENGTH, repeats: int = 3) -> dict:
    """The default DNAPerceiverForSequenceClassification now, and at `revision` with the same weights."""
    torch.manual_seed(0)
    state = DNAPerceiverForSequenceClassification(DNAPerceiverConfig()).state_dict()
    with contextlib.ExitStack() as stack:
        versions = {"now": (DNAPerceiverForSequenceClassification, DNAPerceiverConfig)}
        if revision:
            old = stack.enter_context(bundle_from_revision(revision))
            versions[revision] = (old.DNAPerceiverForSequenceClassification, old.DNAPerceiverConfig)
        results = {}
        for mode in ("forward", "train"):
            steps = {name: full_model_step(*classes, state, mode, batch, length) for name, classes in versions.items()}
            if mode == "forward" and revision:
                results["max_abs_logit_difference"] = (steps["now"]() - steps[revision]()).abs().max().item()
            seconds = interleaved_medians(steps, repeats)
            results.update({(mode, name): value for name, value in seconds.items()})
    return results


def print_full_model(results: dict, revision: str | None, batch: int, length: int) -> None:
    print(f"\n### Default DNAPerceiverForSequenceClassification (conv branch included), batch {batch} x {length:,}\n")
    rows = []
    for mode, label in (("forward", "forward"), ("train", "forward+backward")):
        now = results[(mode, "now")]
        row = [label, f"{now * 1e3:.0f}"]
        if revision:
            before = results[(mode, revision)]
            row = [label, f"{before * 1e3:.0f}", f"{now * 1e3:.0f}", f"{before / now:.2f}x"]
        rows.append(row)
    header = ["pass", f"ms at {revision}", "ms now", "speed-up"] if revision else ["pass", "ms now"]
    print(markdown_table(header, rows))
    if revision:
        print(f"\nLargest logit difference between the two (same weights): {results['max_abs_logit_difference']:.1e}")


def synthetic_splits(num_genes: int, length: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Generated promoters tokenised into train (80%) and validation (20%) tensors, labels standardised."""
    from expression_perceiver.data.synthetic import generate_promoters

    generated = generate_promoters(num_genes, length=length, seed=seed)
    input_ids, _ = NucleotideTokenizer().encode_batch_fast(generated.sequence)
    labels = (generated.label - generated.label.mean()) / generated.label.std()
    cut = int(0.8 * num_genes)
    columns = {
        "input_ids": torch.from_numpy(input_ids.astype(np.int64)),
        "features": torch.from_numpy(generated.features),
        "labels": torch.from_numpy(labels.astype(np.float32)),
    }
    return {
        "train": {key: value[:cut] for key, value in columns.items()},
        "validation": {key: value[cut:] for key, value in columns.items()},
    }


def squared_pearson(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float(np.corrcoef(predictions.numpy(), labels.numpy())[0, 1] ** 2)


def train_run(splits: dict, variant: str, epochs: int, batch: int, seed: int) -> dict:
    """Trains the encoder-only regression model (features on) from the same initial weights and batch order."""
    length = splits["train"]["input_ids"].shape[1]
    implementation = "reference" if variant.startswith("plain") else "auto"
    config = DNAPerceiverConfig(
        use_conv_branch=False, num_features=8, max_sequence_length=length, sequence_attention=implementation
    )
    torch.manual_seed(seed)
    model = DNAPerceiverForSequenceClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    train, validation = splits["train"], splits["validation"]
    order = torch.Generator().manual_seed(seed)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.endswith("bf16"))
    history = []
    for _ in range(epochs):
        model.train()
        losses = []
        permutation = torch.randperm(len(train["labels"]), generator=order)
        for first in range(0, len(permutation), batch):
            rows = permutation[first : first + batch]
            with autocast:
                loss = model(**{key: value[rows] for key, value in train.items()}).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        model.eval()
        with torch.no_grad(), autocast:
            predictions = model(input_ids=validation["input_ids"], features=validation["features"]).logits
        history.append((float(np.mean(losses)), squared_pearson(predictions.float()[:, 0], validation["labels"])))
    return {"history": history}


def learning_comparison(
    num_genes: int = 2_000, length: int = LEARNING_LENGTH, epochs: int = 8, batch: int = 32
) -> dict:
    splits = synthetic_splits(num_genes, length, seed=0)
    return {
        variant: train_run(splits, variant, epochs, batch, seed=0)
        for variant in ("plain fp32", "fast fp32", "fast bf16")
    }


def print_learning(results: dict, num_genes: int, length: int) -> None:
    print(f"\n### Training: fast path against the plain formulation, {num_genes:,} synthetic promoters of {length:,}\n")
    variants = list(results)
    epochs = len(results[variants[0]]["history"])
    rows = [
        [str(epoch + 1)]
        + [f"{results[v]['history'][epoch][0]:.4f} / {results[v]['history'][epoch][1]:.4f}" for v in variants]
        for epoch in range(epochs)
    ]
    print(markdown_table(["epoch"] + [f"{v}: train loss / val r2" for v in variants], rows))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["encoder", "scaling", "efficiency", "full", "learning", "memory-probe"])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--length", type=int, default=None, help="positions (default 20,000; learning: 1,000)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (medians are reported)")
    parser.add_argument("--revision", default=None, help="full: also time the bundle at this git revision")
    parser.add_argument("--num-genes", type=int, default=2_000, help="learning: synthetic promoters")
    parser.add_argument("--epochs", type=int, default=8, help="learning: epochs per run")
    parser.add_argument(
        "--which", choices=[OURS, OURS_EQUAL_WORK, REFERENCE, REFERENCE_DROPOUT], default=OURS, help="memory-probe"
    )
    parser.add_argument("--mode", choices=["forward", "train"], default="train", help="memory-probe: pass")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="memory-probe: precision")
    parser.add_argument("--no-memory", action="store_true", help="encoder: skip the peak-memory probes")
    parser.add_argument("--json", action="store_true", help="encoder: also print the results as a last JSON line")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    length = args.length or (LEARNING_LENGTH if args.command == "learning" else LENGTH)
    if args.command == "memory-probe":
        print(json.dumps(memory_probe(args.which, args.mode, args.precision, args.batch, length)))
        return
    print(machine_line())
    if args.command == "encoder":
        results = encoder_comparison(args.batch, length, args.repeats, memory=not args.no_memory)
        print_encoder(results, args.batch, length)
        if args.json:
            print(json.dumps([{"mode": m, "which": w, "precision": p, **v} for (m, w, p), v in results.items()]))
    elif args.command == "scaling":
        print_scaling(scaling_comparison(args.batch, repeats=args.repeats), args.batch)
    elif args.command == "efficiency":
        print_efficiency(efficiency_comparison(args.batch, length, args.repeats), args.batch, length)
    elif args.command == "full":
        print_full_model(
            full_model_comparison(args.revision, args.batch, length, args.repeats), args.revision, args.batch, length
        )
    elif args.command == "learning":
        print_learning(learning_comparison(args.num_genes, length, args.epochs), args.num_genes, length)


if __name__ == "__main__":
    main()
