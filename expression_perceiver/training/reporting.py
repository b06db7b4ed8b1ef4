"""What a training run leaves behind: `results.json`, test predictions as TSV and a predicted-vs-observed plot."""

import hashlib
from pathlib import Path

import datasets
import numpy as np

from ..data.atomic import AtomicFile


def data_fingerprint(splits: datasets.DatasetDict) -> str:
    """SHA-256 over the Arrow buffers of every split's ids, sequences, labels and features (memory-mapped, fast)."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(name.encode())
        table = splits[name].data.table if hasattr(splits[name].data, "table") else splits[name].data
        for column in sorted(
            set(table.column_names) & {"gene_id", "sequence", "protein_sequence", "label", "labels", "features"}
        ):
            for chunk in table.column(column).chunks:
                for buffer in chunk.buffers():
                    if buffer is not None:
                        digest.update(memoryview(buffer))
    return digest.hexdigest()


def prediction_columns(predictions: np.ndarray, references: np.ndarray, label_names: list[str]) -> dict[str, list]:
    columns = {}
    for i, name in enumerate(label_names):
        columns[f"observed_{name}"] = references[:, i].tolist()
        columns[f"predicted_{name}"] = predictions[:, i].tolist()
    return columns


def write_predictions(
    path: Path, gene_ids: list[str], predictions: np.ndarray, references: np.ndarray, label_names: list[str]
) -> None:
    """Test predictions next to the observed values, in the data's units, one row per gene."""
    columns = prediction_columns(predictions, references, label_names)
    with AtomicFile(path) as target:
        target.handle.write("\t".join(["gene_id", *columns]) + "\n")
        for row, gene in enumerate(gene_ids):
            target.handle.write("\t".join([gene, *(f"{values[row]:.8g}" for values in columns.values())]) + "\n")
        target.commit()


def plot_predictions(path: Path, predictions: np.ndarray, references: np.ndarray, label_names: list[str], title: str):
    """Predicted-versus-observed scatter, one panel per output, with r2 (squared Pearson) in each title."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(label_names), figsize=(4.5 * len(label_names), 4.5), squeeze=False)
    for i, (axis, name) in enumerate(zip(axes[0], label_names, strict=True)):
        observed, predicted = references[:, i], predictions[:, i]
        r2 = np.corrcoef(observed, predicted)[0, 1] ** 2 if len(observed) > 1 else float("nan")
        axis.scatter(observed, predicted, s=6, alpha=0.5, linewidths=0)
        low, high = float(min(observed.min(), predicted.min())), float(max(observed.max(), predicted.max()))
        axis.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        axis.set_xlabel(f"observed {name}")
        axis.set_ylabel(f"predicted {name}")
        axis.set_title(f"{title}\n{name}: test r2 = {r2:.3f} (n = {len(observed)})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
