"""Label standardisation, written once: a model is trained on labels standardised with the train split's mean and
standard deviation (kept in its config as `label_mean` / `label_std`), and its outputs are brought back to the data's
units with the same two numbers. A model may also carry a calibration fitted on its validation split (config
`calibration`: observed = intercept + slope x predicted, in standardised units), applied before that."""

from collections.abc import Sequence

import numpy as np


def standardize(labels, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(rows, outputs) float64 z-scores of labels in the data's units."""
    labels = np.asarray(labels, dtype=np.float64)
    return (labels.reshape(len(labels), -1) - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)


def in_data_units(values, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(rows, outputs) float64 values in the data's units of standardised values (a model's outputs)."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1) * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)


def calibrated_scale(
    mean: Sequence[float], std: Sequence[float], calibration: dict | None
) -> tuple[np.ndarray, np.ndarray]:
    """The (mean, std) that take a model's raw outputs to calibrated values in the data's units in one step:
    (intercept + slope z) std + mean = z (slope std) + (intercept std + mean)."""
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if not calibration:
        return mean, std
    slope = np.asarray(calibration["slope"], dtype=np.float64)
    intercept = np.asarray(calibration["intercept"], dtype=np.float64)
    return intercept * std + mean, slope * std
