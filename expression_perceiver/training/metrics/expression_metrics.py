"""Expression-prediction metrics as a local `evaluate` metric.

r2 here is the field's r2: the squared Pearson correlation between predicted and measured expression, as reported
by Xpresso and DNAPerceiver. The coefficient of determination (1 - SSres/SStot) is reported beside it under its own
name, with Pearson, Spearman and the mean squared error.

This file is self-contained (numpy, scipy, datasets, evaluate) because `evaluate.load` copies it into its module
cache and imports it from there. Load it offline by its file path:

    evaluate.load("expression_perceiver/training/metrics/expression_metrics.py")

`evaluate.load` of a folder looks for a script named after the folder (`<folder>/<folder>.py`), so the `metrics`
folder itself is not loadable; `expression_perceiver.training.metrics.EXPRESSION_METRICS_SCRIPT` holds the file path.
"""

import warnings

import datasets
import evaluate
import numpy as np
from scipy import stats

METRIC_NAMES = (
    "r2", "coefficient_of_determination", "pearson", "spearman", "mse", "calibration_slope", "calibration_intercept",
)  # fmt: skip

_DESCRIPTION = """
Metrics for regressing expression levels: r2 (squared Pearson correlation, as in Xpresso), the coefficient of
determination (1 - SSres/SStot), Pearson and Spearman correlations, mean squared error, the calibration (slope and
intercept of the least-squares line of the measured values on the predicted ones: 1 and 0 for calibrated predictions,
which a high r2 does not guarantee) and the number of pairs.
For k outputs each metric is also given per output, suffixed `_{name}` (the column index unless `output_names` is
passed), and the plain names hold the mean over outputs.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`, or of `list` of `float` for several outputs): predicted values.
    references (`list` of `float`, or of `list` of `float` for several outputs): measured values.
    output_names (`list` of `str`, *optional*): one name per output, used as metric suffixes.
Returns:
    `dict` with `r2`, `coefficient_of_determination`, `pearson`, `spearman`, `mse`, `calibration_slope`,
    `calibration_intercept` and `n`; with several outputs also
    `<metric>_<name>` for each output. A correlation of constant values is undefined and reported as nan (with a
    `RuntimeWarning`); so is the coefficient of determination of constant references.
Examples:
    >>> metric = ExpressionMetrics()
    >>> round(metric.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 2.0, 3.0])["r2"], 4)
    0.9643
"""

_CITATION = """
@article{agarwal2020xpresso,
  title={Predicting mRNA Abundance Directly from Genomic Sequence Using Deep Convolutional Neural Networks},
  author={Agarwal, Vikram and Shendure, Jay},
  journal={Cell Reports}, volume={31}, number={7}, pages={107663}, year={2020}
}
"""


def _as_columns(values: np.ndarray, name: str) -> np.ndarray:
    """`values` as a float64 (n, k) array: one column per output. Rejects NaN and infinite values by name."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a vector or an (n, outputs) matrix, got shape {np.shape(values)}")
    not_finite = ~np.isfinite(array)
    if not_finite.any():
        row = int(np.argwhere(not_finite)[0][0])
        raise ValueError(f"{name} contain {int(not_finite.sum())} NaN or infinite value(s), the first in row {row}")
    return array


def _correlations_are_defined(predictions: np.ndarray, references: np.ndarray, output: str) -> bool:
    """Whether both vectors vary; warns when one is constant (correlations are undefined then)."""
    constant = [
        name for name, values in (("predictions", predictions), ("references", references)) if np.ptp(values) == 0
    ]
    if constant:
        warnings.warn(
            f"{' and '.join(constant)} are constant{output}: pearson, spearman and r2 are undefined, reported as nan",
            RuntimeWarning,
            stacklevel=4,
        )
    return not constant


def _single_output_metrics(predictions: np.ndarray, references: np.ndarray, output: str) -> dict[str, float]:
    """The metrics of one output column."""
    residual_sum_of_squares = float(np.sum((references - predictions) ** 2))
    total_sum_of_squares = float(np.sum((references - references.mean()) ** 2))
    if _correlations_are_defined(predictions, references, output):
        pearson = float(stats.pearsonr(predictions, references).statistic)
        spearman = float(stats.spearmanr(predictions, references).statistic)
    else:
        pearson = spearman = float("nan")
    slope, intercept = calibration_line(predictions, references)
    return {
        "r2": pearson**2,
        "coefficient_of_determination": (
            1.0 - residual_sum_of_squares / total_sum_of_squares if total_sum_of_squares > 0 else float("nan")
        ),
        "pearson": pearson,
        "spearman": spearman,
        "mse": residual_sum_of_squares / len(references),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
    }


def calibration_line(predictions: np.ndarray, references: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the least-squares line of the references on the predictions (nan for constant
    predictions): a calibrated model has slope 1 and intercept 0."""
    centred = predictions - predictions.mean()
    spread = float(np.sum(centred**2))
    if spread == 0:
        return float("nan"), float("nan")
    slope = float(np.sum(centred * (references - references.mean())) / spread)
    return slope, float(references.mean() - slope * predictions.mean())


