"""A training run pushes to a Hub (our test server on 127.0.0.1, spoken to by the real `huggingface_hub` client),
and a fresh process with an empty cache, without our package, downloads the model and reproduces its test
predictions."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from expression_perceiver.data import generate_promoters
from tests.hub_server import HubTestServer, client_environment
from tests.processes import process_timeout
from tests.training.test_run import TINY

REPOSITORY = Path(__file__).resolve().parents[2]
NUM_GENES = 120

LOAD_AND_PREDICT = textwrap.dedent(
    """
    import json, sys
    sys.modules["expression_perceiver"] = None  # only the pushed files may be used
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    examples = json.load(open(sys.argv[1]))
    model = AutoModelForSequenceClassification.from_pretrained("org/tiny-dna", trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained("org/tiny-dna", trust_remote_code=True)
    batch = tokenizer(examples["sequence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch, features=torch.tensor(examples["features"])).logits
    predictions = logits * torch.tensor(model.config.label_std) + torch.tensor(model.config.label_mean)
    print(json.dumps({"predictions": predictions[:, 0].tolist(), "module": type(model).__module__}))
    """
)


@pytest.fixture(scope="module")
def hub():
    with HubTestServer() as server:
        yield server


@pytest.mark.slow
def test_trainer_run_pushes_and_a_fresh_process_reproduces_the_test_predictions(tmp_path, hub):
    output_dir = tmp_path / "run"
    environment = client_environment(hub, tmp_path / "hf_home_trainer")
    environment["PYTHONPATH"] = str(REPOSITORY)
    arguments = [
        "--config_overrides", TINY, "--synthetic_num_genes", str(NUM_GENES), "--output_dir", str(output_dir),
        "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--use_cpu", "true",
        "--disable_tqdm", "true", "--push_to_hub", "true", "--hub_model_id", "org/tiny-dna",
    ]  # fmt: skip
    training = subprocess.run(
        [sys.executable, str(REPOSITORY / "train.py"), *arguments],
        env=environment, cwd=tmp_path, capture_output=True, text=True,
        timeout=process_timeout(starts=1, work_s=30),  # two epochs, a push after each and the final one
    )  # fmt: skip
    assert training.returncode == 0, training.stderr[-4000:]

    pushed = hub.files("org/tiny-dna")
    parts = ("configuration", "modeling", "kernels", "tokenization", "pipeline")
    bundle = [f"{part}_expression_perceiver.py" for part in parts]
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
                 *bundle, "results.json", "test_predictions.tsv"]:  # fmt: skip
        assert name in pushed, f"{name} was not pushed"
    commits = hub.commits("org/tiny-dna")
    assert any("Training in progress" in commit.title for commit in commits)  # checkpoints during training
    assert commits[-1].title.startswith("Final model")
    assert all(request.status < 500 for request in hub.requests)

    card = ModelCard(pushed["README.md"].decode())
    results = json.loads(pushed["results.json"])
    r2 = next(result for result in card.data.eval_results if result.metric_type == "r2")
    assert r2.metric_value == pytest.approx(results["test"]["r2"], abs=1e-4)

    # The test split of the run: the generator is deterministic and the dataset records the gene ids.
    rows = [line.split("\t") for line in pushed["test_predictions.tsv"].decode().splitlines()[1:]]
    promoters = generate_promoters(NUM_GENES, 1_000, seed=0)
    position = {gene: i for i, gene in enumerate(promoters.gene_id)}
    test_rows = [position[row[0]] for row in rows]
    examples = {
        "sequence": [promoters.sequence[i] for i in test_rows],
        "features": promoters.features[test_rows].tolist(),
    }
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    fresh = client_environment(hub, tmp_path / "hf_home_empty")
    fresh["PYTHONPATH"] = ""
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(tmp_path / "examples.json")],
        env=fresh, cwd=tmp_path, capture_output=True, text=True, timeout=process_timeout(starts=1, work_s=10),
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert answer["module"].startswith("transformers_modules")
    expected = np.array([float(row[2]) for row in rows])
    np.testing.assert_allclose(answer["predictions"], expected, rtol=1e-6, atol=1e-6)
    assert os.listdir(tmp_path / "hf_home_empty")  # it really downloaded into the empty cache

    # The model card's own example runs as written against the pushed repository.
    snippet = card.content.split("```python\n", 1)[1].split("```", 1)[0]
    example = subprocess.run(
        [sys.executable, "-c", snippet + "\nprint(prediction.shape)"],
        env=fresh, cwd=tmp_path, capture_output=True, text=True, timeout=process_timeout(starts=1, work_s=10),
    )  # fmt: skip
    assert example.returncode == 0, example.stderr[-3000:]
    assert example.stdout.strip().endswith("torch.Size([1, 1])")
