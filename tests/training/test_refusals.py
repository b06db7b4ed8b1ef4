"""Runs that would give a meaningless number are refused before training, with one line naming what is wrong, and
leave no output folder behind."""

import json
import shutil

import pytest

from expression_perceiver.cli import main as cli
from expression_perceiver.training.run import main
from tests.training.test_run import tiny_run_arguments


def test_a_protein_dataset_does_not_train_a_dna_model(tmp_path):
    assert cli(["generate", "proteins", str(tmp_path / "proteins.tsv"), "--num", "60"]) == 0
    assert cli(["prepare", "table", str(tmp_path / "proteins.tsv"), "--alphabet", "protein",
                "--label-column", "label", "-o", str(tmp_path / "data")]) == 0  # fmt: skip
    arguments = tiny_run_arguments(tmp_path / "run", "--dataset_dir", str(tmp_path / "data"))
    with pytest.raises(ValueError, match=r"sequences are protein .* but a dna_perceiver reads dna.*protein_perceiver"):
        main(arguments)
    with pytest.raises(ValueError, match=r"sequences are dna .* but a protein_perceiver reads protein"):
        main(tiny_run_arguments(tmp_path / "run", "--model_type", "protein_perceiver"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num_train_epochs", "-1"], "--num_train_epochs must be positive"),
        (["--num_train_epochs", "0"], "--num_train_epochs must be positive"),
        (["--mask_strategy", "first", "--mask_length", "100000"], "covers the whole of every training sequence"),
        (["--mask_strategy", "sideways"], "invalid choice"),
        (["--learning_rat", "0.1"], "unknown argument --learning_rat; did you mean --learning_rate?"),
    ],
)
def test_arguments_that_train_nothing_are_refused_in_one_line(tmp_path, capsys, flags, message):
    code = cli(["train", *tiny_run_arguments(tmp_path / "run", *flags)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in error[-1] and "Traceback" not in "\n".join(error)
    assert not (tmp_path / "run").exists()


@pytest.fixture
def checkpoint(tmp_path):
    """A saved tiny DNAPerceiver regression model."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from tests.small_models import SMALL_SIZES

    config = AutoConfig.for_model("dna_perceiver", num_labels=1, num_features=8, **SMALL_SIZES)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "checkpoint")
    return tmp_path / "checkpoint"


def truncate_weights(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def mismatch_shapes(folder):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "latent_dim": 32}))


def foreign_model_type(folder):
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (truncate_weights, "cannot load its weights"),
        (mismatch_shapes, "cannot load its weights"),
        (foreign_model_type, "a 'bert' checkpoint, not one of dna_perceiver"),
        (lambda folder: shutil.rmtree(folder), "no such checkpoint folder"),
    ],
)
def test_a_bad_checkpoint_to_fine_tune_is_named_in_one_line(tmp_path, capsys, checkpoint, spoil, message):
    spoil(checkpoint)
    code = cli(["train", *tiny_run_arguments(tmp_path / "run", "--model_name_or_path", str(checkpoint))])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and f"--model_name_or_path {checkpoint}" in error[-1] and message in error[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max_eval_samples", "-1"], "--max_eval_samples must be at least 1"),
        (["--synthetic_num_genes", "0"], "--synthetic_num_genes must be at least 10"),
    ],
)
def test_data_arguments_are_checked_at_parse_time(tmp_path, capsys, flags, message):
    assert cli(["train", *tiny_run_arguments(tmp_path / "run", *flags)]) == 2
    assert message in capsys.readouterr().err


def test_a_run_failing_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys):
    code = cli(["train", *tiny_run_arguments(tmp_path / "run", "--resume_from_checkpoint", str(tmp_path / "none"))])
    assert code == 2 and "no such checkpoint folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
