"""Under `accelerate launch -q` (the README's quiet form; a study's cell over several GPUs runs through it), a refused
run's one line is the first error line a user sees, and no launcher traceback follows it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expression_perceiver.data_collators import MaskingSettings
from expression_perceiver.study.cells import FAILURE_FILE, LOG_FILE, finish_cell, start_cell
from expression_perceiver.study.spec import Cell
from tests.processes import process_timeout

REPOSITORY = Path(__file__).resolve().parents[2]
REFUSAL = "unknown argument --learning_rat; did you mean --learning_rate?"


def error_lines(text: str) -> list[str]:
    """The lines of a process's output that speak of an error or a traceback, in order."""
    return [line for line in text.splitlines() if "error" in line.lower() or line.startswith("Traceback")]


def quiet_environment(tmp_path: Path) -> dict[str, str]:
    # No accelerate config of this machine's user (HF_HOME holds it): the command line alone decides.
    return {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_the_readmes_quiet_launch_shows_our_line_first_and_no_traceback(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "-q", "--num_processes", "1", "train.py", "--learning_rat", "0.1"]
    completed = subprocess.run(
        command,
        cwd=REPOSITORY,
        env=quiet_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=process_timeout(starts=2),  # the launcher and the one rank
    )
    assert completed.returncode != 0  # the launcher's own exit code (1), not the run's 2
    errors = error_lines(completed.stderr + completed.stdout)
    assert errors and errors[0] == f"train.py: error: {REFUSAL}", completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    assert "accelerate launch -q" in (REPOSITORY / "README.md").read_text()


@pytest.mark.slow
def test_a_cell_over_two_processes_records_its_own_refusal_not_the_launchers(tmp_path, monkeypatch):
    """A cell on two GPUs runs `accelerate launch -q --multi_gpu`; here two CPU processes over gloo stand in."""
    monkeypatch.chdir(REPOSITORY)
    folder = tmp_path / "cells" / "none" / "seed0"
    cell = Cell(MaskingSettings(), 0, str(folder), ("--learning_rat", "0.1", "--output_dir", str(folder)))
    process = start_cell(cell, quiet_environment(tmp_path), processes=2, threads=1)
    try:
        returncode = process.wait(timeout=process_timeout(starts=3))  # the launcher and two ranks
    finally:
        process.kill()
    assert not finish_cell(cell, returncode, process.log)
    failure = json.loads((folder / FAILURE_FILE).read_text())
    assert failure["returncode"] != 0
    assert failure["error"] == f"expression-perceiver train: error: {REFUSAL}"
    log = (folder / LOG_FILE).read_text()
    assert "accelerate.commands.launch -q --multi_gpu --num_processes 2" in log
    attempt = log.split("\n", 2)[2]  # after the attempt's command line
    assert error_lines(attempt)[0] == f"expression-perceiver train: error: {REFUSAL}"
    assert "Traceback" not in attempt
