"""Calibration: a line fitted on the validation split, stored in the config and applied by every tool that
predicts; selection never inside the learning-rate warm-up."""

import json

import numpy as np
import pytest
import torch
from transformers import pipeline

from expression_perceiver.data.standardization import calibrated_scale
from expression_perceiver.inference import predict
from expression_perceiver.training.metrics import fit_calibration
from expression_perceiver.training.run import main
from tests.training.test_run import tiny_run_arguments


def test_fit_calibration_is_the_least_squares_line_per_output():
    rng = np.random.default_rng(0)
    predicted = rng.normal(size=(200, 2))
    observed = np.stack([0.3 + 1.7 * predicted[:, 0], -0.2 + 0.5 * predicted[:, 1]], axis=1)
    fitted = fit_calibration(predicted, observed)
    assert fitted["slope"] == pytest.approx([1.7, 0.5]) and fitted["intercept"] == pytest.approx([0.3, -0.2])
    assert fitted["fitted_on"] == "validation" and fitted["n"] == 200
    mean, std = calibrated_scale([1.0, 2.0], [2.0, 4.0], fitted)
    # (intercept + slope z) std + mean, in one step
    assert np.allclose(mean, [1.0 + 0.3 * 2.0, 2.0 - 0.2 * 4.0]) and np.allclose(std, [1.7 * 2.0, 0.5 * 4.0])


@pytest.mark.slow
def test_a_calibrated_run_stores_the_line_and_every_tool_applies_it(tmp_path):
    run = tmp_path / "run"
    results = main(tiny_run_arguments(run, "--calibrate", "true", "--warmup_steps", "12"))
    config = json.loads((run / "config.json").read_text())
    calibration = config["calibration"]
    assert calibration == results["calibration"] and calibration["n"] == 16
    # Selection waited for the end of the warm-up (12 steps: the first epoch's 8 steps are inside it).
    assert results["train"]["selected_epoch"] == 2.0
    # The test metrics are the calibrated predictions'; the raw ones are kept beside them.
    assert results["test_uncalibrated"]["r2"] == pytest.approx(results["test"]["r2"], abs=1e-9)  # a line keeps r2
    rows = [line.split("\t") for line in (run / "test_predictions.tsv").read_text().splitlines()[1:]]
    observed, written = np.array([[float(v) for v in row[1:]] for row in rows]).T
    mse = float(np.mean((observed - written) ** 2))
    assert results["test"]["mse"] == pytest.approx(mse, rel=1e-5)

    sequence = "ACGT" * 250
    features = [0.1] * 8
    predicted = predict([{"id": "g", "sequence": sequence, "features": features}], str(run))
    model = __import__("transformers").AutoModelForSequenceClassification.from_pretrained(run).eval()
    ids = __import__("transformers").AutoTokenizer.from_pretrained(run)(sequence, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        raw = model(input_ids=ids, features=torch.tensor([features])).logits.item()
    expected = (calibration["intercept"][0] + calibration["slope"][0] * raw) * config["label_std"][0]
    expected += config["label_mean"][0]
    assert predicted.iloc[0, 1] == pytest.approx(expected, rel=1e-5)
    regress = pipeline("expression-regression", model=str(run), trust_remote_code=True)
    output = regress({"sequence": sequence, "features": features})
    assert output["calibrated"] and next(iter(output["predictions"].values())) == pytest.approx(expected, rel=1e-4)
