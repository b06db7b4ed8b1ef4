"""`accelerate launch -m expression_perceiver.cli predict` on 2 CPU processes (gloo): each process runs a share of the
input and rank 0 writes one output, in input order, identical to the single-process one."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from expression_perceiver.cli import main

REPOSITORY = Path(__file__).resolve().parents[2]
NUM_RECORDS = 70  # chunks of 8 x 4 = 32 records: two rounds, the second with one chunk and one process idle


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_write_the_single_process_predictions(tmp_path, models):
    rng = np.random.default_rng(5)
    fasta = tmp_path / "promoters.fa"
    fasta.write_text(
        "".join(f">gene{i}\n{''.join(rng.choice(list('ACGT'), rng.integers(50, 300)))}\n" for i in range(NUM_RECORDS))
    )
    common = [str(fasta), "-m", str(models["zscore"]), "-m", str(models["zscore"]), "--batch-size", "4", "--quiet"]
    assert main(["predict", *common, "-o", str(tmp_path / "one.tsv")]) == 0

    accelerate = Path(sys.executable).with_name("accelerate")
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "expression_perceiver.cli", "predict", *common, "-o", str(tmp_path / "two.tsv")],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert (tmp_path / "two.tsv").read_text() == (tmp_path / "one.tsv").read_text()
    assert len((tmp_path / "two.tsv").read_text().splitlines()) == NUM_RECORDS + 1
    record = json.loads((tmp_path / "two.tsv.json").read_text())
    assert record["processes"] == 2 and record["rows"] == NUM_RECORDS
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written beside the output
