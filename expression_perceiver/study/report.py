"""`study report DIR`: Table 1 (Markdown and CSV), Figure 1 (PNG and SVG), a per-seed strip plot and `study.json`
from whatever cells of a study are finished.

Table 1 has a row per setting: n, r2 mean +- std with its 95% t-interval, R2 (1 - SSres/SStot), Spearman, the
k-mer baseline on the same split, and against the reference setting Welch's t-test, the paired t-test over matching
seeds (both Holm-corrected), Hedges' g and a verdict in words; then a row per setting for its seed ensemble (the
mean of its cells' test predictions: what a user gets by averaging the seeds instead of picking one). Figure 1 shows
r2 against mask size with error bars (standard deviation over seeds) per curve, the unmasked mean and the baseline
as reference lines.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import write_json
from ..data_collators import MaskingSettings
from ..provenance import package_code_changes, package_code_state
from ..training.metrics import calibration_line, compute_expression_metrics
from .cells import DONE, RESULTS_FILE, cell_state
from .spec import Cell, Study, cell_key, load_study_dir, mask_size
from .statistics import Comparison, adjust_comparisons, compare, summarize

PREDICTIONS_FILE = "test_predictions.tsv"
REPORT_FILES = ("table1.md", "table1.csv", "figure1.png", "figure1.svg", "seeds.png", "seeds.svg", "study.json")


@dataclass
class CellResult:
    """What a report reads of one finished cell."""

    cell: Cell
    results: dict[str, Any]

    @property
    def test(self) -> dict[str, float]:
        return self.results["test"]

    @property
    def r2(self) -> float:
        return float(self.test["r2"])


def finished_cells(study: Study) -> tuple[dict[MaskingSettings, list[CellResult]], list[Cell]]:
    """The finished cells' results grouped by masking, and the cells still missing."""
    finished: dict[MaskingSettings, list[CellResult]] = {}
    missing = []
    for cell in study.cells():
        if cell_state(cell).state == DONE:
            results = json.loads((Path(cell.output_dir) / RESULTS_FILE).read_text())
            finished.setdefault(cell.masking, []).append(CellResult(cell, results))
        else:
            missing.append(cell)
    return finished, missing


def read_predictions(cell: Cell) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Gene ids, observed and predicted values (first output) of a cell's test predictions."""
    with open(Path(cell.output_dir) / PREDICTIONS_FILE) as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    observed_column = next(i for i, name in enumerate(header) if name.startswith("observed_"))
    predicted_column = next(i for i, name in enumerate(header) if name.startswith("predicted_"))
    genes = [row[0] for row in body]
    observed = np.array([float(row[observed_column]) for row in body])
    predicted = np.array([float(row[predicted_column]) for row in body])
    return genes, observed, predicted


def seed_ensemble(cells: list[CellResult]) -> dict[str, Any] | None:
    """Metrics of the mean of the cells' test predictions (the same genes in the same order in every cell)."""
    if len(cells) < 2:
        return None
    genes, observed, first = read_predictions(cells[0].cell)
    predictions = [first]
    for result in cells[1:]:
        other_genes, other_observed, predicted = read_predictions(result.cell)
        if other_genes != genes or not np.allclose(other_observed, observed):
            raise ValueError(f"{result.cell.output_dir}: test predictions cover other genes than {cells[0].cell.name}")
        predictions.append(predicted)
    metrics = compute_expression_metrics(np.mean(predictions, axis=0)[:, None], observed[:, None])
    return {"members": len(cells), "seeds": [c.cell.seed for c in cells], **metrics}


def calibration_of(cells: list[CellResult]) -> dict[str, float]:
    """Mean over the cells of the calibration line (slope, intercept) of their test predictions, read from each cell's
    predictions file so that cells trained before runs reported calibration have it too."""
    lines = [
        calibration_line(predicted, observed)
        for _, observed, predicted in map(read_predictions, (c.cell for c in cells))
    ]
    if not lines:
        return {"slope": math.nan, "intercept": math.nan}
    slopes, intercepts = zip(*lines, strict=True)
    return {"slope": float(np.mean(slopes)), "intercept": float(np.mean(intercepts))}


