"""Where a study's cells run: here one after another or several at a time (`local`), one worker per visible GPU
(`gpus`), or as a SLURM job array through submitit (`slurm`).

Every executor runs only the cells that are not finished, so re-running the same command after any interruption
finishes the study and changes no finished cell.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .cells import DONE, FAILED, LEFT, MISMATCHED, CellState, cell_state, finish_cell, run_cell, start_cell
from .spec import Cell, Study

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "gpus", "slurm")


@dataclass
class Slot:
    """A place a cell can run: its environment (threads, visible GPU) and the processes one cell uses."""

    name: str
    environment: dict[str, str]
    processes: int = 1
    threads: int | None = None


@dataclass
class Progress:
    """Cells done / running / failed / left, printed as one line whenever it changes."""

    total: int
    counts: Counter = field(default_factory=Counter)
    report: Callable[[str], None] = print

    def line(self) -> str:
        parts = [f"{self.counts[DONE]} done", f"{self.counts['running']} running", f"{self.counts[FAILED]} failed"]
        if self.counts[MISMATCHED]:
            parts.append(f"{self.counts[MISMATCHED]} with other arguments (left alone)")
        parts.append(f"{self.counts[LEFT]} left")
        return f"cells: {', '.join(parts)} (of {self.total})"

    def move(self, source: str, target: str) -> None:
        self.counts[source] -= 1
        self.counts[target] += 1
        self.report(self.line())


def study_states(study: Study, processes: int = 1) -> list[CellState]:
    return [cell_state(cell, processes) for cell in study.cells()]


def cpu_slots(jobs: int) -> list[Slot]:
    """`jobs` cells at a time on this machine's CPUs, the cores shared out between them."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    return [Slot(f"cpu{i}", environment, threads=threads) for i in range(jobs)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as `CUDA_VISIBLE_DEVICES` entries."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        return [gpu.strip() for gpu in visible.split(",") if gpu.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(cells_per_gpu: int = 1, gpus_per_cell: int = 1, gpus: list[str] | None = None) -> list[Slot]:
    """One worker per visible GPU (or per group of `gpus_per_cell`), `cells_per_gpu` small cells on each."""
    for flag, value in (("--cells-per-gpu", cells_per_gpu), ("--gpus-per-cell", gpus_per_cell)):
        if value < 1:
            raise ValueError(f"executor gpus: {flag} must be at least 1, got {value}")
    gpus = visible_gpus() if gpus is None else gpus
    if not gpus:
        raise ValueError("executor gpus: no GPU is visible (CUDA_VISIBLE_DEVICES / torch.cuda); use --executor local")
    if gpus_per_cell > 1 and cells_per_gpu > 1:
        raise ValueError("executor gpus: --cells-per-gpu > 1 needs --gpus-per-cell 1")
    groups = [gpus[i : i + gpus_per_cell] for i in range(0, len(gpus) - gpus_per_cell + 1, gpus_per_cell)]
    if not groups:
        raise ValueError(f"executor gpus: {gpus_per_cell} GPUs per cell but only {len(gpus)} visible")
    threads = max(1, (os.cpu_count() or 1) // (len(groups) * cells_per_gpu))
    return [
        Slot(
            f"gpu{','.join(group)}#{k}",
            {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(group), "OMP_NUM_THREADS": str(threads)},
            processes=len(group),
            threads=threads,
        )
        for group in groups
        for k in range(cells_per_gpu)
    ]


def run_on_slots(study: Study, slots: list[Slot], report: Callable[[str], None] = print, poll_s: float = 1.0) -> dict:
    """Runs every unfinished cell, as many at a time as there are slots; a failing cell is recorded and the study
    goes on. Returns the final count of cells per state."""
    states = study_states(study, slots[0].processes)
    progress = Progress(total=len(states), counts=Counter(state.state for state in states), report=report)
    report(progress.line())
    for state in states:
        if state.state == MISMATCHED:
            report(f"  {state.cell.name}: {state.detail}")
    queue = [state for state in states if state.state in (LEFT, FAILED)]
    running: dict[str, tuple[Any, CellState, Slot]] = {}
    free = list(slots)
    while queue or running:
        while queue and free:
            state = queue.pop(0)
            now = cell_state(state.cell, slots[0].processes)  # another runner may have run or taken it since
            if now.state not in (LEFT, FAILED):
                progress.move(state.state, now.state)
                continue
            slot = free.pop(0)
            running[slot.name] = (start_cell(state.cell, slot.environment, slot.processes, slot.threads), state, slot)
            progress.move(state.state, "running")
        time.sleep(poll_s)
        for name, (process, state, slot) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            free.append(slot)
            succeeded = finish_cell(state.cell, process.returncode, process.log)
            # A run that lost the folder to another runner's live run is not a failure of the cell.
            state.state = DONE if succeeded else cell_state(state.cell, slots[0].processes).state
            progress.move("running", state.state)
            if state.state == FAILED:
                report(f"  {state.cell.name} failed (exit {process.returncode}); see {state.cell.output_dir}/train.log")
    return dict(progress.counts)


# --- SLURM through submitit ---------------------------------------------------------------------------------------


@dataclass
class SlurmOptions:
    """Resources of each array task (one cell); the study file's `slurm:` mapping and command-line flags fill it."""

    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_task: int = 1
    cpus_per_task: int | None = None
    mem_gb: int | None = None
    array_parallelism: int = 64
    extra_sbatch: list[str] = field(default_factory=list)  # e.g. ["--qos=normal", "--account=lab"]
    setup: list[str] = field(default_factory=list)  # shell lines before the task, e.g. ["module load cuda"]

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SlurmOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(name) for name in set(values) - known)
        if unknown:
            raise ValueError(f"slurm: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """Each option of the right kind: whole numbers >= 1, a partition name, lists of text lines."""
        for name in ("time_min", "gpus_per_task", "array_parallelism", "cpus_per_task", "mem_gb"):
            value = getattr(self, name)
            if value is None and name in ("cpus_per_task", "mem_gb"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"slurm: {name} must be a whole number >= 1, got {value!r}")
        if self.partition is not None and not isinstance(self.partition, str):
            raise ValueError(f"slurm: partition must be a name, got {self.partition!r}")
        for name in ("extra_sbatch", "setup"):
            lines = getattr(self, name)
            if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
                raise ValueError(f"slurm: {name} must be a list of text lines, got {lines!r}")
        self.additional_parameters()  # every extra_sbatch line of the form --name=value

    def additional_parameters(self) -> dict[str, str]:
        """`extra_sbatch` lines ('--qos=normal') as submitit's `slurm_additional_parameters`."""
        parameters = {}
        for line in self.extra_sbatch:
            key, separator, value = line.removeprefix("--").partition("=")
            if not key or not separator:
                raise ValueError(f"slurm: extra_sbatch line {line!r} is not of the form --name=value")
            parameters[key.replace("-", "_")] = value
        return parameters


def run_slurm_task(cell: Cell, processes: int, threads: int | None) -> bool:
    """One array task: runs its cell (through `accelerate launch` when it uses several GPUs)."""
    return run_cell(cell, processes, threads)


def check_scheduler(cluster: str | None) -> None:
    """SLURM's commands must be here unless submitit runs the array on this machine (`local`, `debug`)."""
    if cluster is None and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        raise ValueError(
            "executor slurm: no `sbatch`/`srun` on this machine's PATH (no SLURM here); run `study run` on the "
            "cluster's login node, or pass --slurm-cluster local to run the array on this machine"
        )


def slurm_executor(study: Study, options: SlurmOptions, cluster: str | None = None):
    """A submitit executor for the study's array (`cluster`: None for SLURM, 'local' or 'debug' to run here)."""
    import submitit

    check_scheduler(cluster)
    folder = Path(study.output_dir) / "slurm" / "%j"
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster or "slurm")
    parameters = {
        "timeout_min": options.time_min,
        "gpus_per_node": options.gpus_per_task,
        "tasks_per_node": 1,
        "nodes": 1,
        "name": f"study-{study.name}",
        "slurm_array_parallelism": options.array_parallelism,
    }
    if options.cpus_per_task:
        parameters["cpus_per_task"] = options.cpus_per_task
    if options.mem_gb:
        parameters["mem_gb"] = options.mem_gb
    if options.partition:
        parameters["slurm_partition"] = options.partition
    if options.extra_sbatch:
        parameters["slurm_additional_parameters"] = options.additional_parameters()
    if options.setup:
        parameters["slurm_setup"] = list(options.setup)
    executor.update_parameters(**parameters)
    return executor


def submit_slurm(
    study: Study, options: SlurmOptions, cluster: str | None = None, report: Callable[[str], None] = print
) -> list:
    """Submits one array task per unfinished cell (finished ones are never resubmitted); returns the jobs."""
    states = study_states(study, options.gpus_per_task)
    unfinished = [state.cell for state in states if state.state in (LEFT, FAILED)]
    if not unfinished:
        report(f"all {len(states)} cells are finished; nothing to submit")
        return []
    executor = slurm_executor(study, options, cluster)
    threads = options.cpus_per_task // options.gpus_per_task if options.cpus_per_task else None
    jobs = executor.map_array(
        run_slurm_task, unfinished, [options.gpus_per_task] * len(unfinished), [threads] * len(unfinished)
    )
    report(
        f"submitted {len(jobs)} of {len(states)} cells as array job {jobs[0].job_id.split('_')[0]} "
        f"(logs in {Path(study.output_dir) / 'slurm'}); rerun `study run` to resubmit what is not finished"
    )
    if cluster in ("local", "debug"):  # submitit runs the array on this machine: wait for it, as a scheduler would
        succeeded = [job.result() for job in jobs]
        report(f"array finished here: {sum(succeeded)} of {len(jobs)} cells succeeded")
    return jobs
