"""GPU training cost of the DNAPerceiver: bf16 throughput, one Xpresso-sized epoch, peak memory, the 50-run grid.

Run through `benchmarks/gpu.sh` (one call of under 10 minutes on one H100 or H200):

1. Training throughput (forward, backward, Adam; bf16 autocast) of the default DNAPerceiver with the 8 half-life
   features at 10,500 positions (Xpresso's window) and 20,000 (the masking study's), batch 50, with peak memory.
2. One epoch over an Xpresso-sized training set: 16,377 promoters of 10,500 generated with `generate_promoters`,
   tokenised once, fed by a DataLoader with workers through the `MaskingCollator` (random_span by default).
3. Aggregate throughput of 1, 2 and 4 training processes sharing the GPU.
4. The projected cost of the 50-run grid at the 400-epoch cap: 50 x 400 x epoch time, one run at a time and with
   runs sharing the GPU.

    python benchmarks/bench_gpu.py --output DIR          # on the GPU
    python benchmarks/bench_gpu.py --tiny --output DIR   # dry run on CPU with tiny sizes
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from expression_perceiver.data_collators import MaskingCollator, MaskingSettings
from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification, NucleotideTokenizer

REPOSITORY = Path(__file__).resolve().parent.parent
GRID_RUNS, EPOCH_CAP, GRID_TARGET_HOURS, XPRESSO_TRAIN_GENES, XPRESSO_WINDOW = 50, 400, 2, 16_377, 10_500
GENERATION_BLOCK = 1_024  # promoters generated at a time: the generator's float64 draws stay near 100 MB


def synthetic_module():
    """`expression_perceiver.data.synthetic` loaded from its file: the `data` package also imports readers
    (datasets, pyfaidx) that a bare GPU image may lack, and the generator needs numpy alone."""
    path = REPOSITORY / "expression_perceiver" / "data" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="folder for gpu_results.json and .md")
    parser.add_argument("--tiny", action="store_true", help="dry run: tiny sizes, CPU when no GPU is present")
    parser.add_argument("--strategy", default="random_span", help="masking strategy of the epoch's collator")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the epoch")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one process of the sharing test
    parser.add_argument("--seconds", type=float, default=25.0, help=argparse.SUPPRESS)
    return parser.parse_args()


def sizes(tiny: bool) -> dict:
    if tiny:
        return dict(lengths=(1_000, 2_000), batch=4, genes=40, window=1_000, steps=2, sharing=(1, 2), seconds=4.0)
    return dict(
        lengths=(XPRESSO_WINDOW, 20_000),
        batch=50,
        genes=XPRESSO_TRAIN_GENES,
        window=XPRESSO_WINDOW,
        steps=10,
        sharing=(1, 2, 4),
        seconds=25.0,
    )


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build(length: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    config = DNAPerceiverConfig(num_features=8, max_sequence_length=length)
    model = DNAPerceiverForSequenceClassification(config).to(device()).train()
    return model, torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-9)


def random_batch(batch: int, length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "input_ids": torch.randint(5, 9, (batch, length), generator=generator),
        "features": torch.randn(batch, 8, generator=generator),
        "labels": torch.randn(batch, generator=generator),
    }
    return {key: value.to(device()) for key, value in tensors.items()}


def train_step(model, optimizer, batch: dict[str, torch.Tensor]) -> None:
    with torch.autocast(device().type, dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def throughput(length: int, batch: int, steps: int) -> dict[str, float]:
    """Sequences/s of training steps on one fixed batch, and the peak GPU memory of a step."""
    model, optimizer = build(length)
    data = random_batch(batch, length)
    for _ in range(3):
        train_step(model, optimizer, data)
    synchronize()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, data)
    synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"length": length, "sequences_per_s": batch * steps / seconds, "peak_gib": peak}


class TokenisedPromoters(torch.utils.data.Dataset):
    """Examples of a (genes, length) uint8 id matrix, with labels, features and `idx` as the collator reads them."""

    def __init__(self, input_ids: np.ndarray, labels: np.ndarray, features: np.ndarray):
        self.input_ids, self.labels, self.features = input_ids, labels, features

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        return {
            "input_ids": self.input_ids[index],
            "label": float(self.labels[index]),
            "features": self.features[index],
            "idx": index,
        }


def xpresso_sized_set(genes: int, length: int) -> TokenisedPromoters:
    """`genes` generated promoters, block by block (each block standardises its own label terms; the timing does
    not depend on the labels), tokenised with the lookup table."""
    generate_promoters, tokenizer = synthetic_module().generate_promoters, NucleotideTokenizer()
    ids, labels, features = [], [], []
    for block, first in enumerate(range(0, genes, GENERATION_BLOCK)):
        generated = generate_promoters(min(GENERATION_BLOCK, genes - first), length=length, seed=block)
        ids.append(tokenizer.encode_batch_fast(generated.sequence)[0])
        labels.append(generated.label.astype(np.float32))
        features.append(generated.features)
    return TokenisedPromoters(np.concatenate(ids), np.concatenate(labels), np.concatenate(features))


def epoch_time(dataset: TokenisedPromoters, batch: int, strategy: str, workers: int) -> dict[str, float]:
    """Wall time of one training epoch through a DataLoader with workers, after a few warm-up steps."""
    model, optimizer = build(dataset.input_ids.shape[1])
    collator = MaskingCollator(NucleotideTokenizer(), MaskingSettings(strategy=strategy), seed=0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        collate_fn=collator,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )

    def run(limit: int | None) -> int:
        steps = 0
        for batch_data in loader:
            train_step(model, optimizer, {k: v.to(device(), non_blocking=True) for k, v in batch_data.items()})
            steps += 1
            if limit is not None and steps >= limit:
                break
        synchronize()
        return steps

    run(3)  # warm-up: kernels chosen, memory pools grown
    start = time.perf_counter()
    steps = run(None)
    return {"epoch_seconds": time.perf_counter() - start, "steps": steps, "genes": len(dataset)}


def worker(length: int, batch: int, seconds: float) -> None:
    """One process of the sharing test: trains for `seconds` after warm-up and prints its sequences/s."""
    model, optimizer = build(length)
    data = random_batch(batch, length)
    for _ in range(3):
        train_step(model, optimizer, data)
    synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        train_step(model, optimizer, data)
        steps += 1
    synchronize()
    print(json.dumps({"sequences_per_s": batch * steps / (time.perf_counter() - start)}))


def shared_throughput(processes: int, length: int, batch: int, seconds: float, tiny: bool) -> float:
    """Aggregate sequences/s of `processes` training processes running at once on the device."""
    command = [sys.executable, __file__, "--worker", "--output", ".", "--seconds", str(seconds)]
    command += ["--tiny"] if tiny else []
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    outputs = [process.communicate()[0] for process in running]
    if any(process.returncode for process in running):
        raise RuntimeError(f"a sharing worker failed: {outputs}")
    return sum(json.loads(output.strip().splitlines()[-1])["sequences_per_s"] for output in outputs)


def projection(epoch_seconds: float, genes: int, shared: dict[int, float]) -> dict:
    """Hours of the 50-run grid at the 400-epoch cap: runs one at a time at the measured epoch time, and with k runs
    sharing the device at the measured aggregate throughput (scaled by the single-run epoch's data overhead)."""
    single_rate = shared[1]
    sequential = GRID_RUNS * EPOCH_CAP * epoch_seconds / 3600
    overhead = epoch_seconds / (genes / single_rate)  # epoch time against pure training steps
    return {
        "sequential_hours": sequential,
        "shared_hours": {
            k: GRID_RUNS * EPOCH_CAP * genes / rate * overhead / 3600 for k, rate in shared.items() if k > 1
        },
    }


def report(results: dict) -> str:
    lines = [f"Device: {results['device']}, torch {results['torch']}", ""]
    batch = results["batch"]
    lines += [f"| positions | training sequences/s (bf16, batch {batch}) | peak GPU memory GiB |", "|---:|---:|---:|"]
    lines += [f"| {r['length']:,} | {r['sequences_per_s']:.0f} | {r['peak_gib']:.2f} |" for r in results["throughput"]]
    epoch = results["epoch"]
    lines += [
        "",
        f"One epoch of {epoch['genes']:,} promoters of {results['window']:,} ({epoch['steps']} steps, "
        f"{results['strategy']} masking, {results['workers']} loader workers): {epoch['epoch_seconds']:.1f} s "
        "(target <= 10 s on an H100)",
        "",
        "| training processes sharing the device | aggregate sequences/s |",
        "|---:|---:|",
    ]
    lines += [f"| {k} | {rate:.0f} |" for k, rate in results["shared"].items()]
    grid = results["projection"]
    lines += ["", f"50-run grid at the 400-epoch cap, one run at a time: {grid['sequential_hours']:.2f} GPU-hours"]
    lines += [f"with {k} runs sharing the device: {hours:.2f} GPU-hours" for k, hours in grid["shared_hours"].items()]
    budget = GRID_TARGET_HOURS * 3600 / (GRID_RUNS * EPOCH_CAP)
    lines += [f"(target <= {GRID_TARGET_HOURS} GPU-hours, i.e. {budget:.2f} s per epoch of one run at the cap)"]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    plan = sizes(args.tiny)
    if args.worker:
        worker(plan["window"], plan["batch"], args.seconds)
        return
    args.output.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    results = {"device": name, "torch": torch.__version__, "window": plan["window"], "strategy": args.strategy}
    results["batch"] = plan["batch"]
    results["workers"] = 0 if args.tiny else args.workers
    results["throughput"] = [throughput(length, plan["batch"], plan["steps"]) for length in plan["lengths"]]
    print(json.dumps(results["throughput"]), flush=True)
    start = time.perf_counter()
    dataset = xpresso_sized_set(plan["genes"], plan["window"])
    print(f"generated and tokenised {len(dataset):,} promoters in {time.perf_counter() - start:.0f} s", flush=True)
    results["epoch"] = epoch_time(dataset, plan["batch"], args.strategy, results["workers"])
    print(json.dumps(results["epoch"]), flush=True)
    results["shared"] = {
        k: shared_throughput(k, plan["window"], plan["batch"], plan["seconds"], args.tiny) for k in plan["sharing"]
    }
    results["projection"] = projection(results["epoch"]["epoch_seconds"], plan["genes"], results["shared"])
    (args.output / "gpu_results.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (args.output / "gpu_results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