def baseline_of(cells: list[CellResult]) -> dict[str, Any] | None:
    """The k-mer baseline recorded by the cells (the same split, so the same numbers in each)."""
    return next((c.results["kmer_baseline"] for c in cells if c.results.get("kmer_baseline")), None)


def mean_of(cells: list[CellResult], metric: str) -> float:
    values = [float(c.test[metric]) for c in cells if metric in c.test]
    return float(np.mean(values)) if values else math.nan


def training_summary(cells: list[CellResult]) -> dict[str, Any]:
    """Epochs each cell ran and why it stopped."""
    epochs = [float(c.results["train"].get("epoch", math.nan)) for c in cells]
    reasons = Counter(str(c.results["train"].get("stopped", "not recorded")) for c in cells)
    return {
        "epochs": epochs,
        "epochs_min": min(epochs) if epochs else None,
        "epochs_max": max(epochs) if epochs else None,
        "selected_epochs": [c.results["train"].get("selected_epoch") for c in cells],
        "stopped": dict(reasons),
    }


def table_rows(study: Study, finished: dict[MaskingSettings, list[CellResult]]) -> tuple[list[dict], list[Comparison]]:
    reference = next(s for s in study.table if s.name == study.reference)
    reference_cells = finished.get(reference.masking, [])
    rows, comparisons = [], []
    for setting in study.table:
        cells = finished.get(setting.masking, [])
        summary = summarize([c.r2 for c in cells])
        row = {
            "setting": setting.name,
            "masking": cell_key(setting.masking),
            "n": summary.n,
            "seeds": [c.cell.seed for c in cells],
            "r2_values": [c.r2 for c in cells],
            "r2": summary.to_dict(),
            "coefficient_of_determination": mean_of(cells, "coefficient_of_determination"),
            "calibration": calibration_of(cells),
            "spearman": mean_of(cells, "spearman"),
            "validation_r2": float(np.mean([c.results["validation"]["r2"] for c in cells])) if cells else math.nan,
            "kmer_baseline": baseline_of(cells),
            "ensemble": seed_ensemble(cells),
            "training": training_summary(cells),
            "comparison": None,
        }
        if setting.name != study.reference and cells and reference_cells:
            comparison = compare(
                setting.name,
                {c.cell.seed: c.r2 for c in cells},
                study.reference,
                {c.cell.seed: c.r2 for c in reference_cells},
            )
            comparisons.append(comparison)
            row["comparison"] = comparison
        rows.append(row)
    adjust_comparisons(comparisons)
    for row in rows:
        if row["comparison"] is not None:
            row["comparison"] = row["comparison"].to_dict()
    return rows, comparisons


def figure_points(study: Study, finished: dict[MaskingSettings, list[CellResult]]) -> list[dict]:
    curves = []
    for curve in study.figure:
        points = []
        for masking in curve.maskings:
            cells = finished.get(masking, [])
            summary = summarize([c.r2 for c in cells])
            points.append({"size": mask_size(masking), "masking": cell_key(masking), **summary.to_dict()})
        unit = "fraction of length" if any(m.mask_fraction is not None for m in curve.maskings) else "positions"
        curves.append({"label": curve.label, "unit": unit, "points": points})
    return curves


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def fmt_p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def recorded(finished: dict[MaskingSettings, list[CellResult]], field: str) -> list[str]:
    """The distinct values the finished cells' results record under `field` (`source_revision`: the code revisions
    they trained at; `device`: a GPU's name or the CPU threads)."""
    return sorted({result.results.get(field) or "unknown" for results in finished.values() for result in results})


