"""All performance comparisons of the package on this machine, each a ratio against its baseline and target.

    make bench                                     # = .venv/bin/python benchmarks/run_all.py
    python benchmarks/run_all.py --quick           # fewer repetitions, a shorter training comparison
    python benchmarks/run_all.py --revision REV    # also the default model against the bundle at git REV

1. Encoder against `transformers.PerceiverModel` at equal size: forward and forward+backward sequences/s, peak
   memory above idle (fresh process per configuration), and a training comparison of the fast path against the
   plain formulation on synthetic promoters.
2. Length scaling of the encoder from 5,000 to 80,000 positions.
3. Tokenisation against a character-level `PreTrainedTokenizer`.
4. End-to-end training steps (datasets on disk, DataLoader, masking collator) against the bare model.
5. Efficiency of the cross-attention kernel against this machine's measured matmul peaks.
6. End-to-end `predict` (FASTA in, TSV out) against the bare model's forward pass.
7. `attribute` (gradient x input, integrated gradients, DeepLIFT/SHAP) against the forward+backward passes each needs.
8. Substitutions scored incrementally (a mutagenesis scan, SNV variant effects) against the full forward pass.
Then the default DNAPerceiver (conv branch included), against --revision when given. The collator's own benchmark
(`bench_collator.py`) runs last, after motif discovery on 10,000 sequences of 1,000 positions (`bench_motifs.py`).

Timing is interleaved (contenders in turn, medians of the rounds), so a change of load hits all alike. Threads
matter on a small shared machine: OpenMP threads that spin at each barrier are the fastest on an idle machine, but
when another process holds a core they wait on the scheduler at every parallel operation (seen here: 5 to 25 times
slower, worst for the models with the most operations); sleeping (passive) threads avoid that but pay a wake-up per
operation. So the encoder is timed with two spinning threads, two passive threads and one thread, each in a fresh
process, and everything else runs with OMP_WAIT_POLICY=passive (this script re-runs itself so unless the policy is
set).
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
PASSIVE = "passive"


def ensure_wait_policy() -> None:
    """Re-runs this script with OMP_WAIT_POLICY=passive unless a policy is set (OpenMP reads it when it starts)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = PASSIVE
        os.execv(sys.executable, [sys.executable, *sys.argv])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions, a 5-epoch training comparison")
    parser.add_argument("--revision", default=None, help="git revision whose model the default model is timed against")
    parser.add_argument("--skip-collator", action="store_true", help="do not run bench_collator.py")
    parser.add_argument("--skip-motifs", action="store_true", help="do not run bench_motifs.py (about 7 minutes)")
    return parser.parse_args()


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "not met"


def threading_settings() -> dict[str, dict[str, str]]:
    """The encoder is timed three ways, each in a fresh process since OpenMP reads its settings when it starts: all
    cores with threads that spin while they wait (fastest on an idle machine, pathological on a busy one), all cores
    with threads that sleep, and one thread."""
    cores = os.cpu_count()
    return {
        f"{cores} threads, spinning": {"OMP_WAIT_POLICY": "active"},
        f"{cores} threads, {PASSIVE}": {"OMP_WAIT_POLICY": PASSIVE},
        "1 thread": {"OMP_WAIT_POLICY": PASSIVE, "OMP_NUM_THREADS": "1"},
    }


def ratio(results: dict, mode: str, precision: str) -> float:
    """Our sequences/s over the reference's (fp32)."""
    import bench_model

    ours, reference = results[(mode, "ours", precision)], results[(mode, bench_model.REFERENCE, "fp32")]
    return ours["sequences_per_s"] / reference["sequences_per_s"]


def timed_encoder(repeats: int, environment: dict[str, str], memory: bool) -> dict:
    from bench_utils import run_script

    args = ["encoder", "--json", "--repeats", str(repeats)] + ([] if memory else ["--no-memory"])
    text, records = run_script("bench_model.py", args, environment)
    print(text)
    return {(r["mode"], r["which"], r["precision"]): r for r in records}


