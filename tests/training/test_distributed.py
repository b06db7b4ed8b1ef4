"""`accelerate launch --multi_gpu --num_processes 2` on CPU (2-rank DDP over gloo) against one process with the same
global batch: same metrics, and only rank 0 writes files and pushes to the Hub."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hub_server import HubTestServer, client_environment
from tests.training.test_run import TINY

REPOSITORY = Path(__file__).resolve().parents[2]
# The default architecture, convolutional branch and its batch norms included, without dropout (whose masks each
# rank draws for itself): the two runs then compute the same updates.
DETERMINISTIC = TINY + ",dropout=0.0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_arguments(output_dir: Path, per_device_batch: int, repo_id: str) -> list[str]:
    return [
        "--config_overrides", DETERMINISTIC, "--synthetic_num_genes", "160", "--output_dir", str(output_dir),
        "--num_train_epochs", "2", "--per_device_train_batch_size", str(per_device_batch),
        "--per_device_eval_batch_size", "8", "--learning_rate", "0.002", "--use_cpu", "true",
        "--disable_tqdm", "true", "--ddp_find_unused_parameters", "false",
        "--push_to_hub", "true", "--hub_model_id", repo_id,
    ]  # fmt: skip


def launch(command: list[str], environment: dict, cwd: Path) -> None:
    completed = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]


def test_two_process_ddp_matches_one_process_and_only_rank_zero_writes(tmp_path):
    with HubTestServer() as hub:
        environment = client_environment(hub, tmp_path / "hf_home")
        environment["PYTHONPATH"] = str(REPOSITORY)
        single = tmp_path / "single"
        launch(
            [sys.executable, str(REPOSITORY / "train.py"), *train_arguments(single, 16, "org/single")],
            environment,
            tmp_path,
        )
        ddp = tmp_path / "ddp"
        accelerate = Path(sys.executable).with_name("accelerate")
        launch(
            [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
             "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()),
             "--mixed_precision", "no", "--dynamo_backend", "no",
             str(REPOSITORY / "train.py"), *train_arguments(ddp, 8, "org/ddp")],
            environment,
            tmp_path,
        )  # fmt: skip
        single_commits = [commit.title for commit in hub.commits("org/single")]
        ddp_commits = [commit.title for commit in hub.commits("org/ddp")]

    one, two = (json.loads((folder / "results.json").read_text()) for folder in (single, ddp))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["train"]["epoch"] == one["train"]["epoch"]
    for split in ("validation", "test"):
        assert two[split]["n"] == one[split]["n"] == 16
        for name in ("r2", "mse", "pearson", "spearman"):
            # Two epochs of batch-normalised training carry rounding (sums over two ranks, not one) to about 2e-4
            # of r2; per-rank batch statistics, as plain BatchNorm1d takes them, move it by 8e-3.
            assert two[split][name] == pytest.approx(one[split][name], rel=1e-3, abs=1e-5), (split, name)
    # Rank 1 neither pushes nor writes: the same commits as the single process, one line per test gene.
    assert ddp_commits == single_commits
    assert len((ddp / "test_predictions.tsv").read_text().splitlines()) == 17