def fit_calibration(predictions, labels) -> dict:
    """The least-squares line of `labels` on `predictions` per output, both standardised (rows, outputs), as a
    config's `calibration`."""
    predictions = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    labels = np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)
    lines = [calibration_line(predictions[:, k], labels[:, k]) for k in range(predictions.shape[1])]
    return {
        "slope": [slope for slope, _ in lines],
        "intercept": [intercept for _, intercept in lines],
        "fitted_on": "validation",
        "n": len(predictions),
        "units": "standardised labels: observed = intercept + slope x predicted, before label_mean / label_std",
    }


def compute_expression_metrics(
    predictions: np.ndarray, references: np.ndarray, output_names: list[str] | None = None
) -> dict[str, float]:
    """r2 (squared Pearson), coefficient of determination, Pearson, Spearman, MSE, calibration slope and intercept
    and `n` of predictions.

    Args:
        predictions: shape (n,) or (n, k) for k outputs; a single column and a vector are the same thing.
        references: measured values, the same shape as `predictions`.
        output_names: names of the k outputs, used as suffixes (`r2_<name>`) when k > 1; column indices otherwise.

    Returns:
        For one output, the plain metrics and `n`. For k > 1 outputs, the metrics of each output under
        `<metric>_<name>`, and under the plain names their mean over outputs (nan if any output's is nan).

    Raises:
        ValueError: on NaN or infinite values (naming the array), mismatched shapes, fewer than two pairs, or a wrong
            number of output names.
    """
    predictions = _as_columns(predictions, "predictions")
    references = _as_columns(references, "references")
    if predictions.shape != references.shape:
        raise ValueError(f"predictions {predictions.shape} and references {references.shape} differ in shape")
    n_pairs, n_outputs = predictions.shape
    if n_pairs < 2:
        raise ValueError(f"expression metrics need at least two prediction/reference pairs, got {n_pairs}")
    if output_names is not None and len(output_names) != n_outputs:
        raise ValueError(f"{len(output_names)} output names for {n_outputs} outputs")

    if n_outputs == 1:
        return {**_single_output_metrics(predictions[:, 0], references[:, 0], ""), "n": n_pairs}

    names = [str(name) for name in output_names] if output_names is not None else [str(i) for i in range(n_outputs)]
    per_output = {
        name: _single_output_metrics(predictions[:, i], references[:, i], f" for output {name}")
        for i, name in enumerate(names)
    }
    metrics = {metric: float(np.mean([values[metric] for values in per_output.values()])) for metric in METRIC_NAMES}
    for name, values in per_output.items():
        metrics.update({f"{metric}_{name}": value for metric, value in values.items()})
    metrics["n"] = n_pairs
    return metrics


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpressionMetrics(evaluate.Metric):
    """r2 (squared Pearson), coefficient of determination, Pearson, Spearman and MSE of expression predictions."""

    def _info(self) -> evaluate.MetricInfo:
        scalar = datasets.Value("float64")
        vector = datasets.Sequence(datasets.Value("float64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # One float per example, or one list of floats per example for several outputs.
            features=[
                datasets.Features({"predictions": scalar, "references": scalar}),
                datasets.Features({"predictions": vector, "references": vector}),
            ],
            reference_urls=[
                "https://doi.org/10.1016/j.celrep.2020.107663",
                "https://doi.org/10.1016/j.cmpb.2023.107504",
            ],
        )

    def _compute(
        self, predictions: np.ndarray, references: np.ndarray, output_names: list[str] | None = None
    ) -> dict[str, float]:
        return compute_expression_metrics(np.asarray(predictions), np.asarray(references), output_names=output_names)
