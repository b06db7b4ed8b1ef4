import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from expression_perceiver import (
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    DNAPerceiverModel,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinDNAPerceiverModel,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
    ProteinPerceiverModel,
)
from expression_perceiver.modeling.modeling_expression_perceiver import sinusoidal_table
from tests.small_models import SMALL_SIZES

# Small but complete: every building block (conv branch, features, several blocks) is exercised.
SMALL = {**SMALL_SIZES, "num_layers": 2, "num_self_attention_blocks": 2, "max_sequence_length": 3_000}


def small_dna_config(**kwargs) -> DNAPerceiverConfig:
    return DNAPerceiverConfig(**{**SMALL, "num_features": 8, **kwargs})


def small_protein_config(**kwargs) -> ProteinPerceiverConfig:
    return ProteinPerceiverConfig(**{**SMALL, "max_sequence_length": 1_000, **kwargs})


def random_batch(vocab_low: int, vocab_high: int, lengths: list[int], seed: int = 0):
    """Right-padded random token ids with their attention mask."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    input_ids = torch.randint(vocab_low, vocab_high, (len(lengths), width), generator=generator)
    attention_mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return input_ids.masked_fill(~attention_mask, 0), attention_mask.long()


def test_auto_classes_build_each_family_with_the_authors_defaults():
    for model_type, config_class, head_class in [
        ("dna_perceiver", DNAPerceiverConfig, DNAPerceiverForSequenceClassification),
        ("protein_perceiver", ProteinPerceiverConfig, ProteinPerceiverForSequenceClassification),
        ("protein_dna_perceiver", ProteinDNAPerceiverConfig, ProteinDNAPerceiverForSequenceClassification),
    ]:
        config = AutoConfig.for_model(model_type)
        assert type(config) is config_class
        assert config.num_labels == 1 and config.problem_type == "regression"
        assert type(AutoModelForSequenceClassification.from_config(config)) is head_class
    dna = DNAPerceiverConfig()
    assert (dna.num_latents, dna.latent_dim, dna.embedding_dim) == (128, 128, 32)
    assert (dna.cross_attention_heads, dna.self_attention_heads, dna.dropout) == (1, 8, 0.2)
    assert dna.max_sequence_length == 20_000 and ProteinPerceiverConfig().max_sequence_length == 6_000


@pytest.mark.parametrize(
    "field, value", [("num_latents", 0), ("dropout", 1.5), ("position_encoding", "rotary"), ("num_features", -1)]
)
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DNAPerceiverConfig(**{field: value})


def test_regression_output_and_mse_loss():
    model = DNAPerceiverForSequenceClassification(small_dna_config(num_labels=2)).eval()
    input_ids, attention_mask = random_batch(5, 10, [300, 200, 50])
    features, labels = torch.randn(3, 8), torch.randn(3, 2)
    output = model(input_ids=input_ids, attention_mask=attention_mask, features=features, labels=labels)
    assert output.logits.shape == (3, 2)
    assert torch.allclose(output.loss, ((output.logits - labels) ** 2).mean())


def test_base_models_return_latents_and_pooled_vector():
    dna = DNAPerceiverModel(small_dna_config()).eval()
    input_ids, attention_mask = random_batch(5, 10, [120, 80])
    output = dna(input_ids=input_ids, attention_mask=attention_mask, features=torch.randn(2, 8))
    assert output.last_hidden_state.shape == (2, 8, 16 + 8)  # latents with the features appended
    assert output.pooler_output.shape == (2, 16)  # latent summary + branch vector
    protein = ProteinPerceiverModel(small_protein_config(use_conv_branch=False)).eval()
    output = protein(input_ids=random_batch(5, 25, [60])[0])
    assert output.pooler_output.shape == (1, 8)


@pytest.mark.parametrize("family", ["dna", "protein", "protein_dna"])
def test_padded_batch_equals_sequences_run_one_by_one(family):
    torch.manual_seed(0)
    lengths = [700, 413, 37, 1]
    input_ids, attention_mask = random_batch(5, 10 if family != "protein" else 25, lengths)
    features = torch.randn(len(lengths), 8)
    if family == "dna":
        model = DNAPerceiverForSequenceClassification(small_dna_config()).eval()
        batch = dict(input_ids=input_ids, attention_mask=attention_mask, features=features)

        def one(i):
            return dict(input_ids=input_ids[i : i + 1, : lengths[i]], features=features[i : i + 1])
    elif family == "protein":
        model = ProteinPerceiverForSequenceClassification(small_protein_config()).eval()
        batch = dict(input_ids=input_ids, attention_mask=attention_mask)

        def one(i):
            return dict(input_ids=input_ids[i : i + 1, : lengths[i]])
    else:
        config = ProteinDNAPerceiverConfig(
            dna_config=small_dna_config().to_dict(), protein_config=small_protein_config().to_dict()
        )
        model = ProteinDNAPerceiverForSequenceClassification(config).eval()
        protein_lengths = [5, 90, 300, 2]
        protein_ids, protein_mask = random_batch(5, 25, protein_lengths, seed=1)
        batch = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            protein_input_ids=protein_ids,
            protein_attention_mask=protein_mask,
            features=features,
        )

        def one(i):
            return dict(
                input_ids=input_ids[i : i + 1, : lengths[i]],
                protein_input_ids=protein_ids[i : i + 1, : protein_lengths[i]],
                features=features[i : i + 1],
            )

    with torch.no_grad():
        batched = model(**batch).logits
        alone = torch.cat([model(**one(i)).logits for i in range(len(lengths))])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_any_length_up_to_the_maximum_runs_and_longer_names_both_lengths():
    model = DNAPerceiverForSequenceClassification(small_dna_config(num_features=0)).eval()
    with torch.no_grad():
        assert model(input_ids=torch.full((1, 3_000), 6)).logits.shape == (1, 1)
        assert model(input_ids=torch.full((1, 7), 6)).logits.shape == (1, 1)
    with pytest.raises(ValueError, match=r"3001.*3000"):
        model(input_ids=torch.full((1, 3_001), 6))


def test_missing_or_misshaped_features_and_nan_labels_are_clear_errors():
    model = DNAPerceiverForSequenceClassification(small_dna_config()).eval()
    input_ids = torch.full((2, 50), 7)
    with pytest.raises(ValueError, match="features"):
        model(input_ids=input_ids)
    with pytest.raises(ValueError, match=r"\(batch, 8\)"):
        model(input_ids=input_ids, features=torch.randn(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        model(input_ids=input_ids, features=torch.randn(2, 8), labels=torch.tensor([1.0, float("nan")]))


@pytest.mark.slow
def test_training_steps_fit_a_small_batch():
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(small_dna_config(dropout=0.0))
    input_ids, attention_mask = random_batch(5, 9, [200] * 16)
    features, labels = torch.randn(16, 8), torch.randn(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, features=features, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("position_encoding", ["learnable", "fixed"])
def test_checkpoint_missing_latents_and_position_table_loads_sane_values(tmp_path, position_encoding):
    config = small_dna_config(position_encoding=position_encoding)
    DNAPerceiverForSequenceClassification(config).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    removed = [key for key in weights if key.endswith(("latents", "position_table"))]
    assert "perceiver.latents" in removed
    save_file(
        {k: v for k, v in weights.items() if k not in removed},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )

    for _ in range(3):  # uninitialised memory would differ between loads and hold arbitrary values
        model = DNAPerceiverForSequenceClassification.from_pretrained(tmp_path)
        latents = model.perceiver.latents.detach()
        assert torch.isfinite(latents).all()
        assert math.isclose(latents.std().item(), config.initializer_range, rel_tol=0.3)
        table = model.perceiver.embedding.position_table
        torch.testing.assert_close(table, sinusoidal_table(config.max_sequence_length, config.embedding_dim))


def test_base_and_head_checkpoints_load_into_each_other(tmp_path):
    head = DNAPerceiverForSequenceClassification(small_dna_config())
    head.save_pretrained(tmp_path / "head")
    base = AutoModel.from_pretrained(tmp_path / "head")
    assert isinstance(base, DNAPerceiverModel)
    torch.testing.assert_close(base.perceiver.latents, head.perceiver.latents)
    base.save_pretrained(tmp_path / "base")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    torch.testing.assert_close(reloaded.perceiver.latents, head.perceiver.latents)


def test_protein_dna_model_returns_both_latents():
    config = ProteinDNAPerceiverConfig(
        dna_config=small_dna_config().to_dict(), protein_config=small_protein_config().to_dict(), num_labels=2
    )
    model = ProteinDNAPerceiverModel(config).eval()
    output = model(
        input_ids=torch.full((2, 100), 6), protein_input_ids=torch.full((2, 40), 9), features=torch.randn(2, 8)
    )
    assert output.last_hidden_state.shape == (2, 8, 24)
    assert output.protein_last_hidden_state.shape == (2, 8, 16)
    assert output.pooler_output.shape == (2, 32)


def test_masked_batch_norm_takes_its_statistics_over_valid_positions_only():
    from expression_perceiver.modeling.modeling_expression_perceiver import MaskedBatchNorm1d

    generator = torch.Generator().manual_seed(0)
    mask = torch.arange(50)[None, :] < torch.tensor([50, 31, 7])[:, None]
    x = (torch.randn(3, 4, 50, generator=generator) * 3 + 1) * mask[:, None, :]  # zero where padded
    x.requires_grad_(True)
    ours, reference = MaskedBatchNorm1d(4).train(), torch.nn.BatchNorm1d(4).train()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 2.0, generator=generator), ours.bias.uniform_(-1, 1, generator=generator)
    reference.load_state_dict(ours.state_dict())
    valid = x.transpose(1, 2)[mask]  # (valid positions, channels): the plain formulation
    expected = reference(valid)
    out = ours(x, mask)
    torch.testing.assert_close(out.transpose(1, 2)[mask], expected)
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    assert ours.num_batches_tracked == reference.num_batches_tracked == 1
    weights = torch.randn(expected.shape, generator=generator)
    (ours_grad,) = torch.autograd.grad((out.transpose(1, 2)[mask] * weights).sum(), x)
    (reference_grad,) = torch.autograd.grad((expected * weights).sum(), x)
    # Padded positions' gradients differ, and do not matter: each conv block zeroes them on the way back.
    torch.testing.assert_close(ours_grad.transpose(1, 2)[mask], reference_grad.transpose(1, 2)[mask])
    # Without padding and outside a process group it is nn.BatchNorm1d itself.
    torch.testing.assert_close(ours(x), reference(x))


def test_padding_a_batch_further_leaves_a_training_step_unchanged():
    """With the convolutional branch on (batch norms in training mode): the loss and every gradient of a step on a
    batch are the same whether it is padded to its longest sequence or 100 positions beyond."""
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(small_dna_config(dropout=0.0)).train()
    input_ids, attention_mask = random_batch(5, 10, [300, 211, 57])
    features, labels = torch.randn(3, 8), torch.randn(3)

    def step(ids, mask):
        model.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, features=features, labels=labels).loss
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    state = {name: value.clone() for name, value in model.state_dict().items()}
    loss, gradients = step(input_ids, attention_mask)
    model.load_state_dict(state)  # the first step moved the running statistics
    padded_loss, padded_gradients = step(
        torch.nn.functional.pad(input_ids, (0, 100)), torch.nn.functional.pad(attention_mask, (0, 100))
    )
    torch.testing.assert_close(padded_loss, loss)
    for name, gradient in gradients.items():
        torch.testing.assert_close(padded_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", ["dna", "protein_dna"])
@pytest.mark.parametrize("head", [False, True])
def test_a_misspelt_keyword_argument_is_refused_naming_it(family, head):
    inputs = {"input_ids": torch.full((1, 30), 6), "features": torch.zeros(1, 8)}
    config = small_dna_config()
    if family == "protein_dna":
        config = ProteinDNAPerceiverConfig(dna_config=config.to_dict(), protein_config=small_protein_config().to_dict())
        inputs["protein_input_ids"] = torch.full((1, 12), 9)
    model = (AutoModelForSequenceClassification if head else AutoModel).from_config(config).eval()
    with torch.no_grad():
        model(**inputs, return_dict=True, output_hidden_states=False)  # what transformers itself may pass
        with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) atention_mask; it reads input_ids"):
            model(**inputs, atention_mask=torch.ones(1, 30, dtype=torch.long))
