"""The Trainer subclass reading weights back from checkpoints: exactly, or not at all."""

from pathlib import Path

import pytest
import safetensors.torch
import torch
from transformers import AutoModelForSequenceClassification, TrainingArguments

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from expression_perceiver.training.trainer import ExpressionTrainer
from tests.small_models import SMALL_SIZES

LEGACY_PROTEIN_DNA = Path(__file__).parent.parent / "fixtures" / "protein_dna_head_model_prefix"


def trainer_for(model, tmp_path) -> ExpressionTrainer:
    return ExpressionTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[]))


def test_resuming_from_a_checkpoint_of_the_earlier_protein_dna_layout_fills_every_weight(tmp_path):
    """The checkpoint holds its encoders under `model.`; the Trainer's own loading (resume, best checkpoint) renames
    them, so the model ends with the checkpoint's weights, not its initial ones."""
    saved = safetensors.torch.load_file(str(LEGACY_PROTEIN_DNA / "model.safetensors"))
    assert any(key.startswith("model.") for key in saved)
    model = AutoModelForSequenceClassification.from_config(
        AutoModelForSequenceClassification.from_pretrained(LEGACY_PROTEIN_DNA).config
    )
    trainer_for(model, tmp_path)._load_from_checkpoint(str(LEGACY_PROTEIN_DNA))
    weights = model.state_dict()
    for key, value in saved.items():
        assert torch.equal(weights[key.removeprefix("model.")], value), key


def test_a_checkpoint_that_does_not_fill_the_model_is_refused(tmp_path):
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**SMALL_SIZES))
    partial = {key: value for key, value in model.state_dict().items() if not key.startswith("head.")}
    safetensors.torch.save_file(partial, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"2 weights missing \(e.g. \['head.out.weight', 'head.out.bias'\]\)"):
        trainer_for(model, tmp_path / "run")._load_from_checkpoint(str(tmp_path))
