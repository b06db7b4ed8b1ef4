"""A training process killed with SIGKILL after its first checkpoint (in the next epoch, or while it writes the
next checkpoint: wherever the signal lands) resumes with `--resume_from_checkpoint auto` to the metrics of an
uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expression_perceiver.training.run import main
from tests.processes import process_timeout
from tests.training.test_run import tiny_run_arguments

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_uninterrupted_metrics(tmp_path):
    arguments = ["--num_train_epochs", "3", "--save_total_limit", "1", "--load_best_model_at_end", "false"]
    uninterrupted = main(tiny_run_arguments(tmp_path / "whole", *arguments))

    run = tmp_path / "killed"
    command = [sys.executable, "-m", "expression_perceiver.cli", "train", *tiny_run_arguments(run, *arguments)]
    # One thread, as the runs in this process (tests/conftest.py): the comparison is about resuming, not threads.
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + process_timeout(starts=1, work_s=20)  # the first of three epochs
    while not (run / "checkpoint-8" / "trainer_state.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "results.json").exists()

    resumed = main(tiny_run_arguments(run, *arguments, "--resume_from_checkpoint", "auto"))
    assert resumed["train"]["global_step"] == uninterrupted["train"]["global_step"] == 24
    for name in ("r2", "mse"):
        assert resumed["test"][name] == pytest.approx(uninterrupted["test"][name], rel=1e-4, abs=1e-6)
    assert json.loads((run / "results.json").read_text())["train"]["train_loss"] == pytest.approx(
        uninterrupted["train"]["train_loss"], rel=1e-4
    )
