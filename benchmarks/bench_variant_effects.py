"""`variant-effect` on a VCF of SNVs: the incremental path (each ALT window at the cost of what it changes) against
the full forward pass of every ALT window (`incremental=False`), the same default DNAPerceiver, windows, batch size
and thread, timed in turn (interleaved medians); both tables must agree to 1e-5 in z-score units. Target: >= 5x.

    python benchmarks/bench_variant_effects.py --genes 2 --snvs 150
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_utils import interleaved_medians, machine_line, markdown_table

from expression_perceiver.inference import Predictor, variant_effects

TARGET = 5.0
WINDOW = 20_000  # Xpresso's promoter windows: TSS at 10,000, the model reads 3,000..13,500


def write_inputs(folder: Path, genes: int, snvs: int, seed: int = 0) -> dict:
    """A random chromosome holding `genes` promoter windows end to end, and a VCF of `snvs` SNVs per gene inside the
    model's part of each window."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    chromosome = letters[rng.integers(0, 4, genes * WINDOW)].tobytes().decode()
    (folder / "genome.fa").write_text(
        ">chr1\n" + "\n".join(chromosome[i : i + 60] for i in range(0, len(chromosome), 60)) + "\n"
    )
    bed, records = [], []
    for gene in range(genes):
        start = gene * WINDOW
        bed.append(f"chr1\t{start}\t{start + WINDOW}\tgene{gene}\t0\t+")
        for position in sorted(rng.choice(np.arange(start + 3_000, start + 13_500), snvs, replace=False)):
            ref = chromosome[position]
            alt = "ACGT"[("ACGT".index(ref) + int(rng.integers(1, 4))) % 4]
            records.append(f"chr1\t{position + 1}\tsnv{len(records)}\t{ref}\t{alt}\t.\tPASS\t.")
    (folder / "promoters.bed").write_text("\n".join(bed) + "\n")
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    (folder / "snvs.vcf").write_text(header + "\n".join(records) + "\n")
    return {"genome": folder / "genome.fa", "bed": folder / "promoters.bed", "vcf": folder / "snvs.vcf"}


def comparison(genes: int, snvs: int, batch: int, repeats: int) -> dict:
    from bench_predict import save_default_model

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = write_inputs(folder, genes, snvs)
        predictor = Predictor.from_pretrained(str(save_default_model(folder / "model", 10_500)), device="cpu")
        common = dict(genome=files["genome"], bed=files["bed"], batch_size=batch)
        tables = {}

        def run(incremental: bool) -> None:
            tables[incremental] = variant_effects(files["vcf"], predictor, incremental=incremental, **common)

        timed = interleaved_medians({"incremental": lambda: run(True), "full": lambda: run(False)}, repeats=repeats)
        difference = float(np.max(np.abs(tables[True]["delta"] - tables[False]["delta"])) / predictor.scales[0][1][0])
    variants = genes * snvs
    return {
        "variants": variants,
        "full_per_s": variants / timed["full"],
        "incremental_per_s": variants / timed["incremental"],
        "ratio": timed["full"] / timed["incremental"],
        "max_z_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, default=2)
    parser.add_argument("--snvs", type=int, default=150, help="SNVs per gene")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    r = comparison(args.genes, args.snvs, args.batch, args.repeats)
    print(
        f"\n### variant-effect on {r['variants']} SNVs in {args.genes} windows (default DNAPerceiver, 10,500 bases)\n"
    )
    row = [
        f"{r['full_per_s']:.1f}",
        f"{r['incremental_per_s']:.1f}",
        f"{r['ratio']:.1f}x",
        f"{r['max_z_difference']:.1e}",
        f">= {TARGET:.0f}x",
    ]
    print(markdown_table(["full SNVs/s", "incremental SNVs/s", "ratio", "max |delta difference| (z)", "target"], [row]))


if __name__ == "__main__":
    main()
