"""Substitution scoring: the incremental path (`model.score_substitutions`) against the full forward per mutant.

A saturation scan of one window scores each alternative letter at each position. The full path runs the model's
forward on every mutant's whole sequence, in batches, as mutagenesis does; the incremental path caches the
reference once and computes per mutant only what its substitution changes. Both score the same mutants with the
same batch size on the default DNAPerceiver (conv branch on; without and with 8 per-gene features), timed in turn
(interleaved medians, the incremental side including its reference caches); the logits are compared too. The full
path costs tens of milliseconds per mutant, so a sample of positions is timed and the default scan (2,000 positions x
3 letters) extrapolated from it (for the incremental path with its caches counted 10 times over: an upper bound).
The target: the incremental path at least 8x the full one's mutants/s.

    python benchmarks/bench_substitutions.py --length 10500 --positions 200 --batch 64
    python benchmarks/bench_substitutions.py --profile   # where the incremental path spends its time
"""

import argparse
import time

import torch
from bench_utils import interleaved_medians, machine_line, markdown_table

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from expression_perceiver.modeling.substitutions_expression_perceiver import (
    LATENT_PASS_MUTANTS,
    SubstitutionScorer,
    self_attention_block,
)

TARGET = 8.0
LETTERS = range(5, 9)  # the token ids of A C G T
SCAN_POSITIONS = 2_000  # mutagenesis's default scan: 2,000 positions x 3 letters


