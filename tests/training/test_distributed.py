"""`accelerate launch --multi_gpu --num_processes 2` on CPU (2-rank DDP over gloo) against one process with the same
global batch: one optimisation step gives the same training loss, gradient and updated weights to float32 rounding,
and only rank 0 writes files and pushes to the Hub.

One step, not whole runs: what DDP promises is that each step applies the gradient one process computes on the
whole batch. Over epochs the two runs' rounding differences (sums over two ranks, not one) grow with every step, by
an amount that depends on the CPU's kernels, and metrics after training no longer tell a DDP bug from rounding."""

import json
import math
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import set_seed

from expression_perceiver.training.arguments import DataArguments, ModelArguments
from expression_perceiver.training.run import feature_means, label_scale, load_splits
from expression_perceiver.training.trainer import build_model
from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout
from tests.training.test_run import TINY

REPOSITORY = Path(__file__).resolve().parents[2]
# The default architecture, convolutional branch and its batch norms included, without dropout (whose masks each
# rank draws for itself): the two runs then compute the same step.
DETERMINISTIC = TINY + ",dropout=0.0"
GLOBAL_BATCH = 16
SEED = 42
NUM_GENES = 160
# Everything the initial weights depend on, given explicitly (not left to a base recipe): `initial_model` builds
# the same model in this process.
MODEL_AND_DATA = [
    "--model_type", "dna_perceiver", "--config_overrides", DETERMINISTIC, "--synthetic_num_genes", str(NUM_GENES),
    "--synthetic_length", "1000", "--synthetic_seed", "0", "--seed", str(SEED),
]  # fmt: skip
# One step of plain SGD at learning rate 1: no momentum, weight decay, warm-up, schedule or gradient clipping
# (`--max_grad_norm 0` turns clipping off). The saved weights are then w0 - g, with g the gradient of the mean loss
# over the first global batch of the shuffled training split.
ONE_SGD_STEP = [
    "--max_steps", "1", "--optim", "sgd", "--learning_rate", "1.0", "--lr_scheduler_type", "constant",
    "--warmup_steps", "0", "--weight_decay", "0", "--max_grad_norm", "0",
    "--logging_strategy", "steps", "--logging_steps", "1",  # the step's loss and gradient norm in the log
]  # fmt: skip

# Both runs compute the gradient of the same mean loss over the same 16 sequences from the same weights. DDP adds
# the two ranks' halves (and, in the batch norms, their statistics) over gloo where one process adds all 16 at once,
# and the kernels block a batch of 8 otherwise than one of 16: the same sums in another order, whose results differ
# by a few float32 roundings (eps = 2**-23) of the magnitudes summed. For a saved weight, w0 - g is rounded at the
# scale of that tensor. For its gradient the magnitudes summed are those of the gradients propagated back, not the
# element's own: a convolution's bias ahead of a batch norm has a gradient of exactly zero, computed as a sum of
# terms that cancel, so both runs save rounding noise there, of the size of the propagated gradients. Their scale is
# the step's norm (the step is -g at learning rate 1). Hence, tensor by tensor,
#     max |single - ddp| <= ROUNDINGS * eps * (max |w| of the tensor + ||step||).
# Measured: at most 0.9 eps of that scale, for every tensor. A wrong DDP step (gradients summed instead of averaged,
# other examples, per-rank batch statistics) moves weights by a sizeable fraction of the step itself, orders of
# magnitude beyond 16 eps.
ROUNDINGS = 16
FLOAT32_EPS = torch.finfo(torch.float32).eps
# The loss and the gradient's norm are single sums of the same kind: a few roundings apart as well (1e-5 ~ 80 eps).
SCALAR_RTOL = 1e-5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_arguments(output_dir: Path, per_device_batch: int, repo_id: str) -> list[str]:
    return [
        *MODEL_AND_DATA, *ONE_SGD_STEP, "--output_dir", str(output_dir),
        "--per_device_train_batch_size", str(per_device_batch), "--per_device_eval_batch_size", "8",
        "--use_cpu", "true", "--disable_tqdm", "true", "--ddp_find_unused_parameters", "false",
        "--push_to_hub", "true", "--hub_model_id", repo_id,
    ]  # fmt: skip


def launch(command: list[str], environment: dict, cwd: Path, starts: int) -> None:
    # Each run: the synthetic data, one training step, a validation and a test pass, the reload check and two pushes.
    timeout = process_timeout(starts=starts, work_s=20)
    completed = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-4000:]


