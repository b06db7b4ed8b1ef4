"""The fast paths of the Perceivers: the cross-attention over the sequence, SDPA under bf16 training on CPU, the
convolutions and windowed softmax pooling of the convolutional branch, and the products of one row per sequence
(products whose rounding does not depend on the batch).

The cross-attention reads a narrow sequence (`embedding_dim`, 32) of up to 20,000 positions. Its key and value
projections are folded into the query and the output (`CrossAttentionBlock.read_sequence` in the modeling file), so
each head attends over the layer-normalised sequence itself and neither keys nor values are ever built. The
configuration's `sequence_attention` field selects one of three implementations of the same function, with the
same parameters:

- `"reference"`: the plain formulation (LayerNorm of the embedded sequence, keys and values projected, multi-head
  SDPA), the definition the others are tested against;
- `"folded"`: the folded attention through `scaled_dot_product_attention` over the normalised sequence, for the
  fused kernels of GPUs and `torch.compile`;
- `"chunked"`: the folded attention computed chunk by chunk of positions that fit in a core's cache, the normalised
  sequence computed on the fly (`ChunkedSequenceAttention`): no tensor of (batch, length, width) is materialised in
  the forward or the backward pass, whose cost on CPU is as much in fresh memory as in arithmetic;
- `"auto"` (the default): `"chunked"` on CPU in eager mode, where it is fastest, `"folded"` elsewhere.

`tests/modeling/test_performance_paths.py` checks each against the reference. The chunked kernel reads token ids, so
a one-hot input (`inputs_one_hot`, differentiable) is read through the embedded sequence: by the reference when it is
selected, else by the folded SDPA. `sequence_attention_weights` gives the weights every implementation applies.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SequenceBatch:
    """A batch of sequences as the cross-attention reads it: the embedded sequence for the reference, the
    layer-normalised (no affine) sequence for the folded SDPA, the centred tables for the chunked kernel. A one-hot
    input has no ids: only the first two are used."""

    input_ids: torch.Tensor | None
    mask: torch.Tensor | None  # None when no position is padded
    eps: float
    padding_idx: int | None
    embedded: torch.Tensor | None = None
    normalized: torch.Tensor | None = None
    token_table: torch.Tensor | None = None
    position_table: torch.Tensor | None = None
    chunk_length: int | None = None  # positions per chunk of the chunked kernel (`positions_per_chunk`)


def resolve_sequence_attention(implementation: str, input_ids: torch.Tensor) -> str:
    """The implementation to run: `"auto"` is the chunked kernel in CPU eager mode, the folded SDPA elsewhere (GPUs
    and `torch.compile` have fused kernels for it)."""
    if implementation != "auto":
        return implementation
    return "chunked" if input_ids.device.type == "cpu" and not torch.compiler.is_compiling() else "folded"


# The chunked kernel: softmax(q x^T * scale) x over x = RMSNorm(token_table[ids] + position_table), both tables centred.
# Float32 scores per chunk and sequence: 256 KB, 512 positions for 128 queries (4 MB at batch 16). The chunk length
# depends on the model's widths only, never on the batch or the sequence's length: every sum over positions then runs
# over the same chunks in the same order whatever else the batch holds (see `ChunkedSequenceAttention`). The last
# chunk is computed at full length, so longer chunks waste more; 512 positions lose nothing measurable against the
# batch-sized chunks used before (benchmarks/RESULTS.md, "Chunks fixed by the model").
SCORES_PER_SEQUENCE_CHUNK = 1 << 16
MIN_CHUNK_LENGTH = 128  # below this, per-chunk overhead outweighs the memory saved
# exp(score) for |score| <= 30 stays far from float32 overflow and underflow, so no running maximum is needed.
UNSHIFTED_SCORE_LIMIT = 30.0
# Below about -87.3 a float32 exp() underflows into subnormals or 0, which the CPU's exp computes several times more
# slowly; after the shift a row's largest weight is exp(0) = 1, so weights under exp(-87) < 1e-37 of it are set to 0.
UNDERFLOW_SCORE = -87.0
UNDERFLOW_WEIGHT = math.exp(UNDERFLOW_SCORE)


def exp_scores_(scores: torch.Tensor) -> torch.Tensor:
    """exp() in place of (shifted) scores, each weight below exp(UNDERFLOW_SCORE) exactly 0 (masked -inf scores
    too). Scores of the unshifted rows (|score| <= UNSHIFTED_SCORE_LIMIT) are left to exp() as they are."""
    return F.threshold_(scores.clamp_min_(UNDERFLOW_SCORE).exp_(), UNDERFLOW_WEIGHT, 0.0)


def positions_per_chunk(queries: int, max_length: int | None = None, fixed: int | None = None) -> int:
    """Positions per chunk of the chunked kernel for a model of `queries` queries (latents x heads) reading up to
    `max_length` positions: `fixed` if given, else the power of two whose scores for one sequence come closest to
    SCORES_PER_SEQUENCE_CHUNK from below; at most `max_length`. A function of the model, never of the batch."""
    if fixed is None:
        fitting = max(SCORES_PER_SEQUENCE_CHUNK // queries, 1)
        fixed = max(MIN_CHUNK_LENGTH, 1 << (fitting.bit_length() - 1))
    return fixed if max_length is None else max(1, min(fixed, max_length))


def centred_chunk(tokens: torch.Tensor, positions: torch.Tensor, input_ids: torch.Tensor, start: int, end: int):
    """Positions [start, end) of the centred embedded sequence, (batch, end - start, width)."""
    return F.embedding(input_ids[:, start:end], tokens).add_(positions[start:end])


def inverse_rms(centred: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) per position, (batch, positions, 1): the layer norm's 1/std of a centred x."""
    norm = torch.linalg.vector_norm(centred, dim=-1, keepdim=True)
    return norm.square_().div_(centred.shape[-1]).add_(eps).rsqrt_()


