"""The generated Xpresso-format study in its reduced form, from study file to Table 1 and Figure 1: a study killed
while a cell trains is finished by rerunning it (here through the SLURM path, submitit's debug executor), only the
missing cells run, finished cells stay byte for byte, and the report's statistics are scipy's on the cells' r2."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from expression_perceiver.cli import main as cli
from expression_perceiver.training.checkpoints import output_dir_in_use
from tests.processes import process_timeout
from tests.small_models import SMALL_OVERRIDES

REPOSITORY = Path(__file__).resolve().parents[2]


def reduced_study(tmp_path: Path, dataset: Path) -> Path:
    """The shipped synthetic study cut to 2 settings x 2 seeds (the figure's one size is the table's last half
    removed), a few steps per cell on 2,000-base windows: 4 cells, each its own process."""
    study = yaml.safe_load((REPOSITORY / "studies" / "synthetic_positional_masking.yaml").read_text())
    study["recipes"] = [str(REPOSITORY / recipe) for recipe in study["recipes"]]
    study.update(dataset_dir=str(dataset), output_dir=str(tmp_path / "study"), seeds=2)
    study["table"] = [study["table"][0], study["table"][-1]]  # none, last half removed
    study["figure"] = [{"strategy": "last", "mode": "drop", "mask_fraction": [0.5]}]
    study["overrides"] = {
        "config_overrides": SMALL_OVERRIDES + ",max_sequence_length=2000",
        "num_train_epochs": 1,
        "per_device_train_batch_size": 8,
        "use_cpu": True,
        "kmer_baseline": True,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def study_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "expression_perceiver.cli", "study", *arguments]


def kill_when_a_cell_is_done_and_another_runs(process: subprocess.Popen, cells: Path) -> None:
    # The study's process, two cells side by side and the next one: four starts; two cells' training and baseline.
    deadline = time.monotonic() + process_timeout(starts=4, work_s=60)
    while time.monotonic() < deadline:
        done = list(cells.glob("*/*/results.json"))
        started = [log for log in cells.glob("*/*/train.log") if not (log.parent / "results.json").exists()]
        if done and started:
            os.killpg(process.pid, signal.SIGKILL)  # the study and the cells it runs, as a lost node would
            process.wait()
            # The killed cells release their folders' locks as they finish exiting (a lost node's processes are
            # gone); a rerun sooner would take a folder still locked for another runner's.
            while any(output_dir_in_use(log.parent) for log in cells.glob("*/*/train.log")):
                assert time.monotonic() < deadline, "a killed cell still holds its folder"
                time.sleep(0.2)
            return
        assert process.poll() is None, "the study ended before it could be interrupted"
        time.sleep(0.5)
    raise AssertionError("no cell finished in time")


@pytest.mark.slow
def test_interrupted_study_finishes_on_rerun_and_reports_scipy_statistics(tmp_path, capsys):
    assert cli(["generate", "xpresso", str(tmp_path / "h5"), "--num", "60", "--seed", "0"]) == 0
    window = ["--window", "9000", "11000"]
    assert cli(["prepare", "xpresso", str(tmp_path / "h5"), *window, "-o", str(tmp_path / "data")]) == 0
    study_file = reduced_study(tmp_path, tmp_path / "data")
    output = tmp_path / "study"
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

    assert cli(["study", "plan", str(study_file)]) == 0
    planned = capsys.readouterr().out
    assert "4 cells" in planned and "4 left" in planned  # none, last 50% x 2 seeds

    first = subprocess.Popen(
        study_command("run", str(study_file), "--jobs", "2"),
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    kill_when_a_cell_is_done_and_another_runs(first, output / "cells")
    finished_before = {path: path.read_bytes() for path in (output / "cells").glob("*/*/results.json")}
    assert 1 <= len(finished_before) < 4

    # The rerun in this process (submitit's debug executor runs the jobs here; each cell is still its own process).
    assert cli(["study", "run", str(study_file), "--executor", "slurm", "--slurm-cluster", "debug"]) == 0
    rerun = capsys.readouterr().out
    assert f"submitted {4 - len(finished_before)} of 4 cells" in rerun  # only the missing cells
    assert f"{4 - len(finished_before)} of {4 - len(finished_before)} cells succeeded" in rerun
    for path, content in finished_before.items():
        assert path.read_bytes() == content  # finished cells unchanged
    assert len(list((output / "cells").glob("*/*/results.json"))) == 4

    assert cli(["study", "report", str(output)]) == 0
    summary = json.loads((output / "study.json").read_text())
    assert summary["cells"] == {"total": 4, "finished": 4, "missing": []}
    assert len(summary["source_revisions"]) == 1  # every cell ran this checkout's code
    r2 = {
        key: [json.loads((output / "cells" / key / f"seed{seed}" / "results.json").read_text())["test"]["r2"]
              for seed in (0, 1)]
        for key in ("none", "last-drop-f0.5")
    }  # fmt: skip
    none_row, last_row = summary["table"]
    assert none_row["r2"]["mean"] == pytest.approx(np.mean(r2["none"]))
    assert last_row["r2"]["std"] == pytest.approx(np.std(r2["last-drop-f0.5"], ddof=1))
    welch = stats.ttest_ind(r2["last-drop-f0.5"], r2["none"], equal_var=False)
    assert last_row["comparison"]["welch_p"] == pytest.approx(welch.pvalue, nan_ok=True)
    assert last_row["comparison"]["paired_n"] == 2
    assert none_row["ensemble"]["members"] == 2 and none_row["kmer_baseline"]["inputs"] == "k-mers + features"
    assert [point["size"] for point in summary["figure"][0]["points"]] == [0.5]
    table = (output / "table1.md").read_text()
    assert "4 of 4 cells finished" in table and "last half removed" in table and "ensemble of 2 seeds" in table
    assert "validation split" in table and "why stopped" in table and "All cells ran code revision" in table
    for name in ("figure1.png", "seeds.png"):
        assert (output / name).read_bytes()[:4] == b"\x89PNG"
    assert (output / "figure1.svg").read_text().lstrip().startswith("<?xml")
