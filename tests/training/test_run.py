import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from expression_perceiver.training.arguments import DataArguments
from expression_perceiver.training.run import main, synthetic_splits
from tests.small_models import SMALL_OVERRIDES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY = SMALL_OVERRIDES


def tiny_run_arguments(output_dir, *extra: str) -> list[str]:
    return [
        "--config_overrides", TINY,
        "--synthetic_num_genes", "160",
        "--synthetic_length", "1000",
        "--output_dir", str(output_dir),
        "--num_train_epochs", "2",
        "--per_device_train_batch_size", "16",
        "--learning_rate", "0.002",
        "--use_cpu", "true",
        "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_training_run_selects_on_validation_evaluates_test_once_and_saves_a_loadable_checkpoint(tmp_path):
    results = main(tiny_run_arguments(tmp_path / "run"))
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    assert saved["test"]["n"] == 16 and saved["validation"]["n"] == 16
    assert 0.0 <= saved["test"]["r2"] <= 1.0
    assert results["data"]["num_features"] == 8 and len(saved["data"]["fingerprint"]) == 64
    assert saved["versions"]["transformers"].startswith("5.") and saved["seed"] == 42
    assert saved["source_revision"] is None or len(saved["source_revision"].split()[0]) == 40
    # The test predictions are written in the data's units and give back the reported test metrics.
    rows = [line.split("\t") for line in (run / "test_predictions.tsv").read_text().splitlines()]
    assert rows[0] == ["gene_id", "observed_label", "predicted_label"] and len(rows) == 17
    observed, predicted = np.array([[float(v) for v in row[1:]] for row in rows[1:]]).T
    assert np.corrcoef(observed, predicted)[0, 1] ** 2 == pytest.approx(saved["test"]["r2"], abs=1e-4)
    assert (run / "test_scatter.png").read_bytes()[:4] == b"\x89PNG"
    card = ModelCard.load(run / "README.md")
    assert card.data.library_name == "transformers"
    test_r2 = next(m for m in card.data.eval_results if m.metric_type == "r2")
    assert test_r2.metric_value == pytest.approx(saved["test"]["r2"], abs=1e-4)

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert model.config.num_features == 8 and len(model.config.label_mean) == 1
    # The training split's feature means, for tools that fill a gene's missing features.
    splits, _ = synthetic_splits(DataArguments(synthetic_num_genes=160, synthetic_length=1000), str(tmp_path / "s"))
    train_means = np.asarray(splits["train"]["features"], dtype=np.float64).mean(axis=0)
    assert model.config.feature_mean == pytest.approx(train_means.tolist(), rel=1e-6)
    batch = tokenizer(["ACGT" * 250], return_tensors="pt")
    with torch.no_grad():
        assert torch.isfinite(model(**batch, features=torch.zeros(1, 8)).logits).all()


def test_bad_config_override_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="num_latent"):
        main(tiny_run_arguments(tmp_path / "run", "--config_overrides", "num_latent=8"))


@pytest.mark.slow
def test_recipe_file_is_parsed(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    arguments = tiny_run_arguments(tmp_path / "run")
    fields = {arguments[i][2:]: arguments[i + 1] for i in range(0, len(arguments), 2)}
    recipe.write_text(
        yaml.safe_dump(
            {name: value if name == "config_overrides" else yaml.safe_load(value) for name, value in fields.items()}
        )
    )
    results = main([str(recipe)])
    assert np.isfinite(results["test"]["mse"])


def test_recipes_compose_in_order_and_flags_override_them(tmp_path):
    from expression_perceiver.training.run import parse_arguments

    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"model_type": "dna_perceiver", "learning_rate": 0.001, "num_train_epochs": 7}))
    first = str(CONFIGS / "masking" / "first.yaml")
    model_args, data_args, masking_args, training_args, recipe = parse_arguments(
        [str(base), first, "--learning_rate", "0.003", "--output_dir", str(tmp_path)]
    )
    assert (masking_args.mask_strategy, masking_args.mask_length) == ("first", 10_000)
    assert training_args.learning_rate == 0.003 and training_args.num_train_epochs == 7
    assert recipe == f"{base} + {first}"


@pytest.mark.parametrize("recipe", sorted(p.name for p in CONFIGS.glob("*.yaml")))
@pytest.mark.parametrize("masking", sorted(p.name for p in (CONFIGS / "masking").glob("*.yaml")))
def test_every_recipe_parses_alone_and_with_every_masking_recipe(recipe, masking):
    from expression_perceiver.training.run import parse_arguments

    recipes = [str(CONFIGS / recipe), str(CONFIGS / "masking" / masking)]
    model_args, _, masking_args, _, _ = parse_arguments([*recipes, "--use_cpu", "true"])  # GPU recipes too
    assert model_args.model_type in ("dna_perceiver", "protein_perceiver", "protein_dna_perceiver")
    assert masking_args.mask_strategy == masking.removesuffix(".yaml")


@pytest.mark.slow
def test_tensorboard_on_request(tmp_path):
    main(tiny_run_arguments(tmp_path / "run", "--report_to", "tensorboard", "--num_train_epochs", "1"))
    events = list((tmp_path / "run").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.slow
def test_predictions_line_up_with_gene_ids_even_with_length_grouped_batches(tmp_path):
    from expression_perceiver.data import generate_promoters

    run = tmp_path / "run"
    main(tiny_run_arguments(run, "--train_sampling_strategy", "group_by_length", "--num_train_epochs", "1"))
    rows = [line.split("\t") for line in (run / "test_predictions.tsv").read_text().splitlines()[1:]]
    promoters = generate_promoters(160, 1_000, seed=0)
    position = {gene: i for i, gene in enumerate(promoters.gene_id)}
    model = AutoModelForSequenceClassification.from_pretrained(run).eval()
    tokenizer = AutoTokenizer.from_pretrained(run)
    for gene, observed, predicted in rows:
        i = position[gene]
        assert float(observed) == pytest.approx(promoters.label[i], rel=1e-6)
        with torch.no_grad():
            logits = model(**tokenizer([promoters.sequence[i]], return_tensors="pt"),
                           features=torch.tensor(promoters.features[i : i + 1])).logits  # fmt: skip
        expected = logits.item() * model.config.label_std[0] + model.config.label_mean[0]
        assert float(predicted) == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.slow
def test_a_bf16_recipe_runs_on_a_machine_without_a_gpu_and_reports(tmp_path):
    from expression_perceiver.training.run import parse_arguments

    # The Xpresso recipes ask for bf16 and name no device: without a GPU they train on the CPU, with a note.
    _, _, _, xpresso, _ = parse_arguments([str(CONFIGS / "xpresso_human_dna_perceiver.yaml")])
    assert xpresso.bf16 and (xpresso.use_cpu or torch.accelerator.is_available())
    arguments = tiny_run_arguments(tmp_path / "run")
    cpu = arguments.index("--use_cpu")
    del arguments[cpu : cpu + 2]
    results = main([*arguments, "--bf16", "true", "--num_train_epochs", "1"])
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["precision"] == "bf16 mixed precision" and saved["test"]["n"] == 16
    assert np.isfinite(results["test"]["r2"]) and (tmp_path / "run" / "test_predictions.tsv").is_file()
