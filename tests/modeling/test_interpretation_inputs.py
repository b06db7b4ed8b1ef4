"""The inputs and outputs of interpretation methods: a differentiable one-hot input (`inputs_one_hot`), read as the
token ids it encodes, and the cross-attention weights over the sequence (`output_attentions=True`), checked against
a plain recomputation from the modules' parameters."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from expression_perceiver import (
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    DNAPerceiverModel,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
)
from expression_perceiver.modeling import kernels_expression_perceiver as kernels
from tests.small_models import SMALL_SIZES

# Two layers of two heads; chunks of 48 positions, so that the chunked kernel reads several and a partial last one.
SMALL = {
    **SMALL_SIZES,
    "num_layers": 2,
    "cross_attention_heads": 2,
    "max_sequence_length": 400,
    "dropout": 0.0,
    "attention_chunk_length": 48,
}
LENGTHS = [230, 131]  # a batch of two lengths: the second sequence is padded
# The outputs of a one-hot input and of its ids under the chunked kernel (`"auto"` on CPU) differ by float32 rounding:
# over ten seeds of the cases of `test_one_hot_input_agrees_with_the_chunked_kernel_to_float32_rounding`, at most
# 9.3e-10 in the logits (of 6e-3 at most), 2.6e-8 in the summary vector (of 0.16) and 4.8e-7 in the latents (of 4.7).
CHUNKED_TOLERANCE = 1e-5


def dna_model(cls=DNAPerceiverForSequenceClassification, seed: int = 0, **kwargs):
    """A small DNA model in evaluation mode, its cross-attention queries and keys scaled up so that the attention is far
    from uniform (scores of several units)."""
    torch.manual_seed(seed)
    model = cls(DNAPerceiverConfig(**{**SMALL, "num_features": 3, **kwargs})).eval()
    return sharpened(model)


def sharpened(model):
    with torch.no_grad():
        for encoder in (model.perceiver, getattr(model, "protein_perceiver", None)):
            if encoder is None:
                continue
            encoder.latents.normal_()
            for layer in encoder.layers:
                layer.cross_attention.attention.to_query.weight.mul_(20.0)
                layer.cross_attention.attention.to_key_value.weight.mul_(20.0)
    return model


def batch(config, lengths=LENGTHS, unknown: int | None = None, seed: int = 1):
    """Right-padded random letters (the alphabet and the unknown letter `unknown`, a few positions of it in each
    sequence), their mask and their one-hot input: all-zero rows for the unknown letter and padding."""
    generator = torch.Generator().manual_seed(seed)
    first, alphabet = config.first_letter_token_id, config.alphabet_size
    width = max(lengths)
    input_ids = torch.randint(first, first + alphabet, (len(lengths), width), generator=generator)
    if unknown is not None:
        input_ids[:, 10:14] = unknown
        input_ids[:, 60] = unknown
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    input_ids = input_ids.masked_fill(~mask, config.pad_token_id)
    one_hot = F.one_hot(input_ids, config.vocab_size)[..., first : first + alphabet].float()
    return input_ids, mask, one_hot


@pytest.mark.parametrize("conv", [True, False])
@pytest.mark.parametrize("implementation", ["folded", "reference"])
def test_dna_one_hot_input_gives_the_bits_of_its_ids(implementation, conv):
    model = dna_model(sequence_attention=implementation, use_conv_branch=conv)
    input_ids, mask, one_hot = batch(model.config, unknown=9)  # N
    assert not one_hot[0, 10:14].any() and not one_hot[1, LENGTHS[1] :].any()
    features = torch.randn(2, 3)
    with torch.no_grad():
        ids = model(input_ids, mask, features)
        hot = model(inputs_one_hot=one_hot, attention_mask=mask, features=features)
    assert torch.equal(hot.logits, ids.logits)
    base = dna_model(DNAPerceiverModel, sequence_attention=implementation, use_conv_branch=conv)
    with torch.no_grad():
        ids, hot = base(input_ids, mask, features), base(inputs_one_hot=one_hot, attention_mask=mask, features=features)
    assert torch.equal(hot.last_hidden_state, ids.last_hidden_state)
    assert torch.equal(hot.pooler_output, ids.pooler_output)


@pytest.mark.parametrize("implementation", ["folded", "reference"])
def test_protein_one_hot_input_gives_the_bits_of_its_ids(implementation):
    torch.manual_seed(0)
    config = ProteinPerceiverConfig(**{**SMALL, "sequence_attention": implementation})
    model = sharpened(ProteinPerceiverForSequenceClassification(config).eval())
    input_ids, mask, one_hot = batch(config, unknown=25)  # X, the unknown residue
    assert model.perceiver.embedding.unknown_token_id == 25
    with torch.no_grad():
        ids = model(input_ids, mask)
        hot = model(inputs_one_hot=one_hot, attention_mask=mask)
    assert torch.equal(hot.logits, ids.logits)


@pytest.mark.parametrize("conv", [True, False])
def test_one_hot_input_agrees_with_the_chunked_kernel_to_float32_rounding(conv):
    """Under the default `"auto"` (the chunked kernel on CPU) ids are read by the chunked kernel, a one-hot input by
    the folded SDPA: the same function, rounded differently."""
    assert kernels.resolve_sequence_attention(DNAPerceiverConfig().sequence_attention, torch.zeros(1)) == "chunked"
    input_ids, mask, one_hot = batch(DNAPerceiverConfig(), unknown=9)
    features = torch.randn(2, 3)
    for cls, names in [
        (DNAPerceiverForSequenceClassification, ["logits"]),
        (DNAPerceiverModel, ["last_hidden_state", "pooler_output"]),
    ]:
        model = dna_model(cls, use_conv_branch=conv)
        with torch.no_grad():
            ids = model(input_ids, mask, features)
            hot = model(inputs_one_hot=one_hot, attention_mask=mask, features=features)
        for name in names:
            torch.testing.assert_close(hot[name], ids[name], rtol=0, atol=CHUNKED_TOLERANCE, msg=name)


def test_protein_dna_model_reads_both_one_hot_inputs():
    dna = DNAPerceiverConfig(**{**SMALL, "num_features": 3, "sequence_attention": "folded"})
    protein = ProteinPerceiverConfig(**{**SMALL, "sequence_attention": "folded"})
    torch.manual_seed(0)
    config = ProteinDNAPerceiverConfig(dna_config=dna.to_dict(), protein_config=protein.to_dict(), num_labels=2)
    model = sharpened(ProteinDNAPerceiverForSequenceClassification(config).eval())
    input_ids, mask, one_hot = batch(dna, unknown=9)
    protein_ids, protein_mask, protein_one_hot = batch(protein, lengths=[90, 140], unknown=25, seed=2)
    features = torch.randn(2, 3)
    with torch.no_grad():
        ids = model(input_ids, protein_ids, mask, protein_mask, features, output_attentions=True)
        hot = model(
            attention_mask=mask,
            protein_attention_mask=protein_mask,
            features=features,
            inputs_one_hot=one_hot,
            protein_inputs_one_hot=protein_one_hot,
            output_attentions=True,
        )
        mixed = model(input_ids, None, mask, protein_mask, features, protein_inputs_one_hot=protein_one_hot)
    assert torch.equal(hot.logits, ids.logits) and torch.equal(mixed.logits, ids.logits)
    assert [tuple(w.shape) for w in hot.cross_attentions] == [(2, 2, 8, 230)] * 2
    assert [tuple(w.shape) for w in hot.protein_cross_attentions] == [(2, 2, 8, 140)] * 2
    for got, expected in zip(hot.protein_cross_attentions, ids.protein_cross_attentions, strict=True):
        assert torch.equal(got, expected)
    with pytest.raises(ValueError, match="protein_input_ids.*protein_inputs_one_hot"):
        model(input_ids, protein_ids, features=features, protein_inputs_one_hot=protein_one_hot)


@pytest.mark.parametrize("conv", [True, False])
def test_gradient_of_the_one_hot_input_is_the_derivative(conv):
    """The gradient along a random direction equals a central finite difference, in float64, at a point between
    the all-zero baseline and a one-hot input (as integrated gradients evaluates), with padding."""
    model = dna_model(use_conv_branch=conv).double()
    input_ids, mask, one_hot = batch(model.config, unknown=9)
    generator = torch.Generator().manual_seed(3)
    point = (0.6 * one_hot + 0.1 * torch.rand(one_hot.shape, generator=generator)).double()
    direction = torch.randn(one_hot.shape, generator=generator, dtype=torch.float64).mul_(mask[..., None])
    features = torch.randn(2, 3, generator=generator, dtype=torch.float64)

    def output(x: torch.Tensor) -> torch.Tensor:
        return model(inputs_one_hot=x, attention_mask=mask, features=features).logits.sum()

    point.requires_grad_()
    with torch.enable_grad():
        output(point).backward()
    assert point.grad[1, LENGTHS[1] :].abs().max() == 0  # padding
    step = 1e-6
    with torch.no_grad():
        difference = (output(point + step * direction) - output(point - step * direction)) / (2 * step)
    derivative = (point.grad * direction).sum()
    torch.testing.assert_close(derivative, difference, rtol=1e-6, atol=1e-9)
    if conv:  # the branch alone passes gradients to the one-hot input too
        x = point.detach().requires_grad_()
        with torch.enable_grad():
            model.perceiver.conv_branch(None, mask, features, x).sum().backward()
        assert x.grad[:, :100].abs().amax(-1).gt(0).all()


def plain_attention_weights(block, latents: torch.Tensor, embedded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) of the block's multi-head attention: queries from the layer-normed latents,
    keys projected from the layer-normed embedded sequence, as the reference formulation computes them."""
    attention = block.attention
    query = attention.split_heads(attention.to_query(block.latent_norm(latents)))
    key = attention.split_heads(attention.to_key_value(block.sequence_norm(embedded)).chunk(2, dim=-1)[0])
    scores = query @ key.transpose(-1, -2) / math.sqrt(attention.head_dim)
    return scores.masked_fill(~mask[:, None, None, :], -math.inf).softmax(-1)


