"""Expression metrics against independent numpy/scipy formulas, directly and through `evaluate`."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from expression_perceiver.training.metrics import (
    EXPRESSION_METRICS_SCRIPT,
    ExpressionMetrics,
    compute_expression_metrics,
)
from tests.processes import process_timeout


def expected_metrics(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """The textbook formulas, written out independently of the package."""
    pearson = np.corrcoef(predictions, references)[0, 1]
    spearman = np.corrcoef(stats.rankdata(predictions), stats.rankdata(references))[0, 1]
    residuals = np.sum((references - predictions) ** 2)
    total = np.sum((references - references.mean()) ** 2)
    return {
        "r2": pearson**2,
        "coefficient_of_determination": 1 - residuals / total,
        "pearson": pearson,
        "spearman": spearman,
        "mse": np.mean((references - predictions) ** 2),
        # numpy's least-squares line of the references on the predictions
        "calibration_slope": np.polyfit(predictions, references, 1)[0],
        "calibration_intercept": np.polyfit(predictions, references, 1)[1],
    }


@pytest.fixture
def noisy_pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    references = rng.normal(size=(200, 3))
    predictions = 0.6 * references + rng.normal(scale=[0.5, 1.0, 2.0], size=(200, 3)) + 0.3
    return predictions, references


def test_single_output_matches_the_formulas(noisy_pairs):
    predictions, references = noisy_pairs[0][:, 0], noisy_pairs[1][:, 0]
    metrics = compute_expression_metrics(predictions, references)
    assert set(metrics) == {
        "r2", "coefficient_of_determination", "pearson", "spearman", "mse", "calibration_slope",
        "calibration_intercept", "n",
    }  # fmt: skip
    assert metrics["n"] == 200
    for name, value in expected_metrics(predictions, references).items():
        assert metrics[name] == pytest.approx(value, rel=1e-10), name
    # r2 is the squared correlation, not the coefficient of determination: a shifted prediction tells them apart.
    assert metrics["r2"] > metrics["coefficient_of_determination"]


def test_vector_single_column_and_float32_agree(noisy_pairs):
    column, references = noisy_pairs[0][:, :1], noisy_pairs[1][:, 0]
    from_vector = compute_expression_metrics(column[:, 0], references)
    assert compute_expression_metrics(column, references) == from_vector
    assert compute_expression_metrics(column.astype(np.float32), references) == pytest.approx(from_vector, rel=1e-6)


def test_several_outputs_per_output_and_mean(noisy_pairs):
    predictions, references = noisy_pairs
    by_index = compute_expression_metrics(predictions, references)
    by_name = compute_expression_metrics(predictions, references, output_names=["human", "mouse", "fly"])

    per_output = [expected_metrics(predictions[:, i], references[:, i]) for i in range(3)]
    for i, name in enumerate(["human", "mouse", "fly"]):
        for metric, value in per_output[i].items():
            assert by_index[f"{metric}_{i}"] == pytest.approx(value, rel=1e-10)
            assert by_name[f"{metric}_{name}"] == pytest.approx(value, rel=1e-10)
    for metric in per_output[0]:
        assert by_name[metric] == pytest.approx(np.mean([values[metric] for values in per_output]), rel=1e-10)
    assert by_name["n"] == 200
    assert len(by_name) == 7 + 3 * 7 + 1


def test_constant_predictions_give_nan_correlations_with_a_warning():
    references = np.arange(6.0)
    with pytest.warns(RuntimeWarning, match="predictions are constant"):
        metrics = compute_expression_metrics(np.full(6, 2.5), references)
    assert np.isnan(metrics["r2"]) and np.isnan(metrics["pearson"]) and np.isnan(metrics["spearman"])
    assert metrics["coefficient_of_determination"] == pytest.approx(0.0)
    assert metrics["mse"] == pytest.approx(np.mean((references - 2.5) ** 2))


def test_constant_references_leave_the_coefficient_of_determination_undefined():
    with pytest.warns(RuntimeWarning, match="references are constant for output b"):
        metrics = compute_expression_metrics(
            np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), np.array([[1.0, 4.0], [2.0, 4.0], [4.0, 4.0]]), ["a", "b"]
        )
    assert np.isnan(metrics["coefficient_of_determination_b"]) and np.isnan(metrics["r2_b"])
    assert np.isfinite(metrics["r2_a"])
    assert np.isnan(metrics["r2"])  # the mean over outputs keeps the undefined one visible


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("bad_array", ["predictions", "references"])
def test_non_finite_values_are_rejected_by_name(bad_array, bad_value):
    arrays = {"predictions": np.arange(5.0), "references": np.arange(5.0) + 1}
    arrays[bad_array][3] = bad_value
    with pytest.raises(ValueError, match=f"{bad_array} contain 1 NaN or infinite value\\(s\\), the first in row 3"):
        compute_expression_metrics(**arrays)


@pytest.mark.parametrize(
    ("predictions", "references", "output_names", "message"),
    [
        (np.zeros(4), np.zeros(5), None, "differ in shape"),
        (np.zeros((4, 2)), np.zeros((4, 3)), None, "differ in shape"),
        (np.ones(1), np.ones(1), None, "at least two"),
        (np.zeros((4, 2)), np.ones((4, 2)), ["only-one"], "1 output names for 2 outputs"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), None, "vector or an"),
    ],
)
def test_malformed_input_is_rejected(predictions, references, output_names, message):
    with pytest.raises(ValueError, match=message):
        compute_expression_metrics(predictions, references, output_names=output_names)


def test_the_metric_class_accumulates_batches(noisy_pairs):
    predictions, references = noisy_pairs
    metric = ExpressionMetrics()
    for start in range(0, 200, 64):
        metric.add_batch(predictions=predictions[start : start + 64], references=references[start : start + 64])
    computed = metric.compute(output_names=["human", "mouse", "fly"])
    direct = compute_expression_metrics(predictions, references, output_names=["human", "mouse", "fly"])
    assert computed == pytest.approx(direct, rel=1e-12)

    single = ExpressionMetrics().compute(predictions=predictions[:, 0].tolist(), references=references[:, 0].tolist())
    assert single == pytest.approx(compute_expression_metrics(predictions[:, 0], references[:, 0]), rel=1e-12)


@pytest.mark.slow
def test_evaluate_load_of_the_script_works_offline(tmp_path, noisy_pairs):
    """In a fresh process with an empty cache and the offline switches on, as a user without network has."""
    script = textwrap.dedent(
        """
        import json, sys
        import evaluate

        metric = evaluate.load(sys.argv[1])
        pairs = json.loads(sys.argv[2])
        print(json.dumps({"name": type(metric).__name__, **metric.compute(**pairs)}))
        """
    )
    predictions, references = noisy_pairs[0][:50, 1], noisy_pairs[1][:50, 1]
    pairs = json.dumps({"predictions": predictions.tolist(), "references": references.tolist()})
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(EXPRESSION_METRICS_SCRIPT), pairs],
        env=environment,
        capture_output=True,
        text=True,
        timeout=process_timeout(starts=1, work_s=5),
    )
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded.pop("name") == "ExpressionMetrics"
    assert loaded == pytest.approx(compute_expression_metrics(predictions, references), rel=1e-12)


def test_calibration_tells_a_biased_prediction_from_a_calibrated_one():
    # The same ranking, hence the same r2: shifted and shrunk predictions are miscalibrated, and the line says how.
    references = np.linspace(0.0, 4.0, 50)
    calibrated = compute_expression_metrics(references + np.sin(references), references)
    biased = compute_expression_metrics(0.5 * (references + np.sin(references)) + 0.3, references)
    assert biased["r2"] == pytest.approx(calibrated["r2"], rel=1e-12)
    assert biased["calibration_slope"] == pytest.approx(2 * calibrated["calibration_slope"], rel=1e-12)
    assert biased["calibration_intercept"] == pytest.approx(
        calibrated["calibration_intercept"] - 0.6 * calibrated["calibration_slope"], rel=1e-9
    )
    assert biased["coefficient_of_determination"] < calibrated["coefficient_of_determination"]
