"""A tiny end-to-end run of the Protein&DNAPerceiver on promoters joined with proteins: two outputs, two tokenizers."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from expression_perceiver.cli import main as cli
from expression_perceiver.data import generate_promoters, generate_proteins, load_dataset_dir
from expression_perceiver.data.synthetic import write_table
from expression_perceiver.training.metrics.expression_metrics import METRIC_NAMES
from expression_perceiver.training.run import main
from tests.processes import process_timeout

from .test_run import TINY

NUM_GENES = 120
NUM_FEATURES = 8


@pytest.fixture
def joined_dataset(tmp_path):
    """Synthetic promoters (1,000 bases, 8 features) joined with synthetic proteins: genes 0-4 have no protein, and
    the protein label is an abundance stored as log10."""
    promoters = generate_promoters(NUM_GENES, 1_000, seed=1)
    write_table(promoters, tmp_path / "promoters.tsv")
    proteins = generate_proteins(NUM_GENES + 3, seed=2)
    protein_table = tmp_path / "proteins.tsv"
    with open(protein_table, "w") as handle:
        handle.write("gene_id\tsequence\tabundance_ppm\n")
        for i in range(5, NUM_GENES + 3):  # the last three have no promoter
            handle.write(f"GENE{i:06d}\t{proteins.sequence[i]}\t{float(10 ** proteins.label[i])!r}\n")
    out = tmp_path / "data"
    argv = ["table", str(tmp_path / "promoters.tsv"), "--alphabet", "dna", "-o", str(out)]
    argv += [arg for i in range(NUM_FEATURES) for arg in ("--feature-column", f"feature_{i}")]
    argv += ["--protein-table", str(protein_table), "--protein-label-column", "abundance_ppm", "--protein-log10"]
    assert cli(["prepare", *argv]) == 0
    return out


@pytest.mark.slow
def test_protein_dna_perceiver_trains_on_joined_data_and_reloads(tmp_path, joined_dataset):
    splits, metadata = load_dataset_dir(joined_dataset)
    assert metadata.with_protein and metadata.label_names == ["label", "abundance_ppm"]
    assert sum(metadata.counts.values()) == NUM_GENES - 5
    run = tmp_path / "run"
    results = main(
        [
            "--model_type", "protein_dna_perceiver",
            "--config_overrides", f"{TINY},max_sequence_length=1000",
            "--dataset_dir", str(joined_dataset),
            "--output_dir", str(run),
            "--num_train_epochs", "2",
            "--per_device_train_batch_size", "16",
            "--learning_rate", "0.002",
            "--use_cpu", "true",
            "--disable_tqdm", "true",
        ]
    )  # fmt: skip

    # Metrics per output, named after the dataset's labels, with the mean over outputs under the plain names.
    saved = json.loads((run / "results.json").read_text())
    assert saved["data"]["with_protein"] is True and saved["data"]["label_names"] == ["label", "abundance_ppm"]
    for split in ("validation", "test"):
        metrics = saved[split]
        assert metrics["n"] == metadata.counts[split]
        for name in METRIC_NAMES:
            per_output = [metrics[f"{name}_label"], metrics[f"{name}_abundance_ppm"]]
            assert all(math.isfinite(value) for value in per_output)
            assert metrics[name] == pytest.approx(np.mean(per_output))
    assert 0.0 <= saved["test"]["r2_abundance_ppm"] <= 1.0
    assert results["test"]["mse_label"] == pytest.approx(saved["test"]["mse_label"])
    header = (run / "test_predictions.tsv").read_text().splitlines()[0].split("\t")
    assert header == [
        "gene_id", "observed_label", "predicted_label", "observed_abundance_ppm", "predicted_abundance_ppm"
    ]  # fmt: skip

    # Every saved folder carries the second tokenizer, and the model reloads through the Auto class.
    checkpoints = sorted(run.glob("checkpoint-*"))
    assert checkpoints
    for folder in [run, *checkpoints]:
        assert (folder / "protein_tokenizer" / "tokenizer_config.json").is_file(), folder
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    assert model.config.model_type == "protein_dna_perceiver" and model.config.num_labels == 2
    assert model.config.dna_config.num_features == NUM_FEATURES
    assert model.config.protein_config.max_sequence_length == 1_000
    assert len(model.config.label_mean) == 2
    tokenizer = AutoTokenizer.from_pretrained(run)
    protein_tokenizer = AutoTokenizer.from_pretrained(run / "protein_tokenizer")
    test = splits["test"][0]
    dna = tokenizer([test["sequence"]], return_tensors="pt")
    protein = protein_tokenizer([test["protein_sequence"]], return_tensors="pt")
    with torch.no_grad():
        logits = model(
            input_ids=dna["input_ids"],
            attention_mask=dna["attention_mask"],
            protein_input_ids=protein["input_ids"],
            protein_attention_mask=protein["attention_mask"],
            features=torch.tensor([test["features"]]),
        ).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.slow
def test_model_card_usage_snippet_runs_for_the_protein_dna_perceiver(tmp_path, joined_dataset):
    run = tmp_path / "run"
    main([
        "--model_type", "protein_dna_perceiver", "--dataset_dir", str(joined_dataset), "--output_dir", str(run),
        "--config_overrides", TINY + ",max_sequence_length=1000", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "16", "--use_cpu", "true", "--disable_tqdm", "true",
    ])  # fmt: skip
    card = (run / "README.md").read_text()
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    completed = subprocess.run(
        [sys.executable, "-c", snippet + "\nprint(prediction.shape)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=process_timeout(starts=1, work_s=10),
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().endswith("torch.Size([1, 2])")