def devices_line(devices: list[str]) -> str:
    """A sentence on where the cells ran: one device, or a warning that the numbers mix devices."""
    if len(devices) == 1:
        return f"All cells ran on {devices[0]}."
    return (
        f"**The cells ran on {len(devices)} devices** ({', '.join(devices)}): floating-point sums run in another order "
        "on another device or thread count, so the same cell and seed can train to a different model; rerun the "
        "cells of one device to compare like with like."
    )


def revisions_line(
    revisions: list[str],
    state: Callable[[str], str | None] = package_code_state,
    changes: Callable[[str, str], list[str]] = package_code_changes,
) -> str:
    """A sentence on the code the cells ran: one revision; several whose package code is the same (they differ in
    documents or results only); or a warning that the numbers mix code, naming the package files that differ."""
    short = [
        revision[:12] + (" (with uncommitted changes)" if "uncommitted" in revision else "") for revision in revisions
    ]
    if len(revisions) == 1:
        return f"All cells ran code revision {short[0]}."
    states = {revision: state(revision) for revision in revisions}
    known: dict[str, str] = {}  # package code state -> the first revision that holds it
    for revision, code in states.items():
        if code is not None:
            known.setdefault(code, revision)
    if None not in states.values() and len(known) == 1:
        return (
            f"The cells ran {len(revisions)} code revisions ({', '.join(short)}) with the same package code: they "
            "differ outside it (documents, results), so no difference between rows is one of this package's code."
        )
    representatives = list(known.values())  # one revision per package code state
    changed = sorted({path for other in representatives[1:] for path in changes(representatives[0], other)})
    unknown = sum(code is None for code in states.values())
    return (
        f"**The cells ran {len(revisions)} code revisions** ({', '.join(short)}) with package code in "
        f"{len(known) + unknown} states"
        + (f" (files that differ: {', '.join(changed)})" if changed else "")
        + (f"; {unknown} of them cannot be compared (uncommitted changes or unknown here)" if unknown else "")
        + ": a difference between rows may be one of code; rerun the older cells (delete their folders) to compare "
        "like with like."
    )


