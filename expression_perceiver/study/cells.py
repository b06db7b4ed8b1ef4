"""The state of a study's cells, read from their folders alone, and how one cell is run.

A cell is finished when its `results.json` exists and carries the cell's own arguments (its run identity); that
small file (with `test_predictions.tsv`) is all a report needs, so checkpoints may be deleted and finished cells
committed, and the study continued on another machine. A cell whose run failed keeps `cell_failure.json` (exit
code and the error's last lines) until it is run again; any other cell is left to run, and a cell interrupted
mid-training resumes from its last complete checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..training.checkpoints import output_dir_in_use, same_run
from .spec import Cell, cell_identity, without_fingerprint

RESULTS_FILE = "results.json"
FAILURE_FILE = "cell_failure.json"
LOG_FILE = "train.log"

DONE, FAILED, MISMATCHED, LEFT, RUNNING = "done", "failed", "mismatched", "left", "running"
ATTEMPT_MARK = "=== "  # a line of train.log that starts an attempt at the cell: "=== DATE TIME: COMMAND"


@dataclass
class CellState:
    cell: Cell
    state: str
    detail: str = ""


def cell_state(cell: Cell, processes: int = 1) -> CellState:
    """running (a live process holds its folder: another runner or array task), done (results of exactly this
    cell's arguments), mismatched (results of other arguments: the study file changed; the cell is left alone),
    failed (its last run failed), or left."""
    folder = Path(cell.output_dir)
    if output_dir_in_use(folder):
        return CellState(cell, RUNNING, "a live process is running it")
    results_path = folder / RESULTS_FILE
    if results_path.is_file():
        try:
            recorded = json.loads(results_path.read_text()).get("identity")
        except (OSError, json.JSONDecodeError) as error:
            return CellState(cell, MISMATCHED, f"{results_path} cannot be read ({error})")
        if recorded is not None and same_run(without_fingerprint(recorded), cell_identity(cell, processes)):
            return CellState(cell, DONE)
        return CellState(cell, MISMATCHED, f"{results_path} holds a run with other arguments")
    failure_path = folder / FAILURE_FILE
    if failure_path.is_file():
        try:
            return CellState(cell, FAILED, json.loads(failure_path.read_text()).get("error", ""))
        except (OSError, json.JSONDecodeError):
            return CellState(cell, FAILED, "unreadable failure record")
    return CellState(cell, LEFT)


def launch_command(cell: Cell, processes: int = 1, threads: int | None = None) -> list[str]:
    """The command that runs a cell: `python -m expression_perceiver.cli train ...` in one process, or the same
    through `accelerate launch -q` over several processes (GPUs) for one cell (quiet: a refused run's one line is not
    followed by the launcher's own traceback in the cell's train.log)."""
    train = ["-m", "expression_perceiver.cli", "train", *cell.argv]
    if processes <= 1:
        return [sys.executable, *train]
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "-q", "--multi_gpu", "--num_processes", str(processes),
    ]  # fmt: skip
    if threads:
        launcher += ["--num_cpu_threads_per_process", str(threads)]
    return [*launcher, *train]


def start_cell(cell: Cell, environment: dict[str, str], processes: int = 1, threads: int | None = None):
    """Starts a cell's run in the background, its output appended to the cell's `train.log`."""
    folder = Path(cell.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILURE_FILE).unlink(missing_ok=True)
    log = open(folder / LOG_FILE, "a")  # noqa: SIM115 - closed by `finish_cell`
    command = launch_command(cell, processes, threads)
    log.write(f"\n{ATTEMPT_MARK}{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    process.log = log
    return process


def finish_cell(cell: Cell, returncode: int, log_file=None) -> bool:
    """Records how a cell's run ended; a failure keeps its exit code and last error line for the report."""
    if log_file is not None:
        log_file.close()
    if returncode == 0 and (Path(cell.output_dir) / RESULTS_FILE).is_file():
        return True
    if output_dir_in_use(cell.output_dir):  # refused: another runner's live run holds the folder
        return False
    tail = last_lines(Path(cell.output_dir) / LOG_FILE, 200)
    failure = {"returncode": returncode, "error": failure_line(tail), "log_tail": tail[-30:]}
    (Path(cell.output_dir) / FAILURE_FILE).write_text(json.dumps(failure, indent=2) + "\n")
    return False


# How the training command states a refusal: one line, before anything a launcher prints after it.
REFUSAL_PREFIX = "expression-perceiver train: error: "


def failure_line(tail: list[str]) -> str:
    """The line of a failed run's log that says why: the training's own refusal, else the last line that speaks of
    an error, else the last line. Only the last attempt's lines count (the log keeps every attempt)."""
    starts = [i for i, line in enumerate(tail) if line.startswith(ATTEMPT_MARK)]
    tail = tail[starts[-1] + 1 :] if starts else tail
    refusal = next((line for line in tail if line.startswith(REFUSAL_PREFIX)), None)
    if refusal is not None:
        return refusal.strip()
    error = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else "no output")
    return error.strip()


def run_cell(cell: Cell, processes: int = 1, threads: int | None = None) -> bool:
    """Runs one cell to its end in this process's foreground (a SLURM array task does this)."""
    environment = dict(os.environ)
    if threads:
        environment["OMP_NUM_THREADS"] = str(threads)
    process = start_cell(cell, environment, processes, threads)
    return finish_cell(cell, process.wait(), process.log)


def last_lines(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return []
