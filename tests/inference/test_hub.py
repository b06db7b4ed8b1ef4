"""A Hub model with a revision, fetched from the Hub test server by the real client, then used offline from the
cache: the predictions are the revision's, and the record names the commit it resolved to."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest

from expression_perceiver.cli import main
from tests.hub_server import HubTestServer, client_environment
from tests.inference.helpers import DNA_WINDOW, direct_predictions, random_dna, save_dna_model, tsv_column
from tests.processes import process_timeout

REPOSITORY = Path(__file__).resolve().parents[2]
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
RNG = np.random.default_rng(3)
SEQUENCES = [random_dna(RNG, length) for length in (150, 320)]

PREDICT_ONLINE = textwrap.dedent(
    """
    import sys
    from expression_perceiver.cli import main

    fasta, first, folder = sys.argv[1:]
    assert main(["predict", fasta, "-m", f"org/tiny@{first}", "-o", f"{folder}/first.tsv", "--quiet"]) == 0
    assert main(["predict", fasta, "-m", "org/tiny", "-o", f"{folder}/main.tsv", "--quiet"]) == 0
    """
)


@pytest.mark.slow
def test_a_hub_revision_online_then_offline_from_the_cache(tmp_path, models, monkeypatch, capsys):
    first, second = (
        models["zscore"],
        save_dna_model(tmp_path / "second", 9, num_features=0, label_scale=False, num_labels=1),
    )
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{index}\n{sequence}\n" for index, sequence in enumerate(SEQUENCES)))
    hf_home = tmp_path / "hf_home"
    with HubTestServer() as hub:
        hub.create_repo("org/tiny")
        first_commit = hub.commit_files("org/tiny", {name: (first / name).read_bytes() for name in FILES})
        second_commit = hub.commit_files("org/tiny", {name: (second / name).read_bytes() for name in FILES})
        environment = {**client_environment(hub, hf_home), "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1"}
        completed = subprocess.run(
            [sys.executable, "-c", PREDICT_ONLINE, str(fasta), first_commit, str(tmp_path)],
            env=environment, capture_output=True, text=True, timeout=process_timeout(starts=1, work_s=10),
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]

    cropped = [sequence[:DNA_WINDOW] for sequence in SEQUENCES]
    expected = {"first": direct_predictions(first, cropped)[:, 0], "main": direct_predictions(second, cropped)[:, 0]}
    commits = {"first": first_commit, "main": second_commit}
    for name in ("first", "main"):
        np.testing.assert_allclose(
            tsv_column(tmp_path / f"{name}.tsv", "predicted_output_zscore"), expected[name], atol=2e-6
        )
        model = json.loads((tmp_path / f"{name}.tsv.json").read_text())["models"][0]
        assert model["repo_id"] == "org/tiny" and model["commit"] == commits[name]
        assert model["revision"] == (first_commit if name == "first" else "main")

    # The server is gone: offline, both come from the cache, the same numbers and commits.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name, spec in (("first", f"org/tiny@{first_commit}"), ("main", "org/tiny")):
        output = tmp_path / f"offline_{name}.tsv"
        assert main(["predict", str(fasta), "-m", spec, "-o", str(output), "--quiet"]) == 0
        np.testing.assert_allclose(tsv_column(output, "predicted_output_zscore"), expected[name], atol=2e-6)
        assert json.loads(output.with_name(output.name + ".json").read_text())["models"][0]["commit"] == commits[name]

    capsys.readouterr()
    assert main(["predict", str(fasta), "-m", "org/tiny@v9", "-o", str(tmp_path / "x.tsv")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("expression-perceiver predict: error: model org/tiny@v9: cannot be fetched from the Hub ")
    assert "(offline: HF_HUB_OFFLINE is set and the model is not in the cache)" in error and "\n" not in error