def encoder_section(repeats: int, quick: bool) -> list[list[str]]:
    import bench_model

    settings = threading_settings()
    with_memory = next(name for name in settings if name.endswith(PASSIVE))
    runs = {name: timed_encoder(repeats, env, memory=name == with_memory) for name, env in settings.items()}
    epochs, genes = (5, 2_000) if quick else (8, 2_000)
    learning = bench_model.learning_comparison(num_genes=genes, epochs=epochs)
    bench_model.print_learning(learning, genes, bench_model.LEARNING_LENGTH)
    rows = []
    for precision in bench_model.PRECISIONS:
        for mode, label, target in (("forward", "forward", 4.0), ("train", "forward+backward", 3.0)):
            for name, results in runs.items():
                speed = ratio(results, mode, precision)
                rows.append([f"1. {label}, ours {precision}, {name}: speed vs reference", f"{speed:.2f}x"])
                rows[-1] += [f">= {target:.0f}x", verdict(speed, target)]
            measured = runs[with_memory]
            memory = measured[(mode, "ours", precision)]["memory_mb"]
            memory /= measured[(mode, bench_model.REFERENCE, "fp32")]["memory_mb"]
            rows.append([f"1. {label}, ours {precision}: peak memory vs reference", f"{memory:.2f}", "<= 0.50"])
            rows[-1].append(verdict(memory, 0.5, higher_is_better=False))
    final = {variant: run["history"][-1][1] for variant, run in learning.items()}
    rows.append(
        [
            "1. training: final validation r2, fast fp32 / fast bf16 / plain fp32",
            " / ".join(f"{final[v]:.3f}" for v in ("fast fp32", "fast bf16", "plain fp32")),
            "within 0.03",
            "met" if max(final.values()) - min(final.values()) <= 0.03 else "not met",
        ]
    )
    return rows


def scaling_section(repeats: int) -> list[list[str]]:
    import bench_model

    results = bench_model.scaling_comparison(repeats=repeats)
    bench_model.print_scaling(results, bench_model.BATCH)
    longest, base = results[max(results)], results[bench_model.LENGTH]
    time_ratio, memory_ratio = longest["seconds"] / base["seconds"], longest["memory_mb"] / base["memory_mb"]
    return [
        ["2. 80k/20k forward+backward time", f"{time_ratio:.2f}", "<= 4.4", verdict(time_ratio, 4.4, False)],
        ["2. 80k/20k peak memory", f"{memory_ratio:.2f}", "<= 4.4 (linear)", verdict(memory_ratio, 4.4, False)],
    ]


def tokenizer_section(repeats: int) -> list[list[str]]:
    import bench_tokenizer

    results = bench_tokenizer.tokenizer_comparison(repeats=repeats)
    bench_tokenizer.print_tokenizer(results, 64, 20_000)
    rows = []
    for name, entry in list(results.items())[:3]:  # the data path; the tokenizers-backed call is shown for context
        speed = entry["reference_seconds"] / entry["seconds"]
        rows.append([f"3. tokenisation: {name}", f"{speed:,.0f}x", ">= 100x", verdict(speed, 100.0)])
    return rows


def training_step_section(repeats: int) -> list[list[str]]:
    import bench_training_step

    results = bench_training_step.training_step_comparison(repeats=repeats)
    bench_training_step.print_training_step(results, 8, 20_000)
    return [
        [f"4. end to end / bare: {label}", f"{entry['end to end'] / entry['bare']:.0%}", ">= 85%"]
        + [verdict(entry["end to end"] / entry["bare"], 0.85)]
        for label, entry in results.items()
    ]


def predict_section(repeats: int) -> list[list[str]]:
    import bench_predict

    num, length, batch = 256, 10_500, 16
    results = bench_predict.predict_comparison(num, length, batch, repeats)
    bench_predict.print_predict(results, num, length, batch)
    ratio = results["end to end"] / results["bare"]
    return [["6. predict end to end / bare model", f"{ratio:.0%}", ">= 90%", verdict(ratio, bench_predict.TARGET)]]