def captured_latents(model) -> list[torch.Tensor]:
    """The latents entering each cross-attention block, recorded during the next forward passes."""
    captured = []
    for layer in model.perceiver.layers:
        layer.cross_attention.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    return captured


def test_cross_attention_weights_are_the_softmax_of_the_attention():
    model = dna_model(sequence_attention="reference")
    latents = captured_latents(model)
    input_ids, mask, one_hot = batch(model.config, unknown=9)
    features = torch.randn(2, 3)
    with torch.no_grad():
        out = model(input_ids, mask, features, output_attentions=True)
        embedded = model.perceiver.embedding(input_ids)
        blocks = [layer.cross_attention for layer in model.perceiver.layers]
        plain = [plain_attention_weights(block, x, embedded, mask) for block, x in zip(blocks, latents, strict=True)]
    assert isinstance(out, SequenceClassifierOutput) and len(out.cross_attentions) == 2
    for weights, expected in zip(out.cross_attentions, plain, strict=True):
        assert weights.shape == (2, 2, 8, 230) and weights.dtype == torch.float32
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 8), rtol=0, atol=1e-5)
        assert weights[1, :, :, LENGTHS[1] :].abs().max() == 0
        assert weights.amax() > 5 * weights[0].mean()  # far from uniform
        torch.testing.assert_close(weights, expected, rtol=0, atol=1e-5)