def padded_chunks(mask: torch.Tensor | None, length: int, chunk: int) -> list[bool]:
    """Whether each chunk holds a padded position (only those need masking)."""
    if mask is None:
        return [False] * len(range(0, length, chunk))
    return [bool((~mask[:, start : start + chunk]).any()) for start in range(0, length, chunk)]


class ChunkedSequenceAttention(torch.autograd.Function):
    """softmax(query x^T * scale) x, where x is the layer-normalised (no affine) sum of token and position
    embeddings, computed chunk by chunk in float32: x, its scores and their gradients never exist for the whole
    sequence at once. When a gradient is needed, the forward pass keeps each chunk's exponentiated scores (batch x
    queries x length floats, the one full-length tensor) so that the backward pass does not recompute them; it
    recomputes each chunk's x, folds the layer norm's and the embedding's backward in, and returns gradients for
    the (small) tables directly.

    A sequence's outputs are the same bits in any batch, padded to any length. Chunks start at multiples of `chunk`
    and every chunk's products and sums run over exactly `chunk` positions: the last one is completed with masked
    zero positions, as a padded batch completes it with masked padding. Masked positions weigh exactly 0, and the
    chunks are added in order, so neither the batch's other sequences nor the chunks of padding beyond a sequence
    change its sums (a library's sum over a row of another length may add the same numbers in another order).

    Scores are exponentiated without subtracting a running maximum in each query row where |score| <=
    `score_limit` is guaranteed (|x| <= sqrt(width) after normalisation bounds them); in the other rows a first pass
    finds the row's maximum. The choice is per row, so it does not depend on the batch either.
    """

    @staticmethod
    def forward(
        ctx,
        query,
        tokens,
        positions,
        input_ids,
        mask,
        scale: float,
        eps: float,
        padding_idx: int | None,
        chunk: int,
        score_limit: float = UNSHIFTED_SCORE_LIMIT,
    ):
        batch, queries, width = query.shape
        length = input_ids.shape[1]
        starts = range(0, length, chunk)
        padded = padded_chunks(mask, length, chunk)
        scaled = query * scale
        inverse = query.new_empty(batch, length, 1)  # kept for the backward pass
        backward = any(ctx.needs_input_grad[:3])
        weights = query.new_empty(len(starts), batch, queries, chunk) if backward else None  # kept for the backward
        scores = query.new_empty(batch, queries, chunk) if weights is None else None
        tail = length - starts[-1]
        completed = query.new_zeros(batch, chunk, width) if tail < chunk else None  # the last chunk, full length

        def chunk_scores(index: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
            """The chunk's scores, in the chunk's kept weights when there are some, and its centred positions."""
            end = min(start + chunk, length)
            x = centred_chunk(tokens, positions, input_ids, start, end)
            inverse[:, start:end] = inverse_rms(x, eps)
            x.mul_(inverse[:, start:end])
            if end - start < chunk:
                completed[:, : end - start] = x
                x = completed
            s = torch.bmm(scaled, x.transpose(1, 2), out=scores if weights is None else weights[index])
            if padded[index]:
                s[:, :, : end - start].masked_fill_(~mask[:, None, start:end], -math.inf)
            if end - start < chunk:
                s[:, :, end - start :] = -math.inf
            return s, x

        shift = None
        bound = torch.linalg.vector_norm(scaled, dim=-1, keepdim=True).mul_(math.sqrt(width))
        unshifted = bound <= score_limit
        if not bool(unshifted.all()):
            shift = torch.full((batch, queries, 1), torch.finfo(query.dtype).min, device=query.device)
            for index, start in enumerate(starts):
                torch.maximum(shift, chunk_scores(index, start)[0].amax(-1, keepdim=True), out=shift)
            shift.masked_fill_(unshifted, 0.0)
        weighted = query.new_zeros(batch, queries, width)
        total = query.new_zeros(batch, queries, 1)
        for index, start in enumerate(starts):
            s, x = chunk_scores(index, start)
            if shift is not None:
                s.sub_(shift)
            exp_scores_(s)
            total += s.sum(-1, keepdim=True)
            weighted.baddbmm_(s, x)
        out = weighted / total
        ctx.save_for_backward(scaled, tokens, positions, input_ids, out, total, inverse, weights)
        ctx.scale, ctx.padding_idx, ctx.chunk = scale, padding_idx, chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        scaled, tokens, positions, input_ids, out, total, inverse, weights = ctx.saved_tensors
        batch, queries, width = scaled.shape
        length, chunk = input_ids.shape[1], ctx.chunk
        needs_tokens, needs_positions = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        # With p = e / total (e = exp(s), kept by the forward pass) and g = grad_out / total, the scores' gradient is
        # ds = e * (g.x - delta) with delta = g.out per row. The delta terms are folded into small per-row tensors:
        # grad q = sum_j e (g.x) x - delta * total * out, grad x = sum_i e (g.x) q + e (g - delta q).
        grad_weighted = grad_out / total
        row_delta = (grad_weighted * out).sum(-1, keepdim=True)
        shifted_values = grad_weighted - row_delta * scaled  # pairs with e in grad x
        grad_scaled = torch.zeros_like(scaled)
        grad_tokens = torch.zeros_like(tokens) if needs_tokens else None
        grad_positions = torch.empty_like(positions) if needs_positions else None
        buffer = scaled.new_empty(batch * queries * chunk)
        for index, start in enumerate(range(0, length, chunk)):
            end = min(start + chunk, length)
            x = centred_chunk(tokens, positions, input_ids, start, end).mul_(inverse[:, start:end])
            e = weights[index, :, :, : end - start]
            # e * (g.x), (batch, queries, positions)
            out_dots = buffer[: batch * queries * (end - start)].view(batch, queries, -1)
            weighted_dots = torch.bmm(grad_weighted, x.transpose(1, 2), out=out_dots).mul_(e)
            grad_scaled.baddbmm_(weighted_dots, x)
            if needs_tokens or needs_positions:
                grad_x = torch.bmm(e.transpose(1, 2), shifted_values).baddbmm_(weighted_dots.transpose(1, 2), scaled)
                # Through x = centred * inverse: grad_centred = inverse * (grad_x - x * mean(grad_x * x)).
                dot = torch.linalg.vecdot(grad_x, x).unsqueeze_(-1)
                grad_centred = grad_x.addcmul_(x, dot, value=-1.0 / width).mul_(inverse[:, start:end])
                if needs_positions:
                    torch.sum(grad_centred, 0, out=grad_positions[start:end])
                if needs_tokens:
                    grad_tokens.index_add_(0, input_ids[:, start:end].reshape(-1), grad_centred.view(-1, width))
        if needs_tokens and ctx.padding_idx is not None:
            grad_tokens[ctx.padding_idx] = 0  # as nn.Embedding(padding_idx=...) does
        grad_query = grad_scaled.sub_(row_delta * total * out).mul_(ctx.scale)
        return grad_query, grad_tokens, grad_positions, None, None, None, None, None, None, None


def sequence_attention(query: torch.Tensor, sequence: SequenceBatch, scale: float) -> torch.Tensor:
    """softmax(query x^T * scale) x over the layer-normalised sequence x: (batch, queries, width), by the folded SDPA
    when the batch carries the normalised sequence, else by the chunked kernel."""
    if sequence.normalized is not None:
        x = sequence.normalized[:, None]
        mask = None if sequence.mask is None else sequence.mask[:, None, None, :]
        return F.scaled_dot_product_attention(query[:, None], x, x, attn_mask=mask, scale=scale)[:, 0]
    chunk = sequence.chunk_length or positions_per_chunk(query.shape[1])
    # Float32 throughout: under bf16 autocast, bf16 scores would cost precision and, on CPU, speed.
    with torch.autocast(device_type=query.device.type, enabled=False):
        out = ChunkedSequenceAttention.apply(
            query.float(),
            sequence.token_table.float(),
            sequence.position_table.float(),
            sequence.input_ids,
            sequence.mask,
            scale,
            sequence.eps,
            sequence.padding_idx,
            chunk,
        )
    return out.to(query.dtype)


def sequence_attention_weights(query: torch.Tensor, sequence: SequenceBatch, scale: float) -> torch.Tensor:
    """The weights softmax(query x^T * scale) that `sequence_attention` applies to the layer-normalised (no affine)
    sequence x: (batch, queries, length), float32, each row summing to 1, padded positions exactly 0. x is the one
    the batch carries: the normalised sequence (folded SDPA), the layer norm of the embedded one (reference), or,
    for the chunked kernel, the normalised centred tables, built chunk by chunk of positions as the kernel builds it
    (only the scores, the size of the result, exist for the whole sequence). Differentiable."""
    with torch.autocast(device_type=query.device.type, enabled=False):
        query = query.float() * scale
        if sequence.normalized is not None or sequence.embedded is not None:
            x = sequence.normalized
            if x is None:
                x = F.layer_norm(sequence.embedded.float(), sequence.embedded.shape[-1:], eps=sequence.eps)
            scores = torch.matmul(query, x.float().transpose(1, 2))
        else:
            tokens, positions = sequence.token_table.float(), sequence.position_table.float()
            length = sequence.input_ids.shape[1]
            chunk = sequence.chunk_length or positions_per_chunk(query.shape[1])
            parts = []
            for start in range(0, length, chunk):
                end = min(start + chunk, length)
                x = F.embedding(sequence.input_ids[:, start:end], tokens) + positions[start:end]
                x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + sequence.eps)
                parts.append(torch.bmm(query, x.transpose(1, 2)))
            scores = torch.cat(parts, dim=-1)
        if sequence.mask is not None:
            scores = scores.masked_fill(~sequence.mask[:, None, :], -math.inf)
        return scores.softmax(-1)