def efficiency_section(repeats: int) -> list[list[str]]:
    import bench_model

    results = bench_model.efficiency_comparison(repeats=repeats)
    bench_model.print_efficiency(results, bench_model.BATCH, bench_model.LENGTH)
    return [
        [
            f"5. cross-attention kernel {label}",
            f"{results[key]:.0f} GFLOP/s = {results[key] / results['peak_fp32']:.0%} of fp32 peak",
            "report",
            "-",
        ]
        for key, label in (("forward_gflops", "forward"), ("train_gflops", "forward+backward"))
    ]


def attribution_section(repeats: int) -> list[list[str]]:
    import bench_attribution

    num, length, batch = 8, 2_000, 8
    results = bench_attribution.attribution_comparison(num, length, batch, steps=16, references=4, repeats=repeats)
    bench_attribution.print_attribution(results, num, length)
    return [
        [
            f"7. attribute {name} / bare passes",
            f"{r['ratio']:.0%}",
            ">= 80%",
            verdict(r["ratio"], bench_attribution.TARGET),
        ]
        for name, r in results.items()
    ]


def substitution_section(repeats: int) -> list[list[str]]:
    import bench_substitutions
    import bench_variant_effects

    length, positions, batch = 10_500, 200, 64
    rows = {features: bench_substitutions.compare(features, length, positions, batch, repeats) for features in (0, 8)}
    bench_substitutions.print_comparison(rows, length, batch)
    ratios = [row["seconds"]["full"] / row["seconds"]["incremental"] for row in rows.values()]
    variants = bench_variant_effects.comparison(genes=2, snvs=100, batch=32, repeats=repeats)
    return [
        ["8. mutagenesis scan, incremental / full", f"{min(ratios):.1f}x", ">= 8x", verdict(min(ratios), 8.0)],
        [
            "8. SNV variant effects, incremental / full",
            f"{variants['ratio']:.1f}x",
            ">= 5x",
            verdict(variants["ratio"], 5.0),
        ],
    ]


def allocator_section(repeats: int) -> list[list[str]]:
    import bench_allocator

    results = bench_allocator.comparison(rounds=repeats)
    bench_allocator.print_comparison(results)
    train = results[("train", 20_000)]
    ratio = train["glibc default"] / train["keep_freed_memory"]
    return [["9. training step at 20,000 bases, kept / fresh memory", f"{ratio:.2f}x", "> 1x", verdict(ratio, 1.0)]]


def full_model_section(revision: str | None, repeats: int) -> None:
    import bench_model

    results = bench_model.full_model_comparison(revision, repeats=repeats)
    bench_model.print_full_model(results, revision, bench_model.BATCH, bench_model.LENGTH)


def main() -> None:
    ensure_wait_policy()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    sys.path.insert(0, str(BENCHMARKS))
    args = parse_args()
    from bench_utils import machine_line, markdown_table

    repeats = 3 if args.quick else 5
    print(machine_line())
    print(f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    summary = encoder_section(repeats, args.quick)
    summary += scaling_section(3)
    summary += tokenizer_section(repeats)
    summary += training_step_section(repeats)
    summary += efficiency_section(repeats)
    summary += predict_section(3)
    summary += attribution_section(3)
    summary += substitution_section(3)
    summary += allocator_section(2)
    full_model_section(args.revision, 3)
    print("\n### Summary\n")
    print(markdown_table(["comparison", "measured", "target", "verdict"], summary))
    if not args.skip_motifs:
        print("\n### Motif discovery (bench_motifs.py)\n", flush=True)
        subprocess.run([sys.executable, str(BENCHMARKS / "bench_motifs.py")], check=True)
    if not args.skip_collator:
        print("\n### Masking collator (bench_collator.py)\n", flush=True)
        command = [sys.executable, str(BENCHMARKS / "bench_collator.py"), "--repeats", str(repeats)]
        subprocess.run(command + ["--model-batch-size", "8", "--model-steps", "2"], check=True)
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