def default_model(num_features: int, seed: int = 0) -> DNAPerceiverForSequenceClassification:
    """The default DNAPerceiver, in evaluation mode, its batch norms' running statistics away from (0, 1) as after
    training."""
    torch.manual_seed(seed)
    config = DNAPerceiverConfig(max_sequence_length=20_000, num_features=num_features)
    model = DNAPerceiverForSequenceClassification(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


def scan(reference: torch.Tensor, positions: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`positions` random distinct positions, each with the 3 letters other than the reference's: (mutants, 1)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(reference.shape[0], generator=generator)[:positions].sort().values
    alternatives = [(p, letter) for p in chosen.tolist() for letter in LETTERS if letter != int(reference[p])]
    return torch.tensor([[p] for p, _ in alternatives]), torch.tensor([[t] for _, t in alternatives])


def full_path(model, reference, positions, tokens, features, batch: int) -> torch.Tensor:
    """The forward on each mutant's whole sequence, `batch` mutants at a time."""
    logits = []
    with torch.inference_mode():
        for start in range(0, positions.shape[0], batch):
            where, what = positions[start : start + batch], tokens[start : start + batch]
            input_ids = reference.expand(where.shape[0], -1).scatter(1, where, what)
            rows = None if features is None else features.expand(where.shape[0], -1)
            logits.append(model(input_ids=input_ids, features=rows).logits)
    return torch.cat(logits)


def compare(num_features: int, length: int, positions: int, batch: int, repeats: int) -> dict:
    """Mutants/s of both paths on one model and window, and the largest difference of their logits."""
    model = default_model(num_features)
    generator = torch.Generator().manual_seed(1)
    reference = torch.randint(LETTERS.start, LETTERS.stop, (1, length), generator=generator)
    features = torch.randn(1, num_features, generator=generator) if num_features else None
    where, what = scan(reference[0], positions)
    results = {}

    def full() -> None:
        results["full"] = full_path(model, reference, where, what, features, batch)

    def incremental() -> None:
        results["incremental"] = model.score_substitutions(reference, where, what, features=features, batch_size=batch)

    # One batch of each first (allocations, kernel choices), so that the timed rounds need no warm-up of their own.
    full_path(model, reference, where[:batch], what[:batch], features, batch)
    model.score_substitutions(reference, where[:batch], what[:batch], features=features, batch_size=batch)
    seconds = interleaved_medians({"full": full, "incremental": incremental}, repeats, warmup=0)
    difference = (results["full"] - results["incremental"]).abs().max().item()
    return {"mutants": where.shape[0], "seconds": seconds, "max_abs_diff": difference}


def print_comparison(rows: dict[int, dict], length: int, batch: int) -> None:
    threads = torch.get_num_threads()
    print(f"\n### Substitution scoring, {length:,}-base window, batch {batch}, {threads} thread(s)\n")
    scan_mutants = 3 * SCAN_POSITIONS
    header = ["model", "mutants", "full mutants/s", "incremental mutants/s", "ratio", "max abs diff"]
    header += [f"{SCAN_POSITIONS:,} x 3 scan, full", "incremental"]
    table = []
    for num_features, result in rows.items():
        mutants, seconds = result["mutants"], result["seconds"]
        rate = {name: mutants / value for name, value in seconds.items()}
        ratio = rate["incremental"] / rate["full"]
        table.append(
            [
                f"default DNAPerceiver, {num_features} features",
                f"{mutants}",
                f"{rate['full']:.1f}",
                f"{rate['incremental']:.1f}",
                f"{ratio:.1f}x",
                f"{result['max_abs_diff']:.1e}",
                f"{scan_mutants / rate['full']:.0f} s",
                f"{scan_mutants / rate['incremental']:.1f} s",
            ]
        )
    print(markdown_table(header, table))
    ratios = [result["seconds"]["full"] / result["seconds"]["incremental"] for result in rows.values()]
    print(f"\nincremental / full: {min(ratios):.1f}x at least (target >= {TARGET:.0f}x)")


def profile(length: int, positions: int, batch: int, repeats: int) -> None:
    """Milliseconds per mutant of each part of the incremental path, timed part by part over the scan's mutants
    (default DNAPerceiver with 8 features)."""
    model = default_model(8)
    generator = torch.Generator().manual_seed(1)
    reference = torch.randint(LETTERS.start, LETTERS.stop, (1, length), generator=generator)
    features = torch.randn(1, 8, generator=generator)
    where, what = scan(reference[0], positions)
    with torch.inference_mode():
        parts = profiled_parts(model, reference, features, where, what, batch)
        seconds = interleaved_medians(parts, repeats)
    mutants = where.shape[0]
    total = sum(value for name, value in seconds.items() if "once" not in name)
    rows = []
    for name, value in seconds.items():
        once = "once" in name
        rows.append([name, f"{value * 1e3:.1f} ms" if once else f"{value / mutants * 1e3:.3f} ms",
                     "" if once else f"{value / total:.0%}"])  # fmt: skip
    shape = f"{mutants} mutants, batch {batch}, passes of {LATENT_PASS_MUTANTS}"
    print(f"\n### Where the incremental path spends its time ({shape})\n")
    print(markdown_table(["part", "per mutant", "share"], rows))


def profiled_parts(model, reference, features, where, what, batch: int) -> dict:
    """The incremental path's parts over the mutants `where`, `what`, each a call that runs it for all of them."""
    scorer = SubstitutionScorer(model, reference, features=features)
    # As `score` runs them: reads and branch windows by batches, the latents by passes of a few mutants.
    batches = [(where[s : s + batch], what[s : s + batch]) for s in range(0, where.shape[0], batch)]
    passes = [
        (where[s : s + LATENT_PASS_MUTANTS], what[s : s + LATENT_PASS_MUTANTS])
        for s in range(0, where.shape[0], LATENT_PASS_MUTANTS)
    ]
    terms = [scorer.read.terms(p, t) for p, t in passes]
    branches = [scorer.branch.vector(p, t, scorer.features) for p, t in passes]
    latents = [scorer.cross.output(part) for part in terms]
    outputs = [scorer.layer_output(part, p) for part, (p, _) in zip(terms, passes, strict=True)]
    layer = model.perceiver.layers[0]

    def self_attention() -> None:
        for x in latents:
            for block, projection in zip(layer.self_attention, scorer.projections, strict=True):
                x = self_attention_block(block, projection, x)

    return {
        "reference caches (once per window)": lambda: SubstitutionScorer(model, reference, features=features),
        "cross-attention read terms (float64)": lambda: [scorer.read.terms(p, t) for p, t in batches],
        "convolutional branch windows": lambda: [scorer.branch.vector(p, t, scorer.features) for p, t in batches],
        "cross-attention block, closed form": lambda: [scorer.cross.output(part) for part in terms],
        "latent self-attention blocks": self_attention,
        "summary, branch query, head": lambda: [scorer.logits(x, b) for x, b in zip(outputs, branches, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=10_500, help="bases in the window (Xpresso's)")
    parser.add_argument("--positions", type=int, default=200, help="positions scanned (x 3 letters each)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="time the incremental path's parts instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    if args.profile:
        profile(args.length, args.positions, args.batch, args.repeats)
        return
    started = time.perf_counter()
    rows = {
        num_features: compare(num_features, args.length, args.positions, args.batch, args.repeats)
        for num_features in (0, 8)
    }
    print_comparison(rows, args.length, args.batch)
    print(f"\n(benchmark ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