def initial_model(scratch: Path) -> torch.nn.Module:
    """The model both runs start from, built as `expression_perceiver.training.run.main` builds it: the same seed,
    the same data (which sets the feature count and label scale), the same overrides."""
    model_args = ModelArguments(model_type="dna_perceiver", config_overrides=DETERMINISTIC)
    data_args = DataArguments(synthetic_num_genes=NUM_GENES, synthetic_length=1000, synthetic_seed=0)
    set_seed(SEED)
    with tempfile.TemporaryDirectory(dir=scratch) as data_folder:
        raw_splits, metadata = load_splits(data_args, data_folder)
    mean, std = label_scale(metadata, data_args.standardize_labels)
    return build_model(model_args, len(mean), metadata.num_features, mean, std, feature_means(raw_splits["train"]))


def logged_step(output_dir: Path) -> dict:
    """The Trainer's log of the one training step: its loss and the gradient's norm (before any clipping)."""
    state = json.loads((output_dir / "checkpoint-1" / "trainer_state.json").read_text())
    return next(entry for entry in state["log_history"] if "loss" in entry)


@pytest.mark.slow
def test_one_ddp_step_over_two_processes_is_the_one_process_step_and_only_rank_zero_writes(tmp_path):
    with HubTestServer() as hub:
        environment = client_environment(hub, tmp_path / "hf_home")
        environment["PYTHONPATH"] = str(REPOSITORY)
        single = tmp_path / "single"
        launch(
            [sys.executable, str(REPOSITORY / "train.py"), *train_arguments(single, GLOBAL_BATCH, "org/single")],
            environment,
            tmp_path,
            starts=1,
        )
        ddp = tmp_path / "ddp"
        accelerate = Path(sys.executable).with_name("accelerate")
        launch(
            [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
             "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()),
             "--mixed_precision", "no", "--dynamo_backend", "no",
             str(REPOSITORY / "train.py"), *train_arguments(ddp, GLOBAL_BATCH // 2, "org/ddp")],
            environment,
            tmp_path,
            starts=3,  # the launcher and two ranks
        )  # fmt: skip
        single_commits = [commit.title for commit in hub.commits("org/single")]
        ddp_commits = [commit.title for commit in hub.commits("org/ddp")]

    one, two = (json.loads((folder / "results.json").read_text()) for folder in (single, ddp))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["train"]["global_step"] == two["train"]["global_step"] == 1
    step_one, step_two = logged_step(single), logged_step(ddp)
    assert step_two["loss"] == pytest.approx(step_one["loss"], rel=SCALAR_RTOL)
    assert two["train"]["train_loss"] == pytest.approx(one["train"]["train_loss"], rel=SCALAR_RTOL)
    assert step_two["grad_norm"] == pytest.approx(step_one["grad_norm"], rel=SCALAR_RTOL)

    # Not vacuous: both runs started from these weights and took the step, -g with g the gradient whose norm the
    # Trainer logged (non-zero).
    initial = initial_model(tmp_path)
    start = initial.state_dict()
    after_one, after_two = load_file(single / "model.safetensors"), load_file(ddp / "model.safetensors")
    assert after_one.keys() == after_two.keys() == start.keys()
    step = {name: after_one[name].double() - start[name].double() for name, _ in initial.named_parameters()}
    step_norm = math.sqrt(sum(float(change.square().sum()) for change in step.values()))
    assert step_norm > 0.01
    assert step_norm == pytest.approx(step_one["grad_norm"], rel=SCALAR_RTOL), "not the runs' initial weights"

    for name, expected in after_one.items():
        if not expected.is_floating_point():  # the batch norms' step counters
            assert torch.equal(after_two[name], expected), name
            continue
        difference = float((after_two[name] - expected).abs().max())
        tolerance = ROUNDINGS * FLOAT32_EPS * (float(expected.abs().max()) + step_norm)
        assert difference <= tolerance, (
            f"{name}: DDP step differs by {difference:.3g} (float32 rounding: {tolerance:.3g})"
        )

    # Rank 1 neither pushes nor writes: the same commits as the single process, one line per test gene.
    assert single_commits[-1].startswith("Final model")
    assert ddp_commits == single_commits
    assert len((ddp / "test_predictions.tsv").read_text().splitlines()) == 17
