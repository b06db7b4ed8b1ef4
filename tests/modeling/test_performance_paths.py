"""The fast paths of the modeling code against plain references: same outputs, same gradients.

The cross-attention folds its key and value projections away and runs either a chunked kernel over the sequence or
SDPA over the layer-normalised sequence (`config.sequence_attention`). Both are checked against the plain formulation
(LayerNorm of the embedded sequence, keys and values projected, multi-head SDPA), written out here and shipped as the
`"reference"` implementation, with the same parameters. The attention pooling and masking shortcuts of the
convolutional branch are checked against the formulation they replace.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification
from expression_perceiver.modeling import kernels_expression_perceiver as kernels
from expression_perceiver.modeling import modeling_expression_perceiver as modeling
from tests.small_models import SMALL_SIZES

# Chunks of 48 positions, so that short test sequences span many chunks and a partial last one.
SMALL = {**SMALL_SIZES, "max_sequence_length": 1_000, "dropout": 0.0, "attention_chunk_length": 48}


def padded_batch(lengths: list[int], seed: int = 0, low: int = 5, high: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    input_ids = torch.randint(low, high, (len(lengths), width), generator=generator)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return input_ids.masked_fill(~mask, 0), mask


def plain_cross_attention(
    model, latents: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """The cross-attention block as first written: keys and values projected from LayerNorm(embedding)."""
    encoder = model.perceiver
    block = encoder.layers[0].cross_attention
    sequence = block.sequence_norm(encoder.embedding(input_ids))
    latents = latents + block.attention(block.latent_norm(latents), sequence, mask)
    return latents + block.feed_forward(latents)


def fast_cross_attention(
    model, latents: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    encoder = model.perceiver
    sequence = encoder.embedding.read_by(input_ids, mask, model.config)
    return encoder.layers[0].cross_attention(latents, sequence)


def outputs_and_gradients(model, run, latents, *args) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    latents = latents.detach().requires_grad_()
    out = run(model, latents, *args)
    weights = torch.linspace(-1.0, 1.0, out.numel()).view_as(out)  # every output entry gets its own gradient
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    grads["latents"] = latents.grad
    return out.detach(), grads


def assert_same(fast, plain, tolerance: float = 1e-5) -> None:
    """Outputs equal to `tolerance`, each gradient to `tolerance` of its largest entry."""
    (fast_out, fast_grads), (plain_out, plain_grads) = fast, plain
    torch.testing.assert_close(fast_out, plain_out, rtol=tolerance, atol=tolerance)
    assert fast_grads.keys() == plain_grads.keys()
    for name, plain_grad in plain_grads.items():
        scale = plain_grad.abs().max().item() + 1e-6
        torch.testing.assert_close(fast_grads[name], plain_grad, rtol=10 * tolerance, atol=tolerance * scale, msg=name)


@pytest.mark.parametrize("path", ["chunked", "folded", "reference"])
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("padded", [True, False])
def test_every_cross_attention_implementation_equals_plain_attention(path, heads, padded):
    torch.manual_seed(0)
    config = DNAPerceiverConfig(**SMALL, cross_attention_heads=heads, sequence_attention=path)
    model = DNAPerceiverForSequenceClassification(config)
    lengths = [300, 171, 1] if padded else [300] * 3
    input_ids, mask = padded_batch(lengths)
    input_ids[0, 5] = 0  # a padding token at a valid position: its embedding row must get no gradient either way
    mask = mask if padded else None
    latents = torch.randn(3, 8, 16)
    fast = outputs_and_gradients(model, fast_cross_attention, latents, input_ids, mask)
    plain = outputs_and_gradients(model, plain_cross_attention, latents, input_ids, mask)
    assert_same(fast, plain)
    assert fast[1]["perceiver.embedding.token_embedding.weight"][0].abs().max() == 0


def test_chunked_kernel_shifts_scores_too_large_to_exponentiate():
    """Scores of several hundred overflow exp(); the kernel then subtracts each row's maximum first."""
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**SMALL, sequence_attention="chunked"))
    with torch.no_grad():
        model.perceiver.layers[0].cross_attention.attention.to_query.weight.mul_(5_000.0)
    input_ids, mask = padded_batch([250, 90])
    latents = torch.randn(2, 8, 16)
    fast = outputs_and_gradients(model, fast_cross_attention, latents, input_ids, mask)
    plain = outputs_and_gradients(model, plain_cross_attention, latents, input_ids, mask)
    assert_same(fast, plain, tolerance=1e-4)  # scores of hundreds: float32 rounding is 1e-5 of them
    # The same inputs to the kernel with the shift never taken: exp() overflows.
    sequence = model.perceiver.embedding.read_by(input_ids, mask, model.config)
    query = torch.randn(2, 8, 32) * 50.0
    arguments = (sequence.token_table, sequence.position_table, input_ids, mask, 1.0, sequence.eps, 0, 48)
    assert torch.isfinite(kernels.ChunkedSequenceAttention.apply(query, *arguments)).all()
    assert not torch.isfinite(kernels.ChunkedSequenceAttention.apply(query, *arguments, math.inf)).all()


