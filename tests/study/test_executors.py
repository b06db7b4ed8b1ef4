"""Executors: the SLURM array as submitted (through a stand-in `sbatch`, no scheduler here), one worker per GPU,
and a local run where one cell fails and the study goes on."""

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from submitit.core.utils import DelayedSubmission

from expression_perceiver.study.cells import (
    DONE,
    FAILED,
    FAILURE_FILE,
    RESULTS_FILE,
    RUNNING,
    cell_identity,
    launch_command,
)
from expression_perceiver.study.executors import SlurmOptions, cpu_slots, gpu_slots, run_on_slots, submit_slurm
from expression_perceiver.study.spec import load_study
from expression_perceiver.training.checkpoints import lock_output_dir
from tests.small_models import SMALL_OVERRIDES


def write_study(tmp_path: Path, table: list[dict], seeds, figure=()) -> Path:
    study = {
        "name": "grid",
        "output_dir": str(tmp_path / "study"),
        "seeds": seeds,
        "overrides": {
            "config_overrides": SMALL_OVERRIDES,
            "synthetic_num_genes": 80,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 16,
            "use_cpu": True,
            "disable_tqdm": True,
        },
        "table": table,
        "figure": list(figure),
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def mark_finished(cell) -> None:
    """A finished cell as the report and the executors see it: results.json carrying the cell's own arguments."""
    Path(cell.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(cell.output_dir) / RESULTS_FILE).write_text(json.dumps({"identity": cell_identity(cell)}))


@pytest.fixture
def sbatch(tmp_path, monkeypatch) -> Path:
    """An `sbatch` that keeps what it is given and answers as SLURM does (a stand-in for the scheduler)."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    script = tmp_path / "bin" / "sbatch"
    script.parent.mkdir()
    script.write_text(
        f'#!/bin/sh\ncp "$1" {submissions}/$(ls {submissions} | wc -l).sh\necho "Submitted batch job 4242"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    srun = script.parent / "srun"  # submitit looks for it to know it is on a cluster; the tasks never run here
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return submissions


def submitted_cells(study_dir: Path) -> list:
    pickles = sorted((study_dir / "slurm").rglob("*_submitted.pkl"))
    return [DelayedSubmission.load(path).args[0] for path in pickles]


def test_slurm_array_has_one_task_per_unfinished_cell_and_resubmits_only_those(tmp_path, sbatch):
    table = [{"name": "none"}, {"name": "first", "strategy": "first", "mode": "drop", "mask_length": 100}]
    study = load_study(write_study(tmp_path, table, seeds=3))
    cells = study.cells()
    mark_finished(cells[0])
    mark_finished(cells[4])
    options = SlurmOptions(
        partition="gpu", time_min=90, gpus_per_task=2, cpus_per_task=8, extra_sbatch=["--qos=low"],
        setup=["module load cuda"],
    )  # fmt: skip
    jobs = submit_slurm(study, options, report=lambda line: None)
    assert [job.job_id for job in jobs] == [f"4242_{i}" for i in range(4)]
    script = (sbatch / "0.sh").read_text()
    for line in ("#SBATCH --array=0-3%4", "#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --qos=low",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=8", "module load cuda"):  # fmt: skip
        assert line in script, line
    unfinished = [cells[i] for i in (1, 2, 3, 5)]
    assert sorted(c.name for c in submitted_cells(Path(study.output_dir))) == sorted(c.name for c in unfinished)
    # A task runs its cell over its GPUs through accelerate launch, quietly (a refusal is its log's error line).
    command = launch_command(unfinished[0], processes=2, threads=4)
    assert command[1:8] == ["-m", "accelerate.commands.launch", "-q", "--multi_gpu", "--num_processes", "2",
                            "--num_cpu_threads_per_process"]  # fmt: skip

    for cell in unfinished[:3]:
        mark_finished(cell)
    submit_slurm(study, options, report=lambda line: None)
    assert (
        "#SBATCH --array=0-0%64" in (sbatch / "1.sh").read_text()
        or "#SBATCH --array" not in (sbatch / "1.sh").read_text()
    )  # one cell left: submitit submits it as a single job
    assert len(list(sbatch.iterdir())) == 2


def test_slurm_without_a_scheduler_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    study = load_study(write_study(tmp_path, [{"name": "none"}], seeds=1))
    with pytest.raises(ValueError, match="no `sbatch`/`srun`"):
        submit_slurm(study, SlurmOptions(), report=lambda line: None)


def test_gpu_workers_one_per_gpu_or_group_with_several_cells_each():
    slots = gpu_slots(cells_per_gpu=2, gpus=["0", "1", "2"])
    assert [s.environment["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "0", "1", "1", "2", "2"]
    pairs = gpu_slots(gpus_per_cell=2, gpus=["0", "1", "2", "3", "4"])
    assert [(s.environment["CUDA_VISIBLE_DEVICES"], s.processes) for s in pairs] == [("0,1", 2), ("2,3", 2)]
    with pytest.raises(ValueError, match="no GPU is visible"):
        gpu_slots(gpus=[])


@pytest.mark.slow
def test_a_failing_cell_is_recorded_and_the_study_goes_on(tmp_path):
    # 1,000-base promoters with their first 5,000 bases removed: nothing left to read, the run must fail.
    table = [{"name": "none"}, {"name": "all removed", "strategy": "first", "mode": "drop", "mask_length": 5000}]
    study = load_study(write_study(tmp_path, table, seeds=[0]))
    lines = []
    counts = run_on_slots(study, cpu_slots(2), report=lines.append, poll_s=0.2)
    assert counts[DONE] == 1 and counts[FAILED] == 1
    assert "cells: 1 done, 0 running, 1 failed, 0 left (of 2)" in lines
    failure = json.loads((Path(study.cells()[1].output_dir) / FAILURE_FILE).read_text())
    assert failure["returncode"] != 0 and "covers the whole of every training sequence" in failure["error"]
    assert (Path(study.cells()[0].output_dir) / RESULTS_FILE).is_file()


@pytest.mark.slow
def test_a_cell_another_runner_finished_or_holds_meanwhile_is_not_started_again(tmp_path):
    """A runner's list of cells is from its start; each cell is checked again just before it starts, so two runners
    of one study never run a cell twice (the second one here appears while the first cell trains)."""
    study = load_study(write_study(tmp_path, [{"name": "none"}], seeds=[0, 1, 2]))
    first, second, third = study.cells()
    held = []

    def report(line: str) -> None:
        if line.startswith("cells: 0 done, 1 running") and not held:  # the first cell has started
            mark_finished(second)  # another runner finished it
            held.append(lock_output_dir(third.output_dir))  # another runner's live run holds it

    counts = run_on_slots(study, cpu_slots(1), report=report, poll_s=0.2)
    assert {state: count for state, count in counts.items() if count} == {DONE: 2, RUNNING: 1}
    assert (Path(first.output_dir) / RESULTS_FILE).is_file()
    for cell in (second, third):  # never started here: no log, no failure record
        assert not (Path(cell.output_dir) / "train.log").exists()
        assert not (Path(cell.output_dir) / FAILURE_FILE).exists()