def test_cross_attention_weights_agree_across_implementations_and_inputs():
    weights = {}
    for implementation in ("reference", "folded", "chunked"):
        model = dna_model(sequence_attention=implementation)
        input_ids, mask, one_hot = batch(model.config, unknown=9)
        features = torch.randn(2, 3, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            weights[implementation] = model(input_ids, mask, features, output_attentions=True).cross_attentions
            hot = model(inputs_one_hot=one_hot, attention_mask=mask, features=features, output_attentions=True)
            plain = model(input_ids, mask, features)
        weights[f"{implementation} one-hot"] = hot.cross_attentions
        assert plain.cross_attentions is None and plain.to_tuple() == (plain.logits,)
        assert torch.equal(plain.logits, model(input_ids, mask, features, output_attentions=True).logits)
    for name, tensors in weights.items():
        for got, expected in zip(tensors, weights["reference"], strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("implementation", ["folded", "chunked"])
def test_weights_times_the_normalised_sequence_is_the_kernels_read(implementation):
    model = dna_model(sequence_attention=implementation)
    encoder, block = model.perceiver, model.perceiver.layers[0].cross_attention
    input_ids, mask, _ = batch(model.config, unknown=9)
    latents = torch.randn(2, 8, 19)
    with torch.no_grad():
        sequence = encoder.embedding.read_by(input_ids, mask, model.config)
        folded = block.folded_query(block.latent_norm(latents)).flatten(1, 2)
        read = kernels.sequence_attention(folded, sequence, block.attention.head_dim**-0.5)
        weights = block.attention_weights(latents, sequence).flatten(1, 2)
        normalized = F.layer_norm(encoder.embedding(input_ids), (model.config.embedding_dim,), eps=1e-5)
    torch.testing.assert_close(weights @ normalized, read, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["dna", "protein"])
def test_one_hot_input_errors_name_the_argument(family):
    if family == "dna":
        model = dna_model(num_features=0)
    else:
        model = ProteinPerceiverForSequenceClassification(ProteinPerceiverConfig(**SMALL)).eval()
    input_ids, _, one_hot = batch(model.config, lengths=[20])
    with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_one_hot`; got both"):
        model(input_ids, inputs_one_hot=one_hot)
    with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_one_hot`; got neither"):
        model(attention_mask=torch.ones(1, 20))
    alphabet = model.config.alphabet_size
    for shape in [(1, 20, alphabet + 1), (20, alphabet), (1, 401, alphabet), (1, 0, alphabet)]:
        with pytest.raises(ValueError, match="inputs_one_hot"):
            model(inputs_one_hot=torch.zeros(shape))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        model(inputs_onehot=one_hot)
