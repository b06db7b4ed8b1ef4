"""A two-cell masking study end to end on the machine's GPUs, and the paper's 50-run grid projected from it.

Generates an Xpresso-format set (20,000-base windows), prepares it, runs the study `none` + `random 1,000-base span`
(one seed, a few epochs, the Xpresso recipe otherwise) through `expression-perceiver study run --executor gpus`,
reports it, and projects the paper's grid (5 settings x 10 seeds, up to 400 epochs each) from the measured seconds
per epoch, scaled to Xpresso human's 16,377 training genes.

    python benchmarks/gpu_study.py --output DIR          # on the GPU machine (called by benchmarks/gpu.sh)
    python benchmarks/gpu_study.py --tiny --output DIR   # dry run on CPU: tiny model, few genes, local executor
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parent.parent
GRID_CELLS, EPOCH_CAP, XPRESSO_TRAIN_GENES = 50, 400, 16_377
TINY_MODEL = (
    "num_latents=8,latent_dim=16,self_attention_heads=2,self_attention_head_dim=8,cross_attention_head_dim=8,"
    "conv_stem_channels=8,conv_tower_channels=[8, 8],conv_pooled_positions=4,branch_dim=8"
)


def cli(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "expression_perceiver.cli", *arguments], check=True, cwd=REPOSITORY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="CPU dry run with a tiny model and few genes")
    parser.add_argument("--genes", type=int, help="generated genes (default 2,000; 40 with --tiny)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    genes = args.genes or (40 if args.tiny else 2_000)
    output = args.output.resolve()
    cli("generate", "xpresso", str(output / "h5"), "--num", str(genes), "--seed", "0")
    cli("prepare", "xpresso", str(output / "h5"), "--full-window", "-o", str(output / "data"), "--overwrite")

    overrides = {"num_train_epochs": args.epochs, "kmer_baseline": False, "dataloader_num_workers": 2}
    if args.tiny:
        overrides.update(config_overrides=TINY_MODEL, bf16=False, per_device_train_batch_size=8, use_cpu=True)
    study = {
        "name": "gpu_two_cells",
        "recipes": [str(REPOSITORY / "configs" / "xpresso_human_dna_perceiver.yaml")],
        "dataset_dir": str(output / "data"),
        "output_dir": str(output / "study"),
        "seeds": [0],
        "overrides": overrides,
        "table": [
            {"name": "none", "strategy": "none"},
            {"name": "random 1,000-base span", "strategy": "random_span", "mode": "mask", "mask_length": 1000},
        ],
    }
    study_file = output / "gpu_two_cells.yaml"
    study_file.write_text(yaml.safe_dump(study, sort_keys=False))
    executor = ["--executor", "local"] if args.tiny else ["--executor", "gpus"]
    subprocess.run(
        [sys.executable, "-m", "expression_perceiver.cli", "study", "run", str(study_file), *executor],
        cwd=REPOSITORY,
    )  # a failing cell is reported by the study and below
    cli("study", "report", str(output / "study"))

    cells = []
    for results_file in sorted((output / "study" / "cells").glob("*/*/results.json")):
        results = json.loads(results_file.read_text())
        train = results["train"]
        seconds_per_epoch = train["training_seconds"] / max(train["epoch"], 1e-9)
        cells.append(
            {
                "cell": f"{results_file.parent.parent.name}/{results_file.parent.name}",
                "device": results["device"],
                "train_genes": results["data"]["counts"]["train"],
                "epochs": train["epoch"],
                "seconds": train["training_seconds"],
                "seconds_per_epoch": seconds_per_epoch,
                "seconds_per_xpresso_epoch": seconds_per_epoch
                * XPRESSO_TRAIN_GENES
                / results["data"]["counts"]["train"],
                "test_r2": results["test"]["r2"],
            }
        )
    if not cells:
        raise SystemExit("no cell finished: see the train.log files under " + str(output / "study" / "cells"))
    xpresso_epoch = max(cell["seconds_per_xpresso_epoch"] for cell in cells)
    projection = {
        "cells": GRID_CELLS,
        "epoch_cap": EPOCH_CAP,
        "seconds_per_xpresso_epoch": xpresso_epoch,
        "gpu_hours_at_cap": GRID_CELLS * EPOCH_CAP * xpresso_epoch / 3600,
        "gpu_hours_per_100_epochs": GRID_CELLS * 100 * xpresso_epoch / 3600,
    }
    summary = {"cells": cells, "projection": projection}
    (output / "gpu_study.json").write_text(json.dumps(summary, indent=2) + "\n")
    for cell in cells:
        print(
            f"{cell['cell']}: {cell['epochs']:g} epochs in {cell['seconds']:.0f} s on {cell['device']} "
            f"({cell['seconds_per_xpresso_epoch']:.1f} s per Xpresso-sized epoch), test r2 {cell['test_r2']:.3f}"
        )
    print(
        f"paper's grid ({GRID_CELLS} cells x up to {EPOCH_CAP} epochs): {projection['gpu_hours_at_cap']:.1f} "
        f"GPU-hours at the cap, {projection['gpu_hours_per_100_epochs']:.1f} per 100 epochs per cell"
    )


if __name__ == "__main__":
    main()
