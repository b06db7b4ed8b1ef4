"""Checkpoints are checked before a model is built: config.json against the weights' shapes (the safetensors headers)
and against its family, one line naming the field, the tensor and both shapes; nothing in a checkpoint folder but
config.json, tokenizer files and safetensors weights is ever read, so planted code and pickles never run."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from expression_perceiver.cli import main
from expression_perceiver.inference import ModelLoadError, load_model
from expression_perceiver.training.arguments import ModelArguments
from expression_perceiver.training.trainer import load_checkpoint

LEGACY_PROTEIN_DNA = Path(__file__).parent.parent / "fixtures" / "protein_dna_head_model_prefix"


def tampered(source: Path, folder: Path, **fields) -> Path:
    """A copy of a checkpoint with config.json fields replaced (None removes one)."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    for name, value in fields.items():
        if value is None:
            config.pop(name, None)
        else:
            config[name] = value
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def refusal(folder: Path, base_model: bool = False) -> str:
    with pytest.raises(ModelLoadError) as raised:
        load_model(folder, base_model=base_model)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"model {folder}: ")
    return message.removeprefix(f"model {folder}: ")


MISMATCH = "cannot load its weights: config.json does not match model.safetensors: "


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"num_latents": 16},
            "num_latents is 16 in config.json, 8 in the weights: perceiver.latents is [8, 16] in the weights, "
            "[16, 16] by config.json",
        ),
        (
            {"max_sequence_length": 400},
            "max_sequence_length is 400 in config.json, 300 in the weights: perceiver.embedding.position_table is "
            "[300, 32] in the weights, [400, 32] by config.json",
        ),
        (
            {"latent_dim": 32},
            "latent_dim is 32 in config.json, 16 in the weights: perceiver.latents is [8, 16] in the weights, "
            "[8, 32] by config.json (and 27 more tensors)",
        ),
        (
            {"num_features": 5, "feature_mean": None},
            "num_features: perceiver.layers.0.cross_attention.latent_norm.weight is [19] in the weights, [21] by "
            "config.json (and 27 more tensors)",
        ),
        (
            {"num_layers": 2},
            "num_layers: missing from the weights: perceiver.layers.1.cross_attention.latent_norm.weight, "
            "perceiver.layers.1.cross_attention.latent_norm.bias, perceiver.layers.1.cross_attention.sequence_norm."
            "weight and 23 more",
        ),
        (
            {"position_encoding": "fixed"},
            "position_encoding: in the weights but not in the model config.json builds: "
            "perceiver.embedding.position_table",
        ),
        (
            {"id2label": {"0": "mRNA"}, "label2id": {"mRNA": 0}, "label_mean": [1.0], "label_std": [1.0]},
            "num_labels is 1 in config.json, 2 in the weights: head.out.weight is [2, 16] in the weights, [1, 16] by "
            "config.json (and 1 more tensor)",
        ),
    ],
)
def test_a_config_that_no_longer_fits_the_weights_names_field_tensor_and_shapes(tmp_path, models, fields, expected):
    """transformers said only "look at the above report!", and printed no report."""
    from expression_perceiver.modeling.checkpoints import read_checkpoint

    folder = tampered(models["dna"], tmp_path / "tampered", **fields)
    assert refusal(folder) == MISMATCH + expected
    with pytest.raises(ValueError, match=r"^cannot load its weights: config.json does not match"):
        read_checkpoint(folder, head_optional=True)


def test_more_tensors_in_the_weights_than_the_config_builds_are_named(tmp_path, models):
    from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
    from tests.small_models import SMALL_SIZES

    DNAPerceiverForSequenceClassification(DNAPerceiverConfig(num_layers=2, **SMALL_SIZES)).save_pretrained(
        tmp_path / "two"
    )
    folder = tampered(tmp_path / "two", tmp_path / "tampered", num_layers=1)
    assert refusal(folder).startswith(
        MISMATCH + "num_layers: in the weights but not in the model config.json builds: perceiver.layers.1."
    )


