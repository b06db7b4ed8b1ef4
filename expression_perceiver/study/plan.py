"""`study plan` (the cells and their folders, nothing run; `--estimate` measures a few steps of one cell and
projects the study's cost on this machine) and `study run` (the unfinished cells, on the chosen executor)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cells import DONE, RESULTS_FILE, launch_command
from .executors import (
    SlurmOptions,
    check_scheduler,
    cpu_slots,
    gpu_slots,
    run_on_slots,
    study_states,
    submit_slurm,
)
from .spec import Study, bind_study_folder, save_study_copy


def plan_lines(study: Study) -> list[str]:
    """One line per cell: its name, state and folder; then the count per state."""
    states = study_states(study)
    width = max(len(state.cell.name) for state in states)
    sizes = sum(len(curve.maskings) for curve in study.figure)
    lines = [
        f"study {study.name}: {len(states)} cells ({len(study.table)} settings in Table 1, {sizes} mask sizes in "
        f"Figure 1, {len(study.seeds)} seeds)"
    ]
    for state in states:
        detail = f"  ({state.detail})" if state.detail else ""
        lines.append(f"  {state.cell.name:<{width}}  {state.state:<10}  {state.cell.output_dir}{detail}")
    counts = Counter(state.state for state in states)
    lines.append("  " + ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))
    return lines


def measure_cell(study: Study, steps: int, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs `steps` training steps of the study's first cell in a scratch folder and reads the time they took."""
    cell = study.cells()[0]
    with tempfile.TemporaryDirectory(prefix="study-estimate-") as scratch:
        probe = replace(
            cell,
            output_dir=scratch,
            argv=(
                *cell.argv,
                "--output_dir", scratch, "--max_steps", str(steps), "--resume_from_checkpoint", "false",
                "--kmer_baseline", "false", "--push_to_hub", "false", "--save_total_limit", "1",
            ),
        )  # fmt: skip
        report(f"measuring {steps} training steps of {cell.name} ...")
        completed = subprocess.run(launch_command(probe), capture_output=True, text=True)
        if completed.returncode != 0:
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:]
            raise ValueError(f"study plan --estimate: the probe run of {cell.name} failed: {' '.join(tail)}")
        return json.loads((Path(scratch) / RESULTS_FILE).read_text())


def estimate(study: Study, probe: dict[str, Any], slots: int = 1) -> dict[str, Any]:
    """The study's cost from a probe run: seconds per training step and per validation pass, steps per epoch from
    the train split and the global batch, epochs per cell from the finished cells (their median) or, with none
    finished, the recipe's num_train_epochs (an upper bound under early stopping)."""
    train = probe["train"]
    validation_seconds = float(probe["validation"].get("runtime", 0.0))
    step_seconds = max(train["training_seconds"] - validation_seconds, 0.0) / max(train["global_step"], 1)
    global_batch = probe["identity"]["training"]["global_train_batch_size"]
    steps_per_epoch = math.ceil(probe["data"]["counts"]["train"] / global_batch)
    epoch_seconds = steps_per_epoch * step_seconds + validation_seconds
    states = study_states(study)
    finished_epochs = [
        json.loads((Path(s.cell.output_dir) / RESULTS_FILE).read_text())["train"]["epoch"]
        for s in states
        if s.state == DONE
    ]
    if finished_epochs:
        epochs, basis = statistics.median(finished_epochs), f"median of {len(finished_epochs)} finished cells"
    else:
        epochs = probe["arguments"]["training"]["num_train_epochs"]
        basis = "num_train_epochs (an upper bound when early stopping ends cells sooner)"
    left = sum(1 for s in states if s.state != DONE)
    cell_seconds = epochs * epoch_seconds
    return {
        "device": probe.get("device"),
        "load_average": os.getloadavg()[0],  # other work on the machine slows the probe: the figures say so
        "seconds_per_step": step_seconds,
        "steps_per_epoch": steps_per_epoch,
        "seconds_per_validation": validation_seconds,
        "seconds_per_epoch": epoch_seconds,
        "epochs_per_cell": epochs,
        "epochs_basis": basis,
        "seconds_per_cell": cell_seconds,
        "cells_left": left,
        "slots": slots,
        "wall_seconds": math.ceil(left / slots) * cell_seconds,
        "device_seconds": left * cell_seconds,
    }


def estimate_lines(figures: dict[str, Any]) -> list[str]:
    hours = figures["wall_seconds"] / 3600
    return [
        f"on {figures['device']}, load average {figures['load_average']:.1f} while measuring: "
        f"{figures['seconds_per_step'] * 1000:.0f} ms per step (warm-up included), "
        f"{figures['steps_per_epoch']} steps + validation ({figures['seconds_per_validation']:.1f} s) = "
        f"{figures['seconds_per_epoch']:.1f} s per epoch",
        f"{figures['epochs_per_cell']:g} epochs per cell ({figures['epochs_basis']}): "
        f"{figures['seconds_per_cell'] / 60:.1f} min per cell",
        f"{figures['cells_left']} cells left on {figures['slots']} slot(s): about {hours:.1f} h of wall time, "
        f"{figures['device_seconds'] / 3600:.1f} device-hours",
    ]


def run_study(
    study: Study,
    executor: str = "local",
    jobs: int = 1,
    cells_per_gpu: int = 1,
    gpus_per_cell: int = 1,
    slurm: SlurmOptions | None = None,
    slurm_cluster: str | None = None,
    report: Callable[[str], None] = print,
    extend: bool = False,
) -> dict[str, int] | list:
    """Runs (or submits) every unfinished cell of the study and keeps a copy of the study file beside them. An
    executor that cannot run here, or a study other than the one the output folder holds (`spec.bind_study_folder`;
    `extend` lets one that only adds to it in), is refused before anything is written."""
    if executor not in ("local", "gpus", "slurm"):
        raise ValueError(f"--executor must be local, gpus or slurm, got {executor!r}")
    if executor == "local" and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    slots = (
        cpu_slots(jobs)
        if executor == "local"
        else gpu_slots(cells_per_gpu, gpus_per_cell)
        if executor == "gpus"
        else None
    )
    if executor == "slurm":
        check_scheduler(slurm_cluster)
        (slurm or SlurmOptions.from_mapping(study.slurm)).check()
    additions = bind_study_folder(study, extend)
    if additions:
        report(f"extending the study in {study.output_dir}: {'; '.join(additions)}")
    save_study_copy(study)
    if slots is not None:
        return run_on_slots(study, slots, report)
    return submit_slurm(study, slurm or SlurmOptions.from_mapping(study.slurm), slurm_cluster, report)
