"""A Hub that fails costs a run nothing: every local result is written first, the push comes last and, when it
fails (an HTTP error, a dropped connection, a stall beyond the client timeout), the run says so in one line, with
exit code 3 and how to push again."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hub_server import HubTestServer, client_environment
from tests.training.test_run import tiny_run_arguments

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("fault", "value"), [("status", 500), ("drop", 0), ("stall", 60)])
def test_a_failing_hub_leaves_the_local_results_complete(tmp_path, fault, value):
    with HubTestServer() as hub:
        hub.fail_commits(fault, value)
        environment = client_environment(hub, tmp_path / "hf_home")
        environment.update(PYTHONPATH=str(REPOSITORY), HF_HUB_DISABLE_PROGRESS_BARS="1")
        run = tmp_path / "run"
        arguments = tiny_run_arguments(run, "--num_train_epochs", "1", "--push_to_hub", "true")
        arguments += ["--hub_model_id", "org/faulty", "--hub_request_timeout", "2"]
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "expression_perceiver.cli", "train", *arguments],
            env=environment, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert completed.returncode == 3, completed.stderr[-3000:]
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("expression-perceiver train: error: pushing to the Hub repository org/faulty failed")
    assert f"hf upload org/faulty {run}" in last_line and "Traceback" not in completed.stderr
    assert json.loads((run / "results.json").read_text())["test"]["n"] == 16
    assert (run / "test_predictions.tsv").is_file() and (run / "test_scatter.png").is_file()
    assert (run / "model.safetensors").is_file() and (run / "README.md").is_file()
    if fault == "stall":
        assert elapsed < 200  # bounded by the client timeout and its retries, not by the 60 s stalls