def test_dna_weights_relabelled_as_another_family_are_refused(tmp_path, models):
    """A DNA checkpoint whose model_type says protein_perceiver used to load (every size is in config.json, so the
    protein class built the same shapes), read its sequences with the checkpoint's DNA tokenizer under the protein
    alphabet check, and predicted as before: an amino acid other than A C G T N read as [UNK]."""
    folder = tampered(models["zscore"], tmp_path / "relabelled", model_type="protein_perceiver")
    assert refusal(folder) == (
        "config.json says model_type 'protein_perceiver' but architectures DNAPerceiverForSequenceClassification, a "
        "dna_perceiver class: the model_type does not match the weights"
    )
    bare = tampered(folder, tmp_path / "bare", architectures=None)
    assert refusal(bare) == (
        "config.json vocab_size is 10, but a protein_perceiver reads 30 token ids (AminoAcidTokenizer): the "
        "model_type does not match the weights"
    )
    joint = tampered(models["zscore"], tmp_path / "joint", model_type="protein_dna_perceiver")
    assert "architectures DNAPerceiverForSequenceClassification, a dna_perceiver class" in refusal(joint)


def test_a_tokenizer_of_another_family_is_refused(tmp_path, models):
    folder = tmp_path / "protein"
    shutil.copytree(models["protein"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(models["zscore"] / name, folder / name)
    assert refusal(folder) == (
        "its tokenizer (NucleotideTokenizer) does not read the vocabulary of a protein_perceiver (AminoAcidTokenizer)"
    )


def plant(folder: Path, file_name: str, marker: Path, rest: str = "") -> None:
    (folder / file_name).write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n{rest}")


def test_planted_code_in_a_checkpoint_never_runs(tmp_path, models, monkeypatch):
    """An unknown model_type with an `auto_map` made transformers ask on stdin whether to run the folder's code, and
    fine-tuning it with --trust_remote_code ran that code before refusing the model type. Neither happens: the
    folder's model_type is read as data, and this package's own classes load it."""
    marker = tmp_path / "ran"
    monkeypatch.setattr("sys.stdin", None)  # a prompt would fail here rather than wait
    foreign = tampered(models["zscore"], tmp_path / "foreign", model_type="foo")
    plant(foreign, "configuration_expression_perceiver.py", marker)
    assert refusal(foreign) == (
        "a 'foo' checkpoint, not one of dna_perceiver, protein_perceiver, protein_dna_perceiver (config.json "
        "model_type)"
    )
    with pytest.raises(ValueError, match="a 'foo' checkpoint"):  # it used to run the folder's code, then refuse
        load_checkpoint(ModelArguments(model_name_or_path=str(foreign), trust_remote_code=True), num_labels=1)
    assert not marker.exists()
    ours = tmp_path / "ours"
    shutil.copytree(models["zscore"], ours)
    rest = "from expression_perceiver.modeling.configuration_expression_perceiver import *  # noqa\n"
    plant(ours, "configuration_expression_perceiver.py", marker, rest)
    rest = "from expression_perceiver.modeling.modeling_expression_perceiver import *  # noqa\n"
    plant(ours, "modeling_expression_perceiver.py", marker, rest)
    assert load_model(ours).config.model_type == "dna_perceiver"
    model = load_checkpoint(ModelArguments(model_name_or_path=str(ours), trust_remote_code=True), num_labels=1)
    assert type(model).__module__ == "expression_perceiver.modeling.modeling_expression_perceiver"
    assert not marker.exists()


class Planted:
    """Unpickled, it writes `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('ran')",)


def test_pickle_weights_are_refused_unread(tmp_path, models):
    marker = tmp_path / "ran"
    folder = tmp_path / "pickled"
    shutil.copytree(models["zscore"], folder)
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"perceiver.latents": Planted(marker)}, handle)
    assert refusal(folder) == (
        "cannot load its weights: it holds PyTorch pickle weights only (pytorch_model.bin); this package reads "
        "safetensors weights (model.safetensors), never a pickle"
    )
    with pytest.raises(ValueError, match="never a pickle"):
        load_checkpoint(ModelArguments(model_name_or_path=str(folder)), num_labels=1)
    assert not marker.exists()


def test_cut_or_foreign_weights_are_one_line(tmp_path, models):
    folder = tmp_path / "cut"
    shutil.copytree(models["zscore"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert refusal(folder).startswith(
        "cannot load its weights: model.safetensors is not readable safetensors (Error while deserializing header: "
        "incomplete metadata, file not fully covered)"
    )
    weights.write_bytes(b"not safetensors at all" * 4)
    assert refusal(folder).startswith("cannot load its weights: model.safetensors is not readable safetensors")


def test_a_base_models_checkpoint_embeds_and_fine_tunes_but_does_not_predict(tmp_path, models, caplog):
    folder = tmp_path / "base"
    AutoModel.from_pretrained(models["zscore"]).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(models["zscore"] / name, folder / name)
    assert refusal(folder) == (
        MISMATCH + "missing from the weights: head.out.weight, head.out.bias (a base model's checkpoint, without "
        "the regression head)"
    )
    embedder = load_model(folder, base_model=True)
    reference = load_model(models["zscore"], base_model=True)
    for name, value in reference.model.state_dict().items():
        assert torch.equal(embedder.model.state_dict()[name], value), name
    model = load_checkpoint(ModelArguments(model_name_or_path=str(folder)), num_labels=1)
    assert "a new head is trained" in caplog.text and model.head.out.weight.shape == (1, 16)


def test_fine_tuning_refuses_a_config_that_does_not_fit_and_outputs_the_data_lacks(tmp_path, models):
    folder = tampered(models["dna"], tmp_path / "tampered", num_latents=16)
    with pytest.raises(ValueError) as raised:
        load_checkpoint(ModelArguments(model_name_or_path=str(folder)), num_labels=2)
    assert str(raised.value) == (
        f"--model_name_or_path {folder}: {MISMATCH}num_latents is 16 in config.json, 8 in the weights: "
        "perceiver.latents is [8, 16] in the weights, [16, 16] by config.json"
    )
    with pytest.raises(ValueError) as raised:
        load_checkpoint(ModelArguments(model_name_or_path=str(models["dna"])), num_labels=1)
    assert str(raised.value) == (
        f"--model_name_or_path {models['dna']}: the checkpoint predicts 2 output(s), the data has 1 label(s): "
        "fine-tune a checkpoint with as many outputs"
    )
    model = load_checkpoint(
        ModelArguments(model_name_or_path=str(models["dna"])), num_labels=2, label_mean=[0.0, 1.0], label_std=[1, 2]
    )
    assert model.config.label_std == [1, 2]
    assert torch.equal(model.perceiver.latents, load_model(models["dna"]).model.perceiver.latents)


def test_protein_dna_checkpoints_of_the_earlier_head_layout_pass_the_check():
    loaded = load_model(LEGACY_PROTEIN_DNA)
    assert type(loaded.model).__name__ == "ProteinDNAPerceiverForSequenceClassification"
    assert type(load_model(LEGACY_PROTEIN_DNA, base_model=True).model).__name__ == "ProteinDNAPerceiverModel"


def test_the_command_line_refuses_a_tampered_checkpoint_in_one_line(tmp_path, models, capsys):
    folder = tampered(models["zscore"], tmp_path / "tampered", num_latents=16)
    (tmp_path / "in.fa").write_text(">a\nACGT\n")
    output = tmp_path / "o.tsv"
    assert main(["predict", str(tmp_path / "in.fa"), "-m", str(folder), "-o", str(output)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and "above report" not in error
    assert "num_latents is 16 in config.json, 8 in the weights" in error
    assert not output.exists()


def test_a_config_json_that_cannot_describe_a_model_is_one_line(tmp_path, models):
    listed = tampered(models["dna"], tmp_path / "listed", model_type=["dna_perceiver"])
    assert refusal(listed).startswith("a ['dna_perceiver'] checkpoint, not one of dna_perceiver")
    flat = tampered(models["dna"], tmp_path / "flat", label_std=[0.0, 1.0])
    assert refusal(flat).startswith("cannot read its config.json (ValueError: DNAPerceiverConfig.label_std must hold")
    broken = tampered(models["dna"], tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    assert refusal(broken).startswith("cannot read its config.json (JSONDecodeError: ")
