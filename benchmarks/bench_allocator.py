"""Fresh memory against kept memory: the default DNAPerceiver's forward (eval) and training step (forward+backward)
with glibc's default allocator and after `keep_freed_memory()`, at Xpresso's window (10,500) and the full 20,000
bases, batch 8. The setting is process-wide, so each setting runs in its own process; the two processes are started
in turn, round after round, and the medians over rounds are compared.

    python benchmarks/bench_allocator.py --rounds 3
"""

import argparse
import json
import statistics
import sys

import torch
from bench_utils import interleaved_medians, machine_line, markdown_table, run_script

from expression_perceiver.allocator import SWITCH, keep_freed_memory
from expression_perceiver.modeling import DNAPerceiverConfig, DNAPerceiverForSequenceClassification

BATCH, LENGTHS, MODES = 8, (10_500, 20_000), ("forward", "train")
SETTINGS = {"glibc default": {SWITCH: "0"}, "keep_freed_memory": {SWITCH: "1"}}


def time_steps(mode: str, length: int, steps: int) -> float:
    """Median seconds of `steps` passes (after one warm-up) of the default model on a random batch."""
    from bench_model import full_model_step

    torch.manual_seed(0)
    state = DNAPerceiverForSequenceClassification(DNAPerceiverConfig()).state_dict()
    step = full_model_step(DNAPerceiverForSequenceClassification, DNAPerceiverConfig, state, mode, BATCH, length)
    return interleaved_medians({"step": step}, steps)["step"]


def comparison(rounds: int = 3, steps: int = 3, lengths=LENGTHS) -> dict:
    """{(mode, length): {setting: median seconds over rounds}}."""
    results = {}
    for length in lengths:
        for mode in MODES:
            seconds = {name: [] for name in SETTINGS}
            for _ in range(rounds):
                for name, environment in SETTINGS.items():
                    args = ["--child", mode, "--length", str(length), "--steps", str(steps)]
                    seconds[name].append(run_script("bench_allocator.py", args, environment)[1]["seconds"])
            results[(mode, length)] = {name: statistics.median(values) for name, values in seconds.items()}
    return results


def print_comparison(results: dict) -> None:
    print(f"\n### Fresh memory against kept memory: default DNAPerceiver, batch {BATCH}, one process per setting\n")
    rows = []
    for (mode, length), seconds in results.items():
        fresh, kept = seconds["glibc default"], seconds["keep_freed_memory"]
        label = "forward (eval)" if mode == "forward" else "forward+backward (train)"
        rows.append([label, f"{length:,}", f"{fresh * 1e3:.0f}", f"{kept * 1e3:.0f}", f"{fresh / kept:.2f}x"])
    print(markdown_table(["pass", "length", "ms, glibc default", "ms, kept", "speed-up"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=MODES, help="(internal) time one pass in this process")
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3, help="timed passes per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, started in turn")
    args = parser.parse_args()
    if args.child:
        keep_freed_memory()  # a no-op under SWITCH=0
        print(json.dumps({"seconds": time_steps(args.child, args.length, args.steps)}))
        return
    print(machine_line())
    lengths = LENGTHS if args.length is None else (args.length,)
    print_comparison(comparison(args.rounds, args.steps, lengths))


if __name__ == "__main__":
    sys.exit(main())