def attention_kernel(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """SDPA, in float32 when training on CPU under bf16 autocast: there the bf16 backward kernel is about 3x slower
    than the float32 one (the forward alone is faster in bf16 and keeps it)."""
    if query.device.type != "cpu" or query.dtype == torch.float32 or not query.requires_grad:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    with torch.autocast(device_type="cpu", enabled=False):
        out = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask)
    return out.to(query.dtype)


def attention_per_row(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v, SDPA's function, as products of one shape per sequence and head: SDPA's
    CPU kernel divides its work by the batch and the threads, and its rounding with it. For a few queries."""
    shape = query.shape
    query, key, value = (tensor.flatten(0, 1) for tensor in (query, key, value))
    scores = torch.bmm(query * shape[-1] ** -0.5, key.transpose(1, 2))
    if mask is not None:
        scores = scores.masked_fill(~mask.expand(*shape[:-1], -1).flatten(0, 1), -math.inf)
    return torch.bmm(scores.softmax(-1), value).unflatten(0, shape[:2])


# Matrix products narrower than this many columns take another path in the CPU BLAS, with other rounding: the
# convolutions' products are widened to it with zero columns, so a short sequence alone gets the bits it gets padded.
MIN_PRODUCT_COLUMNS = 16


def per_sequence_product(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`weight @ x[i]` for each sequence i of `x` (batch, in, positions), at least MIN_PRODUCT_COLUMNS wide."""
    columns = x.shape[-1]
    if columns < MIN_PRODUCT_COLUMNS:
        x = F.pad(x, (0, MIN_PRODUCT_COLUMNS - columns))
    out = torch.bmm(weight.expand(x.shape[0], -1, -1), x)  # no copies, unlike matmul's broadcast
    return out if columns >= MIN_PRODUCT_COLUMNS else out[..., :columns]


def convolve(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` as one matrix product per sequence: a kernel of size 1 over channels, which CPUs run several times
    faster than the convolution kernel they fall back to for it (the same sums, same parameters), a wider one on CPU
    over the windows of the padded input (`convolve_windows`). The CPU convolution kernel chooses its algorithm,
    hence its rounding, by the batch's shape; these products give a sequence the same bits in any batch."""
    kernel = conv.kernel_size[0]
    if kernel != 1:
        plain = conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros"
        if plain or x.device.type != "cpu":
            return conv(x)
        if isinstance(conv.padding, str):
            left = (kernel - 1) // 2 if conv.padding == "same" else 0
            right = kernel - 1 - left if conv.padding == "same" else 0
        else:
            left = right = conv.padding[0]
        return convolve_windows(conv.weight, conv.bias, F.pad(x, (left, right)))
    out = per_sequence_product(conv.weight[:, :, 0], x)
    return out if conv.bias is None else out.add_(conv.bias[:, None])


def convolve_windows(
    weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """`F.conv1d(x, weight, bias)` without padding, as one matrix product per sequence of the weight with the
    windows of `x` (batch, in_channels * kernel, positions): each sequence's product has the same shape whatever
    the batch, so its bits do not depend on the batch, and on CPU it runs faster than the convolution kernel for a
    few input channels (the one-hot stem). The windows are a copy of `kernel` times the input. `channels_last`: `x`
    is (batch, positions, in_channels), read without a transposed copy."""
    kernel = weight.shape[-1]
    if channels_last:  # windows (batch, positions, kernel * in_channels), multiplied transposed
        windows = x.unfold(1, kernel, 1).transpose(2, 3).flatten(2).transpose(1, 2)
        weight = weight.transpose(1, 2)
    else:
        windows = x.unfold(-1, kernel, 1).transpose(-1, -2).flatten(1, 2)
    out = per_sequence_product(weight.flatten(1), windows)
    return out if bias is None else out.add_(bias[:, None])


def linear_per_row(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` as one product per row (a batched product of (1, in) by (in, out) matrices): a row's bits do not
    depend on how many rows there are, whereas the blocking of a single matrix product, hence its rounding, does.
    For the layers that take one row per sequence; a few rows, so the cost is negligible."""
    rows = x.reshape(-1, 1, x.shape[-1])
    weight = linear.weight.t().expand(rows.shape[0], -1, -1)
    if linear.bias is None:
        out = torch.bmm(rows, weight)
    else:
        out = torch.baddbmm(linear.bias.expand(rows.shape[0], 1, -1), rows, weight)
    return out.reshape(*x.shape[:-1], -1)


def window_softmax_pool(x: torch.Tensor, logits: torch.Tensor, size: int) -> torch.Tensor:
    """Softmax-weighted sum of `x` over consecutive windows of `size` positions (the length a multiple of `size`);
    a window of padding only (all logits -inf) pools to 0.

    The softmax is exp(logits - max) / sum, which is how softmax computes it too, written out: on CPU, softmax over
    a last dimension of 12 is many times slower than a max pooling and elementwise operations. The max is a
    constant shift of each window, so no gradient flows through it."""
    peak = F.max_pool1d(logits.detach(), size).clamp_min(torch.finfo(logits.dtype).min).unsqueeze(-1)
    x, logits = x.unflatten(-1, (-1, size)), logits.unflatten(-1, (-1, size))
    # Without autograd, which keeps its inputs, the intermediates are reused in place.
    grad = torch.is_grad_enabled()
    weights = (logits - peak if grad else logits.sub_(peak)).exp_()
    # Each window holding a valid position has exp(0) = 1 in its sum; only all-padding windows are raised to 1.
    total = weights.sum(-1).clamp_min(1.0)
    return (x * weights if grad else weights.mul_(x)).sum(-1).div_(total)
