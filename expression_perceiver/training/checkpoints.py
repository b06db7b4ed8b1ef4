"""Which run an output folder holds, which of its checkpoints are complete, and whether its training had finished.

A run's output folder is claimed with `run_identity.json`: the arguments that decide its numbers and the data's
fingerprint. A new run refuses a folder claimed by another (unless told to overwrite), so that a resume can only
continue the same run. The `Trainer` writes a checkpoint's weights, optimizer, scheduler and RNG states first and
`trainer_state.json` last, so a checkpoint whose state file is missing or unreadable was cut short by a kill and is
passed over when resuming.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import IO, Any

from safetensors import safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

RUN_IDENTITY_FILE = "run_identity.json"
LOCK_FILE = ".run.lock"
TRAINER_STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"
CLOCK_FILE = "training_clock.json"  # training seconds up to this checkpoint, so a resumed run reports the whole run

# Training arguments that do not change a run's numbers: where it writes, how it logs, pushes or loads data, how
# many checkpoints it keeps, and the device (a run may resume on another machine).
OPERATIONAL_TRAINING_ARGUMENTS = frozenset(
    {
        "output_dir", "logging_dir", "run_name", "resume_from_checkpoint", "overwrite_output_dir", "report_to",
        "disable_tqdm", "logging_steps", "logging_first_step", "logging_nan_inf_filter", "log_level",
        "log_level_replica", "log_on_each_node", "save_total_limit", "save_on_each_node", "use_cpu",
        "per_device_train_batch_size", "per_device_eval_batch_size", "eval_accumulation_steps", "local_rank",
        "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
        "dataloader_pin_memory", "ddp_backend", "ddp_timeout", "ddp_find_unused_parameters", "push_to_hub",
        "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
        "hub_request_timeout",
        "trackio_space_id", "project", "bf16_full_eval", "fp16_full_eval",
    }
)  # fmt: skip


def run_identity(arguments: dict[str, dict[str, Any]], global_batch_size: int, data_fingerprint: str) -> dict:
    """What makes two runs the same run: every argument that decides the numbers, the global batch (the same
    whatever the number of processes) and the data."""
    identity = {group: dict(values) for group, values in arguments.items()}
    training = {
        key: value for key, value in identity.pop("training").items() if key not in OPERATIONAL_TRAINING_ARGUMENTS
    }
    identity["training"] = {**training, "global_train_batch_size": global_batch_size}
    identity["data_fingerprint"] = data_fingerprint
    return json.loads(json.dumps(identity, default=str, sort_keys=True))  # the form it has once written


def identity_differences(old: dict, new: dict, limit: int | None = 5) -> list[str]:
    """'training.seed: 0 -> 3' for each leaf that both identities hold and that differs (at most `limit`).

    Arguments present on one side only are passed over: a newer version of this package or of transformers may add
    arguments, and a run recorded before them is still the same run."""
    differences = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) & set(b)):
                walk(a[key], b[key], f"{path}.{key}" if path else key)
        elif a != b:
            differences.append(f"{path}: {a!r} -> {b!r}")

    walk(old, new, "")
    return differences[:limit]


def same_run(old: dict, new: dict) -> bool:
    return not identity_differences(old, new, limit=None)


def claimed_identity(output_dir: str | Path) -> dict | None:
    path = Path(output_dir) / RUN_IDENTITY_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error}); remove it or use --overwrite_output_dir true") from None


def holds_run_outputs(output_dir: Path) -> bool:
    return any(output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*")) or any(
        (output_dir / name).exists() for name in ("results.json", WEIGHTS_FILE, TRAINER_STATE_FILE)
    )


def lock_output_dir(output_dir: str | Path) -> IO[str]:
    """Holds `output_dir` for this process until it ends (a kill included: the system drops the lock), so that a
    second run, or a second study runner, can never write into a folder a live run is writing. Keep the returned
    handle open."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    handle = open(output_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the run's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ValueError(f"output dir {output_dir} is in use by another running process (pid {holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def output_dir_in_use(output_dir: str | Path) -> bool:
    """Whether a live process holds `output_dir` (see `lock_output_dir`)."""
    path = Path(output_dir) / LOCK_FILE
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def claim_output_dir(output_dir: str | Path, identity: dict, overwrite: bool, write: bool = True) -> None:
    """Makes `output_dir` this run's folder, or refuses (ValueError) when it holds another run.

    With `overwrite`, another run's files are removed first (the lock of this run stays). Only the writing process
    (`write`, rank 0) changes the folder; the others only check.
    """
    output_dir = Path(output_dir)
    claimed = claimed_identity(output_dir) if output_dir.is_dir() else None
    other_run = (claimed is not None and not same_run(claimed, identity)) or (
        claimed is None and output_dir.is_dir() and holds_run_outputs(output_dir)
    )
    if other_run and not overwrite:
        what = (
            "another run (" + "; ".join(identity_differences(claimed, identity)) + ")"
            if claimed is not None
            else "checkpoints or results of an unidentified run"
        )
        raise ValueError(
            f"output dir {output_dir} holds {what}; choose another --output_dir, or pass --overwrite_output_dir true "
            "to replace it"
        )
    if not write:
        return
    if other_run:
        logger.warning("--overwrite_output_dir: removing the other run's files from %s", output_dir)
        for entry in output_dir.iterdir():
            if entry.name != LOCK_FILE:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RUN_IDENTITY_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")


def checkpoint_step(path: Path) -> int | None:
    suffix = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
    return int(suffix) if suffix.isdigit() and path.name != suffix else None


def is_complete_checkpoint(path: Path) -> bool:
    """Whether a checkpoint was written to the end: its state file (written last) reads and names its own step,
    and its weights file holds a readable safetensors header."""
    try:
        state = json.loads((path / TRAINER_STATE_FILE).read_text())
        with safe_open(str(path / WEIGHTS_FILE), framework="pt") as weights:
            weights.keys()
    except Exception:  # a cut file: missing, truncated JSON, or safetensors' own error on a bad header
        return False
    return state.get("global_step") == checkpoint_step(path)


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in `output_dir`; incomplete ones are reported and skipped."""
    candidates = [path for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.is_dir()]
    for path in sorted(candidates, key=lambda p: checkpoint_step(p) or -1, reverse=True):
        if checkpoint_step(path) is None:
            continue
        if is_complete_checkpoint(path):
            return path
        logger.warning("%s is incomplete (interrupted while being written): not resuming from it", path)
    return None


def trainer_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / TRAINER_STATE_FILE).read_text())


def training_had_finished(checkpoint: Path) -> bool:
    """Whether the run had stopped training when it wrote `checkpoint`: early stopping had fired, or the last step
    was reached. Resuming from it must then evaluate, not train on."""
    state = trainer_state(checkpoint)
    early_stopping = state.get("stateful_callbacks", {}).get("EarlyStoppingCallback", {})
    if isinstance(early_stopping, list):
        early_stopping = early_stopping[-1] if early_stopping else {}
    patience = early_stopping.get("args", {}).get("early_stopping_patience")
    waited = early_stopping.get("attributes", {}).get("early_stopping_patience_counter", 0)
    early_stopped = patience is not None and waited >= patience
    return early_stopped or state.get("global_step", 0) >= state.get("max_steps", 1 << 62)


def training_seconds_until(checkpoint: Path | None) -> float:
    """Training time recorded up to `checkpoint` (0 without one)."""
    if checkpoint is None:
        return 0.0
    try:
        return float(json.loads((checkpoint / CLOCK_FILE).read_text())["training_seconds"])
    except (OSError, ValueError, KeyError):
        return 0.0