def test_exp_of_scores_is_exp_with_underflowing_weights_exactly_zero():
    """Weights that float32 exp() would underflow (or nearly) are 0, the others exp()'s own bits; -inf (masked) is 0."""
    scores = torch.cat([torch.linspace(-120.0, 30.0, 10_001), torch.tensor([-math.inf, kernels.UNDERFLOW_SCORE])])
    weights = kernels.exp_scores_(scores.clone())
    kept = scores > kernels.UNDERFLOW_SCORE
    assert torch.equal(weights[kept], scores[kept].exp())
    assert (weights[~kept] == 0).all() and int((~kept).sum()) > 2_000
    assert (scores[~kept].double().exp() < 1e-37).all()  # what was set to 0 is below 1e-37 of a row's largest weight


def test_chunked_kernel_with_fixed_positions_and_one_chunk():
    torch.manual_seed(0)
    config = DNAPerceiverConfig(**SMALL, position_encoding="fixed", sequence_attention="chunked")
    config.attention_chunk_length = None  # sized automatically: one chunk for 120 positions
    model = DNAPerceiverForSequenceClassification(config)
    input_ids, _ = padded_batch([120, 120])
    latents = torch.randn(2, 8, 16)
    fast = outputs_and_gradients(model, fast_cross_attention, latents, input_ids, None)
    plain = outputs_and_gradients(model, plain_cross_attention, latents, input_ids, None)
    assert_same(fast, plain)


def test_whole_model_training_step_matches_across_implementations():
    """Every sequence attention gives the same loss and gradients for the whole model (conv branch included)."""
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**SMALL, num_features=8, num_layers=2))
    input_ids, mask = padded_batch([400, 333, 20])
    batch = dict(input_ids=input_ids, attention_mask=mask.long(), features=torch.randn(3, 8), labels=torch.randn(3))
    results = {}
    for name in ("reference", "folded", "chunked"):
        model.config.sequence_attention = name
        model.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        results[name] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    reference_loss, reference_grads = results.pop("reference")
    for loss, grads in results.values():
        torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=1e-6)
        assert grads.keys() == reference_grads.keys()
        for name, grad in reference_grads.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-5 * grad.abs().max().item() + 1e-9)


def test_auto_runs_the_chunked_kernel_on_cpu_and_rejects_unknown_implementations():
    input_ids, _ = padded_batch([10])
    assert kernels.resolve_sequence_attention("auto", input_ids) == "chunked"
    assert kernels.resolve_sequence_attention("folded", input_ids) == "folded"
    with pytest.raises(ValueError, match="sequence_attention must be one of auto, reference, folded, chunked"):
        DNAPerceiverConfig(sequence_attention="flash")
    with pytest.raises(ValueError, match="attention_chunk_length"):
        DNAPerceiverConfig(attention_chunk_length=0)


def test_bf16_autocast_keeps_the_attention_kernels_in_float32():
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(DNAPerceiverConfig(**SMALL, num_features=8))
    input_ids, mask = padded_batch([500, 260])
    batch = dict(input_ids=input_ids, attention_mask=mask.long(), features=torch.randn(2, 8), labels=torch.randn(2))
    reference = model(**batch).loss
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    assert math.isclose(loss.item(), reference.item(), rel_tol=0.05)
    assert all(
        p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None
    )