def table_markdown(
    study: Study, rows: list[dict], missing: list[Cell], total: int, revisions: list[str], devices: list[str]
) -> str:
    baseline = next((row["kmer_baseline"] for row in rows if row["kmer_baseline"]), None)
    lines = [
        f"# {study.name}: Table 1",
        "",
        f"{total - len(missing)} of {total} cells finished"
        + (f"; {len(missing)} missing ({', '.join(c.name for c in missing[:6])}{', ...' if len(missing) > 6 else ''})"
           if missing else "")
        + f". Seeds {study.seeds}. Each cell selected its checkpoint on the validation split and read its test "
        "split once, after training. r2 is the squared Pearson correlation on the test split (mean +- sample std over "
        "seeds, 95% t-interval); R2 = 1 - SSres/SStot; calibration: slope of the least-squares line of the measured "
        "values on the predicted ones (1 when calibrated; mean over seeds); tests against "
        f"`{study.reference}` are Welch's t-test and the paired t-test over matching seeds, Holm-corrected across "
        "rows; g is Hedges' g. " + revisions_line(revisions) + " " + devices_line(devices),
        "",
        "| setting | masking | n | test r2 | 95% CI | R2 | calibration slope | Spearman | vs reference "
        "| Welch p (Holm) | paired p (Holm) | g | epochs run | why stopped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        r2, comparison, training = row["r2"], row["comparison"], row["training"]
        difference = f"{comparison['difference']:+.4f}" if comparison else ""
        welch = f"{fmt_p(comparison['welch_p'])} ({fmt_p(comparison['welch_p_holm'])})" if comparison else ""
        paired = f"{fmt_p(comparison['paired_p'])} ({fmt_p(comparison['paired_p_holm'])})" if comparison else ""
        g = fmt(comparison["hedges_g"], 2) if comparison else ""
        epochs = f"{training['epochs_min']:g}-{training['epochs_max']:g}" if training["epochs_min"] is not None else ""
        stopped = "; ".join(f"{count} x {reason}" for reason, count in training["stopped"].items())
        lines.append(
            f"| {row['setting']} | `{row['masking']}` | {row['n']} | {fmt(r2['mean'])} +- {fmt(r2['std'])} | "
            f"[{fmt(r2['ci_low'])}, {fmt(r2['ci_high'])}] | {fmt(row['coefficient_of_determination'])} | "
            f"{fmt(row['calibration']['slope'], 3)} | "
            f"{fmt(row['spearman'])} | {difference} | {welch} | {paired} | {g} | {epochs} | {stopped} |"
        )
    for row in rows:
        ensemble = row["ensemble"]
        if ensemble:
            lines.append(
                f"| {row['setting']}: ensemble of {ensemble['members']} seeds | `{row['masking']}` | 1 | "
                f"{fmt(ensemble['r2'])} | | {fmt(ensemble['coefficient_of_determination'])} | "
                f"{fmt(ensemble.get('calibration_slope'), 3)} | {fmt(ensemble['spearman'])} | | | | | | |"
            )
    if baseline:
        inputs = "k-mers + per-gene features" if "features_only" in baseline else "k-mers + log length"
        lines.append(
            f"| k-mer ridge baseline ({inputs}), same split | | 1 | {fmt(baseline['test']['r2'])} | | "
            f"{fmt(baseline['test']['coefficient_of_determination'])} | "
            f"{fmt(baseline['test'].get('calibration_slope'), 3)} | {fmt(baseline['test']['spearman'])} | | | | | | |"
        )
        if "features_only" in baseline:
            features = baseline["features_only"]["test"]
            lines.append(
                f"| features-only ridge, same split | | 1 | {fmt(features['r2'])} | | "
                f"{fmt(features['coefficient_of_determination'])} | {fmt(features.get('calibration_slope'), 3)} | "
                f"{fmt(features['spearman'])} | | | | | | |"
            )
    lines += ["", "Verdicts (Holm-corrected Welch p < 0.05 decides):", ""]
    lines += [f"- **{row['setting']}**: {row['comparison']['verdict']}" for row in rows if row["comparison"]]
    return "\n".join(lines) + "\n"


def write_table_csv(path: Path, rows: list[dict]) -> None:
    columns = [
        "setting", "masking", "n", "r2_mean", "r2_std", "r2_ci_low", "r2_ci_high", "coefficient_of_determination",
        "calibration_slope", "calibration_intercept", "spearman", "ensemble_r2", "kmer_baseline_r2",
        "difference_vs_reference", "welch_p", "welch_p_holm", "paired_n", "paired_p", "paired_p_holm", "hedges_g",
        "verdict",
    ]  # fmt: skip
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            comparison = row["comparison"] or {}
            writer.writerow(
                [
                    row["setting"], row["masking"], row["n"], row["r2"]["mean"], row["r2"]["std"],
                    row["r2"]["ci_low"], row["r2"]["ci_high"], row["coefficient_of_determination"],
                    row["calibration"]["slope"], row["calibration"]["intercept"], row["spearman"],
                    row["ensemble"]["r2"] if row["ensemble"] else "",
                    row["kmer_baseline"]["test"]["r2"] if row["kmer_baseline"] else "",
                    comparison.get("difference", ""), comparison.get("welch_p", ""),
                    comparison.get("welch_p_holm", ""), comparison.get("paired_n", ""),
                    comparison.get("paired_p", ""), comparison.get("paired_p_holm", ""),
                    comparison.get("hedges_g", ""), comparison.get("verdict", ""),
                ]
            )  # fmt: skip


def plot_figure(directory: Path, study: Study, rows: list[dict], curves: list[dict]) -> None:
    """Figure 1 (r2 against mask size per curve) and the per-seed strip plot of Table 1's settings."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    reference = next(row for row in rows if row["setting"] == study.reference)
    baseline = next((row["kmer_baseline"] for row in rows if row["kmer_baseline"]), None)

    def reference_lines(axis) -> None:
        if reference["n"]:
            axis.axhline(reference["r2"]["mean"], color="grey", linestyle="--", linewidth=1,
                         label=f"{study.reference} (mean of {reference['n']})")  # fmt: skip
        if baseline:
            axis.axhline(baseline["test"]["r2"], color="tab:red", linestyle=":", linewidth=1, label="k-mer baseline")

    if curves:
        figure, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
        for axis, curve in zip(axes[0], curves, strict=True):
            points = [p for p in curve["points"] if p["n"]]
            axis.errorbar(
                [p["size"] for p in points],
                [p["mean"] for p in points],
                yerr=[0 if math.isnan(p["std"]) else p["std"] for p in points],
                marker="o", capsize=4, label=f"{curve['label']}: mean +- std over seeds",
            )  # fmt: skip
            for p in points:
                axis.annotate(f"n={p['n']}", (p["size"], p["mean"]), textcoords="offset points", xytext=(4, -12),
                              fontsize=7)  # fmt: skip
            reference_lines(axis)
            axis.set_xlabel(f"mask size ({curve['unit']})")
            axis.set_ylabel("test r2")
            axis.set_title(f"{study.name}: r2 against mask size", fontsize=10)
            axis.legend(fontsize=7)
        figure.tight_layout()
        for suffix in ("png", "svg"):
            figure.savefig(directory / f"figure1.{suffix}", dpi=130)
        plt.close(figure)

    figure, axis = plt.subplots(figsize=(1.6 * max(len(rows), 3) + 1.5, 4.2))
    rng = np.random.default_rng(0)  # horizontal jitter only, so overlapping seeds stay visible
    for i, row in enumerate(rows):
        values = row["r2_values"]
        axis.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=18, alpha=0.8)
        if values:
            axis.hlines(np.mean(values), i - 0.25, i + 0.25, color="black", linewidth=1.5)
    reference_lines(axis)
    axis.set_xticks(range(len(rows)), [row["setting"] for row in rows], rotation=20, ha="right", fontsize=8)
    axis.set_ylabel("test r2 (one dot per seed, bar = mean)")
    axis.set_title(f"{study.name}: every seed", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    for suffix in ("png", "svg"):
        figure.savefig(directory / f"seeds.{suffix}", dpi=130)
    plt.close(figure)


def report_study(directory: str | Path, print_line=print) -> dict[str, Any]:
    """Aggregates the finished cells of the study in `directory` and writes the report files there."""
    directory = Path(directory)
    study = load_study_dir(directory)
    finished, missing = finished_cells(study)
    total = len(study.cells())
    if not finished:
        raise ValueError(f"{directory}: none of the study's {total} cells is finished yet; nothing to report")
    rows, _ = table_rows(study, finished)
    curves = figure_points(study, finished)
    revisions, devices = recorded(finished, "source_revision"), recorded(finished, "device")
    (directory / "table1.md").write_text(table_markdown(study, rows, missing, total, revisions, devices))
    write_table_csv(directory / "table1.csv", rows)
    plot_figure(directory, study, rows, curves)
    summary = {
        "study": study.to_dict(),
        "cells": {"total": total, "finished": total - len(missing), "missing": [c.name for c in missing]},
        "selection": "each cell selected its checkpoint on the validation split and read its test split once",
        "source_revisions": revisions,
        "devices": devices,
        "table": rows,
        "figure": curves,
        "per_cell": [
            {
                "cell": result.cell.name,
                "seed": result.cell.seed,
                "test": result.test,
                "validation_r2": result.results["validation"]["r2"],
                "train": result.results["train"],
                "source_revision": result.results.get("source_revision"),
                "device": result.results.get("device"),
            }
            for results in finished.values()
            for result in results
        ],
    }
    write_json(directory / "study.json", summary)
    written = [name for name in REPORT_FILES if (directory / name).is_file()]
    print_line(f"{total - len(missing)} of {total} cells finished; report in {directory} ({', '.join(written)})")
    return summary
