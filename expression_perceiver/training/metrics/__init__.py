"""Metrics of expression predictions: a plain function and the same as a local `evaluate` metric."""

from pathlib import Path

from .expression_metrics import (
    METRIC_NAMES,
    ExpressionMetrics,
    calibration_line,
    compute_expression_metrics,
    fit_calibration,
)

# `evaluate.load(str(EXPRESSION_METRICS_SCRIPT))` works offline; a folder is only loadable through a script named
# after it, which this one is not.
EXPRESSION_METRICS_SCRIPT = Path(__file__).with_name("expression_metrics.py")

__all__ = [
    "EXPRESSION_METRICS_SCRIPT",
    "METRIC_NAMES",
    "ExpressionMetrics",
    "calibration_line",
    "compute_expression_metrics",
    "fit_calibration",
]
