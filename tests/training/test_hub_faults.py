"""A Hub that fails costs a run nothing: every local result is written first, the push comes last and, when it
fails, the run says so in one line, with exit code 3 and how to push again; a stalled Hub ends within the client
timeout, and a dropped connection is an error like any other."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout
from tests.training.test_run import tiny_run_arguments

REPOSITORY = Path(__file__).resolve().parents[2]
STALL_S = 120  # how long the stalled server sends nothing for each commit


@pytest.mark.slow
def test_a_failing_hub_leaves_the_local_results_complete(tmp_path):
    with HubTestServer() as hub:
        hub.fail_commits("status", 403)  # refused (no write access): not retried
        environment = client_environment(hub, tmp_path / "hf_home")
        environment.update(PYTHONPATH=str(REPOSITORY), HF_HUB_DISABLE_PROGRESS_BARS="1")
        run = tmp_path / "run"
        arguments = tiny_run_arguments(run, "--num_train_epochs", "1", "--push_to_hub", "true")
        arguments += ["--hub_model_id", "org/faulty"]
        completed = subprocess.run(
            [sys.executable, "-m", "expression_perceiver.cli", "train", *arguments],
            env=environment, capture_output=True, text=True, timeout=process_timeout(starts=1, work_s=30),
        )  # fmt: skip
    assert completed.returncode == 3, completed.stderr[-3000:]
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("expression-perceiver train: error: pushing to the Hub repository org/faulty failed")
    assert f"hf upload org/faulty {run}" in last_line and "Traceback" not in completed.stderr
    assert json.loads((run / "results.json").read_text())["test"]["n"] == 16
    assert (run / "test_predictions.tsv").is_file() and (run / "test_scatter.png").is_file()
    assert (run / "model.safetensors").is_file() and (run / "README.md").is_file()


PUSH = textwrap.dedent(
    """
    import json, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from huggingface_hub import HfApi
    from expression_perceiver.training.trainer import bound_hub_requests

    bound_hub_requests(float(sys.argv[2]))
    api = HfApi()

    def push(fault):
        api.create_repo(f"org/{fault}", exist_ok=True)
        started = time.monotonic()
        try:
            api.upload_folder(repo_id=f"org/{fault}", folder_path=sys.argv[1])
            return fault, ["pushed", 0]
        except Exception as error:
            return fault, [type(error).__name__, time.monotonic() - started]

    with ThreadPoolExecutor(2) as pool:  # both at once: most of each push is the client's backoff between retries
        print(json.dumps(dict(pool.map(push, ["drop", "stall"]))))
    """
)


@pytest.mark.slow
def test_a_dropped_or_stalled_commit_ends_in_an_error_within_the_timeout(tmp_path):
    """Both faults in one client process (its start costs seconds of imports); each push retries as the client does,
    with backoff, and ends in an error."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text("{}")
    with HubTestServer() as hub:
        hub.fail_commits("drop", repo_id="org/drop")
        hub.fail_commits("stall", STALL_S, repo_id="org/stall")
        environment = client_environment(hub, tmp_path / "hf_home")
        environment["PYTHONPATH"] = str(REPOSITORY)
        completed = subprocess.run(
            [sys.executable, "-c", PUSH, str(tmp_path / "folder"), "1"],
            env=environment, capture_output=True, text=True,
            timeout=process_timeout(starts=1, work_s=5, wait_s=STALL_S),
        )  # fmt: skip
        hub.fail_commits(None)
    assert completed.returncode == 0, completed.stderr[-2000:]
    outcomes = json.loads(completed.stdout.strip().splitlines()[-1])
    for fault, (outcome, elapsed) in outcomes.items():
        assert outcome.endswith(("Error", "Timeout")), (fault, outcome)
        # A stall of 120 s per commit ends on the 1 s read timeout and the retries. The bound does not scale with
        # the machine's load: `elapsed` is timed inside the client, after its start-up, and is mostly the client's
        # backoff sleeps, which load does not stretch; and a bound of a whole stall or more would pass a client that
        # waited the stall out.
        assert elapsed < STALL_S - 10, fault
