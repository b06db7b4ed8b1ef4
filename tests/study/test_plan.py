"""`study plan --estimate`: a few measured steps of one cell, projected to the whole study."""

import math

import pytest

from expression_perceiver.study.plan import estimate, estimate_lines, measure_cell, plan_lines
from expression_perceiver.study.spec import load_study
from tests.study.test_executors import write_study


@pytest.mark.slow
def test_the_estimate_measures_steps_of_a_real_cell_and_projects_every_cell(tmp_path):
    table = [{"name": "none"}, {"name": "span", "strategy": "random_span", "mode": "mask", "mask_length": 50}]
    study = load_study(write_study(tmp_path, table, seeds=3))
    assert plan_lines(study)[-1].strip() == "6 left"
    probe = measure_cell(study, steps=3, report=lambda line: None)
    assert probe["train"]["global_step"] == 3
    figures = estimate(study, probe, slots=2)
    assert figures["steps_per_epoch"] == math.ceil(64 / 16)  # 80 generated genes, 80% train, batch 16
    assert figures["seconds_per_step"] > 0 and figures["epochs_per_cell"] == 1
    assert figures["wall_seconds"] == math.ceil(6 / 2) * figures["seconds_per_cell"]
    assert "6 cells left on 2 slot(s)" in estimate_lines(figures)[-1]
    assert not (tmp_path / "study" / "cells").exists()  # the probe ran in a scratch folder
