"""A config's label standardisation (`label_mean`, `label_std`) turns every logit into a prediction, `logits *
label_std + label_mean`: values training could not have written are refused when the config is built or loaded,
in one error naming the field and the value."""

import json
import math

import pytest

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from expression_perceiver.modeling.configuration_expression_perceiver import ProteinDNAPerceiverConfig
from tests.small_models import SMALL_SIZES


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("label_std", [-0.5]),
        ("label_std", [0.0]),
        ("label_std", [math.inf]),
        ("label_std", [math.nan]),
        ("label_std", -2.0),
        ("label_mean", [math.nan]),
        ("label_mean", [-math.inf]),
        ("label_mean", ["1.5"]),
        ("label_mean", [True]),
        ("label_mean", [1.0, 2.0]),  # two values for one output
        ("label_std", []),
    ],
)
def test_impossible_label_scale_is_refused_naming_field_and_value(field, value):
    other = {"label_mean": [0.5], "label_std": [2.0]}
    other.pop(field)
    with pytest.raises(ValueError) as refusal:
        DNAPerceiverConfig(**SMALL_SIZES, **other, **{field: value})
    message = str(refusal.value)
    assert f"DNAPerceiverConfig.{field} must hold 1 finite values" in message
    assert f"got {value!r}" in message
    assert len(message.splitlines()) == 1


def test_two_outputs_need_two_values_and_the_protein_dna_config_checks_too():
    config = DNAPerceiverConfig(**SMALL_SIZES, num_labels=2, label_mean=[1.0, -3.0], label_std=[0.5, 4.0])
    assert config.label_std == [0.5, 4.0]
    with pytest.raises(ValueError, match=r"DNAPerceiverConfig.label_std must hold 2 finite values > 0 .*got \[0.5\]"):
        DNAPerceiverConfig(**SMALL_SIZES, num_labels=2, label_mean=[1.0, -3.0], label_std=[0.5])
    assert ProteinDNAPerceiverConfig(num_labels=2, label_mean=[0, 1], label_std=[1, 2]).label_mean == [0, 1]
    with pytest.raises(ValueError, match=r"ProteinDNAPerceiverConfig.label_std .*got \[1.0, 0.0\]"):
        ProteinDNAPerceiverConfig(num_labels=2, label_mean=[0.0, 1.0], label_std=[1.0, 0.0])


def test_a_bare_number_stands_for_one_value_and_none_for_no_scale():
    assert DNAPerceiverConfig(**SMALL_SIZES, label_mean=0.25, label_std=3).label_std == 3
    assert DNAPerceiverConfig(**SMALL_SIZES).label_std is None


def test_a_checkpoint_whose_label_std_was_edited_to_zero_does_not_load(tmp_path):
    config = DNAPerceiverConfig(**SMALL_SIZES, num_features=0, label_mean=[1.0], label_std=[2.0])
    DNAPerceiverForSequenceClassification(config).save_pretrained(tmp_path)
    loaded = DNAPerceiverForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.label_std == [2.0]
    written = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**written, "label_std": [0.0]}))
    with pytest.raises(ValueError, match=r"label_std must hold 1 finite values > 0 \(one per output\), got \[0.0\]"):
        DNAPerceiverForSequenceClassification.from_pretrained(tmp_path)
