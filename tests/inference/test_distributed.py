"""`accelerate launch` of `predict`, `variant-effect`, `embed`, `mutagenesis` and `attribute` on 2 CPU processes
(gloo): each process runs a share of the input and rank 0 writes one output, in input order, identical to the
single-process one."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from expression_perceiver.cli import main
from tests.inference.test_variants import write_vcf
from tests.inference.variant_helpers import CROP, write_genome_and_bed
from tests.processes import process_timeout

REPOSITORY = Path(__file__).resolve().parents[2]
NUM_RECORDS = 70  # chunks of 8 x 4 = 32 records: two rounds, the second with one chunk and one process idle

# Every command in the launched processes (one launch: each process start costs seconds of imports).
COMMANDS = textwrap.dedent(
    """
    import json, sys
    from expression_perceiver.cli import main

    for arguments in json.loads(sys.argv[1]):
        assert main(arguments) == 0, arguments
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_the_single_process_outputs(tmp_path, models):
    rng = np.random.default_rng(5)
    fasta = tmp_path / "promoters.fa"
    fasta.write_text(
        "".join(f">gene{i}\n{''.join(rng.choice(list('ACGT'), rng.integers(50, 300)))}\n" for i in range(NUM_RECORDS))
    )
    write_genome_and_bed(tmp_path)
    write_vcf(tmp_path / "variants.vcf")
    ensemble = ["-m", str(models["zscore"]), "-m", str(models["zscore"]), "--batch-size", "4", "--quiet"]
    genome = [
        "--genome",
        str(tmp_path / "genome.fa"),
        "--bed",
        str(tmp_path / "promoters.bed"),
        "--window",
        *map(str, CROP),
    ]

    def commands(suffix: str) -> list[list[str]]:
        return [
            ["predict", str(fasta), *ensemble, "-o", str(tmp_path / f"predictions_{suffix}.tsv")],
            ["variant-effect", "--vcf", str(tmp_path / "variants.vcf"), *genome, *ensemble,
             "-o", str(tmp_path / f"effects_{suffix}.tsv")],
            ["embed", str(fasta), "-m", str(models["zscore"]), "--batch-size", "3", "--quiet",
             "-o", str(tmp_path / f"embeddings_{suffix}.npy")],
            ["mutagenesis", "--gene", "gB", *genome, "--scan", "-12", "12", *ensemble, "--no-plot",
             "--tsv", str(tmp_path / f"scan_{suffix}.tsv"), "-o", str(tmp_path / f"scan_{suffix}.npz")],
            ["attribute", str(fasta), *ensemble, "--method", "integrated_gradients", "--steps", "4",
             "--num-references", "2", "-o", str(tmp_path / f"attributions_{suffix}.npz")],
        ]  # fmt: skip

    for arguments in commands("one"):
        assert main(arguments) == 0

    accelerate = Path(sys.executable).with_name("accelerate")
    (tmp_path / "commands.py").write_text(COMMANDS)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
         str(tmp_path / "commands.py"), json.dumps(commands("two"))],
        env=environment, cwd=tmp_path, capture_output=True, text=True,
        timeout=process_timeout(starts=3, work_s=45),  # the launcher and two ranks, each running every command
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    for name in ("predictions", "effects"):
        assert (tmp_path / f"{name}_two.tsv").read_text() == (tmp_path / f"{name}_one.tsv").read_text(), name
    assert len((tmp_path / "predictions_two.tsv").read_text().splitlines()) == NUM_RECORDS + 1
    record = json.loads((tmp_path / "predictions_two.tsv.json").read_text())
    assert record["processes"] == 2 and record["rows"] == NUM_RECORDS
    for name in ("embeddings.npy", "embeddings.ids.txt", "scan.npz", "scan.tsv"):
        stem, suffix = name.split(".", 1)
        one, two = tmp_path / f"{stem}_one.{suffix}", tmp_path / f"{stem}_two.{suffix}"
        assert one.read_bytes() == two.read_bytes(), name
    one, two = np.load(tmp_path / "attributions_one.npz"), np.load(tmp_path / "attributions_two.npz")
    assert sorted(one.files) == sorted(two.files)
    for name in one.files:  # the arrays, not the zip's bytes (which hold the members' times)
        assert np.array_equal(one[name], two[name]), name
    assert json.loads((tmp_path / "attributions_two.npz.json").read_text())["processes"] == 2
    embedded = json.loads((tmp_path / "embeddings_two.npy.json").read_text())
    assert embedded["processes"] == 2 and embedded["rows"] == NUM_RECORDS
    scanned = json.loads((tmp_path / "scan_two.npz.json").read_text())
    assert scanned["files"] == [str(tmp_path / "scan_two.npz"), str(tmp_path / "scan_two.tsv")]
    assert not list(tmp_path.glob(".*.partial"))  # nothing half-written beside the outputs (AtomicFile names)