def plain_attention_pool(pool, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention pooling as first written: pad to whole windows, softmax over each, NaN of empty windows to 0."""
    batch, channels, length = x.shape
    windows = -(-length // pool.pool_size)
    padding = windows * pool.pool_size - length
    x, mask = F.pad(x, (0, padding)), F.pad(mask, (0, padding))
    logits = pool.to_logits(x).masked_fill(~mask[:, None, :], float("-inf"))
    weights = logits.view(batch, channels, windows, pool.pool_size).softmax(dim=-1).nan_to_num(0.0)
    pooled = (x.view(batch, channels, windows, pool.pool_size) * weights).sum(dim=-1)
    return pooled, mask.view(batch, windows, pool.pool_size).any(dim=-1)


@pytest.mark.parametrize("length", [120, 125, 7])
def test_attention_pool_equals_padded_softmax(length):
    torch.manual_seed(0)
    pool = modeling.AttentionPool(6, 12)
    torch.nn.init.normal_(pool.to_logits.weight)
    mask = torch.ones(3, length, dtype=torch.bool)
    mask[1, length // 2 :] = False  # padding from mid-window on, and windows of padding only
    mask[2, 1:] = False
    results = []
    for run in (lambda x: pool(x, mask), lambda x: plain_attention_pool(pool, x, mask)):
        pool.zero_grad(set_to_none=True)
        x = torch.randn(3, 6, length, generator=torch.Generator().manual_seed(1)).requires_grad_()
        pooled, pooled_mask = run(x)
        (pooled * torch.linspace(-1, 1, pooled.numel()).view_as(pooled)).sum().backward()
        results.append((pooled.detach(), pooled_mask, x.grad, pool.to_logits.weight.grad))
    for fast, plain in zip(*results, strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_conv_branch_without_mask_equals_all_valid_mask():
    """Nothing padded: the branch skips masking (mask None) and gives what the all-valid mask gives."""
    torch.manual_seed(0)
    config = DNAPerceiverConfig(**SMALL, num_features=8)
    branch = modeling.ConvBranch(config).eval()
    input_ids, mask = padded_batch([437, 437])
    features = torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            branch(input_ids, None, features), branch(input_ids, mask, features), rtol=1e-5, atol=1e-6
        )
    assert modeling.unpadded_as_none(mask.long()) is None
    assert modeling.unpadded_as_none(padded_batch([5, 4])[1]) is not None


@pytest.mark.parametrize("padded", [True, False])
def test_conv_branch_in_chunks_equals_whole_sequence(padded):
    """In evaluation the stem stage runs chunk by chunk; the result is that of the whole sequence at once."""
    torch.manual_seed(0)
    branch = modeling.ConvBranch(DNAPerceiverConfig(**SMALL, num_features=8)).eval()
    for norm in (branch.stem_residual.norm, *(block.conv.norm for block in branch.tower)):
        torch.nn.init.normal_(norm.running_mean)  # evaluation statistics that are not the identity
        torch.nn.init.uniform_(norm.running_var, 0.5, 2.0)
    input_ids, mask = padded_batch([995, 600, 13] if padded else [995] * 3)
    input_ids[1, :40] = 9  # N: an all-zero one-hot column across a chunk border
    mask = mask if padded else None
    with torch.no_grad():
        whole = branch.stem_stage(input_ids, mask, 0, input_ids.shape[1])
        in_chunks = branch.stem_in_chunks(input_ids, mask, windows=5)  # chunks of 60 positions, a partial last one
        assert branch.stem_in_chunks(input_ids, mask)[0].shape == whole[0].shape
    torch.testing.assert_close(in_chunks[0], whole[0], rtol=1e-5, atol=1e-6)
    if padded:
        assert torch.equal(in_chunks[1], whole[1])


def test_pointwise_convolution_and_one_hot_lookup_equal_their_plain_forms():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 50)
    for conv in (torch.nn.Conv1d(8, 6, 1, padding="same"), torch.nn.Conv1d(8, 6, 1, bias=False)):
        torch.testing.assert_close(kernels.convolve(conv, x), conv(x), rtol=1e-5, atol=1e-6)
    branch = modeling.ConvBranch(DNAPerceiverConfig(**SMALL))
    input_ids = torch.arange(10).repeat(3, 2)  # every token id: specials, A C G T, N
    letter = input_ids - branch.first_letter_token_id
    plain = F.one_hot(letter.clamp(0, 3), 4) * ((letter >= 0) & (letter < 4))[..., None]
    torch.testing.assert_close(branch.one_hot(input_ids, torch.float32), plain.transpose(1, 2).float())
