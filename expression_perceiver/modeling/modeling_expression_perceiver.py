"""PyTorch DNA, Protein and Protein&DNA Perceivers for expression regression (after Stefanini et al., 2023).

Reading order: the sequence embedding, the Perceiver (latents, cross-attention over the sequence, latent
self-attention), the convolutional branch, the fusion of both into one summary vector, then the models. The fast
paths they run on (the cross-attention's implementations, selected by `config.sequence_attention`, the branch's
convolutions and pooling, and the products of one row per sequence) are in `kernels_expression_perceiver.py`, with
their performance notes.
"""

import inspect
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration_expression_perceiver import (
    DNAPerceiverConfig,
    PerceiverExpressionConfig,
    ProteinDNAPerceiverConfig,
    ProteinPerceiverConfig,
)
from .kernels_expression_perceiver import (
    SequenceBatch,
    attention_kernel,
    attention_per_row,
    convolve,
    convolve_windows,
    linear_per_row,
    positions_per_chunk,
    resolve_sequence_attention,
    sequence_attention,
    sequence_attention_weights,
    window_softmax_pool,
)

# The token `[UNK]`, second of the tokenizers' special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]).
UNKNOWN_TOKEN_ID = 1


@dataclass
class PerceiverExpressionOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, num_latents, latent_width)`):
            the latents after the last block.
        pooler_output (`torch.FloatTensor` of shape `(batch, summary_dim)`):
            the summary vector the regression head reads (latent summary, then branch vector).
        protein_last_hidden_state (`torch.FloatTensor`, *optional*):
            the protein encoder's latents (Protein&DNAPerceiver only).
        cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            the cross-attention weights over the sequence, one tensor per Perceiver layer of shape `(batch,
            cross_attention_heads, num_latents, length)`, float32: each latent's and head's softmax weights over the
            positions, summing to 1, padded positions exactly 0 (the promoter's, for the Protein&DNAPerceiver).
        protein_cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            the protein encoder's cross-attention weights, as `cross_attentions` (Protein&DNAPerceiver only).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    protein_last_hidden_state: torch.FloatTensor | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    protein_cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PerceiverExpressionRegressionOutput(SequenceClassifierOutput):
    """
    `SequenceClassifierOutput` (`loss`, `logits`) of the models with a head, with the cross-attention weights.

    Args:
        cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            as in [`PerceiverExpressionOutput`].
        protein_cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True`):
            as in [`PerceiverExpressionOutput`] (Protein&DNAPerceiver only).
    """

    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    protein_cross_attentions: tuple[torch.FloatTensor, ...] | None = None


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position table, (length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def unknown_letter_token_id(config: PerceiverExpressionConfig) -> int:
    """The token an unknown letter reads as: the one after the alphabet (N for DNA, which the tokenizer also reads
    the IUPAC ambiguity codes as; X, the unknown residue, for proteins), or [UNK] where the vocabulary ends with
    the alphabet."""
    token = config.first_letter_token_id + config.alphabet_size
    return token if token < config.vocab_size else UNKNOWN_TOKEN_ID


class SequenceEmbedding(nn.Module):
    """Token embedding plus a sinusoidal position encoding, learnable or fixed.

    The token embedding also reads a one-hot input over the alphabet's letters (`embed_one_hot`), linearly: a row
    is `one_hot @ W[letters] + (1 - sum(one_hot)) W[unknown]`, W the token embedding, so an exact one-hot row is the
    letter's embedding (the same bits), an all-zero row the unknown letter's (N for DNA, as the Xpresso one-hot
    encodes N; X for proteins), and interpolations between inputs are defined."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        self.max_sequence_length = config.max_sequence_length
        self.first_letter_token_id = config.first_letter_token_id
        self.alphabet_size = config.alphabet_size
        self.unknown_token_id = unknown_letter_token_id(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        table = torch.zeros(config.max_sequence_length, config.embedding_dim)
        if config.position_encoding == "learnable":
            self.position_table = nn.Parameter(table)
        else:
            self.register_buffer("position_table", table, persistent=False)

    def forward(self, input_ids: torch.LongTensor) -> torch.Tensor:
        return self.token_embedding(input_ids) + self.position_table[: input_ids.shape[1]]

    def embed_one_hot(self, one_hot: torch.Tensor) -> torch.Tensor:
        """The embedded sequence of a one-hot input (batch, length, alphabet_size), as `forward` embeds ids."""
        weight = self.token_embedding.weight
        one_hot = one_hot.to(weight.dtype)
        first = self.first_letter_token_id
        letters = torch.matmul(one_hot, weight[first : first + self.alphabet_size])
        unknown = (1 - one_hot.sum(-1, keepdim=True)) * weight[self.unknown_token_id]
        return letters + unknown + self.position_table[: one_hot.shape[1]]

    def centered_tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The token and position tables, each minus its mean over the width: a layer norm of their sum is then a
        root-mean-square normalisation, so the mean never has to be taken per position."""
        tokens = self.token_embedding.weight
        positions = self.position_table[:length]
        return tokens - tokens.mean(-1, keepdim=True), positions - positions.mean(-1, keepdim=True)

    def read_by(self, input_ids: torch.Tensor, mask: torch.Tensor | None, config: PerceiverExpressionConfig):
        """What the cross-attention needs of this batch, by `config.sequence_attention` (see the kernels file): the
        embedded sequence, the layer-normalised (no affine) sequence, or the centred tables; computed once for every
        layer."""
        implementation = resolve_sequence_attention(config.sequence_attention, input_ids)
        sequence = SequenceBatch(input_ids, mask, config.layer_norm_eps, self.token_embedding.padding_idx)
        if implementation == "reference":
            sequence.embedded = self(input_ids)
        elif implementation == "folded":
            sequence.normalized = F.layer_norm(self(input_ids), (self.position_table.shape[-1],), eps=sequence.eps)
        else:
            sequence.token_table, sequence.position_table = self.centered_tables(input_ids.shape[1])
            queries = config.num_latents * config.cross_attention_heads
            sequence.chunk_length = positions_per_chunk(
                queries, config.max_sequence_length, config.attention_chunk_length
            )
        return sequence

    def read_one_hot_by(self, one_hot: torch.Tensor, mask: torch.Tensor | None, config: PerceiverExpressionConfig):
        """`read_by` for a one-hot input: the embedded sequence for the reference implementation, the normalised one
        for the folded SDPA otherwise (the chunked kernel reads ids and has no gradient for a one-hot input). With
        `"reference"` or `"folded"` selected, a one-hot input gives the same bits as its ids."""
        sequence = SequenceBatch(None, mask, config.layer_norm_eps, self.token_embedding.padding_idx)
        embedded = self.embed_one_hot(one_hot)
        if config.sequence_attention == "reference":
            sequence.embedded = embedded
        else:
            sequence.normalized = F.layer_norm(embedded, (self.position_table.shape[-1],), eps=sequence.eps)
        return sequence


class Attention(nn.Module):
    """Multi-head attention of `query_width` queries over `context_width` keys/values through SDPA.

    `query_per_row`: the projections of the queries and the attention run as products of one shape per sequence
    (`linear_per_row`, `attention_per_row`), for a single query per sequence, whose bits then do not depend on the
    batch."""

    def __init__(
        self,
        query_width: int,
        context_width: int,
        heads: int,
        head_dim: int,
        dropout: float,
        query_per_row: bool = False,
    ):
        super().__init__()
        self.heads, self.head_dim, self.query_per_row = heads, head_dim, query_per_row
        self.to_query = nn.Linear(query_width, heads * head_dim, bias=False)
        self.to_key_value = nn.Linear(context_width, 2 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, query_width)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        project = linear_per_row if self.query_per_row else nn.Linear.__call__
        query = self.split_heads(project(self.to_query, x))
        key, value = map(self.split_heads, self.to_key_value(context).chunk(2, dim=-1))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = (attention_per_row if self.query_per_row else attention_kernel)(query, key, value, mask)
        return self.dropout(project(self.to_out, out.transpose(1, 2).flatten(2)))


class GEGLUFeedForward(nn.Module):
    """Pre-norm feed-forward with a GELU-gated linear unit."""

    def __init__(self, width: int, mult: int, dropout: float, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=eps)
        self.project_in = nn.Linear(width, 2 * mult * width)
        self.project_out = nn.Linear(mult * width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.project_in(self.norm(x)).chunk(2, dim=-1)
        return self.dropout(self.project_out(value * F.gelu(gate)))


class CrossAttentionBlock(GradientCheckpointingLayer):
    """Latents read the sequence: pre-norm cross-attention and feed-forward, both residual."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        width = config.latent_width
        self.latent_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.sequence_norm = nn.LayerNorm(config.embedding_dim, eps=config.layer_norm_eps)
        self.attention = Attention(
            width, config.embedding_dim, config.cross_attention_heads, config.cross_attention_head_dim, config.dropout
        )
        self.feed_forward = GEGLUFeedForward(width, config.feed_forward_mult, config.dropout, config.layer_norm_eps)

    def forward(self, latents: torch.Tensor, sequence: SequenceBatch) -> torch.Tensor:
        queries = self.latent_norm(latents)
        if sequence.embedded is None:
            latents = latents + self.read_sequence(queries, sequence)
        else:  # the reference formulation
            latents = latents + self.attention(queries, self.sequence_norm(sequence.embedded), sequence.mask)
        return latents + self.feed_forward(latents)

    def folded_query(self, queries: torch.Tensor) -> torch.Tensor:
        """Each head's query with its key projection and the layer norm's scale folded in: (batch, heads, latents,
        width), read against the layer-normalised (no affine) sequence with the scale `head_dim**-0.5`."""
        attention = self.attention
        heads, head_dim = attention.heads, attention.head_dim
        key_weight = attention.to_key_value.weight.unflatten(0, (2, heads, head_dim))[0]
        query = attention.to_query(queries).unflatten(-1, (heads, head_dim))  # (batch, latents, heads, head_dim)
        return torch.einsum("bnhe,hed->bhnd", query, key_weight) * self.sequence_norm.weight

    def attention_weights(self, latents: torch.Tensor, sequence: SequenceBatch) -> torch.Tensor:
        """The weights of the attention of `latents` (before this block) over the sequence: (batch, heads,
        latents, length), float32, padded positions 0. The same softmax(q k^T / sqrt(head_dim)) for every
        implementation: the keys' bias from the layer norm's shift is a constant per query that the softmax cancels
        (see `read_sequence`)."""
        folded = self.folded_query(self.latent_norm(latents))
        weights = sequence_attention_weights(folded.flatten(1, 2), sequence, self.attention.head_dim**-0.5)
        return weights.unflatten(1, folded.shape[1:3])

    def read_sequence(self, queries: torch.Tensor, sequence: SequenceBatch) -> torch.Tensor:
        """The attention of `queries` over LayerNorm(sequence), with keys and values folded away. Per head h,
        scores = (q W_k,h) . (gamma * x + beta) = ((q W_k,h) * gamma) . x + a constant per query that the softmax
        cancels, and output = softmax(scores) (gamma * x + beta) W_v,h^T = (gamma * softmax(scores) x + beta)
        W_v,h^T since each softmax row sums to 1. Heads become extra queries over the same x."""
        attention = self.attention
        heads, head_dim = attention.heads, attention.head_dim
        value_weight = attention.to_key_value.weight.unflatten(0, (2, heads, head_dim))[1]
        gamma, beta = self.sequence_norm.weight, self.sequence_norm.bias
        folded = self.folded_query(queries)
        read = sequence_attention(folded.flatten(1, 2), sequence, head_dim**-0.5)
        values = read.unflatten(1, (heads, -1)) * gamma + beta  # (batch, heads, latents, width)
        out = torch.einsum("bhnd,hed->bnhe", values, value_weight).flatten(2)
        return attention.dropout(attention.to_out(out))


class LatentSelfAttentionBlock(GradientCheckpointingLayer):
    """Latents exchange information: pre-norm self-attention and feed-forward, both residual."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        width = config.latent_width
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attention = Attention(
            width, width, config.self_attention_heads, config.self_attention_head_dim, config.dropout
        )
        self.feed_forward = GEGLUFeedForward(width, config.feed_forward_mult, config.dropout, config.layer_norm_eps)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        normed = self.norm(latents)
        latents = latents + self.attention(normed, normed)
        return latents + self.feed_forward(latents)


class PerceiverLayer(nn.Module):
    """One cross-attention from the latents to the sequence, then the latent self-attention blocks."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        self.cross_attention = CrossAttentionBlock(config)
        self.self_attention = nn.ModuleList(
            LatentSelfAttentionBlock(config) for _ in range(config.num_self_attention_blocks)
        )

    def forward(self, latents: torch.Tensor, sequence: SequenceBatch) -> torch.Tensor:
        latents = self.cross_attention(latents, sequence)
        for block in self.self_attention:
            latents = block(latents)
        return latents


def pooled_mask(mask: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """Windows of `size` positions holding at least one valid position (None stays None: nothing padded)."""
    if mask is None:
        return None
    padding = -mask.shape[-1] % size
    return F.pad(mask, (0, padding)).unflatten(-1, (-1, size)).any(dim=-1)


class AttentionPool(nn.Module):
    """Enformer's attention pooling over windows of `pool_size` positions, ignoring masked positions.

    The last window may be partial, so a sequence gives the same pooled values alone or right-padded in a batch.
    """

    def __init__(self, channels: int, pool_size: int):
        super().__init__()
        self.pool_size = pool_size
        self.to_logits = nn.Conv1d(channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        length = x.shape[-1]
        logits = convolve(self.to_logits, x)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        full = length - length % self.pool_size
        # The partial last window is pooled on its own, so the sequence is never copied into a padded one; it is
        # completed with masked positions (x 0, logits -inf), as padding completes it in a batch of longer sequences,
        # so that its sums run over the same number of terms and give the same bits.
        parts = [window_softmax_pool(x[..., :full], logits[..., :full], self.pool_size)] if full else []
        if full < length:
            missing = self.pool_size - (length - full)
            last_x = F.pad(x[..., full:], (0, missing))
            last_logits = F.pad(logits[..., full:], (0, missing), value=float("-inf"))
            parts.append(window_softmax_pool(last_x, last_logits, self.pool_size))
        pooled = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return pooled, pooled_mask(mask, self.pool_size)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """`nn.BatchNorm1d` whose training statistics are taken over the valid positions of the whole batch, on every
    process of a distributed run together: padding and the split of a batch across ranks leave training as it
    is on one process. Same parameters and buffers as `nn.BatchNorm1d`; evaluation uses the running statistics.

    The input is zero at padded positions (every stage of the branch keeps it so), so sums over all positions are
    sums over the valid ones. Across ranks the per-channel sums, sums of squares and counts are all-reduced with
    autograd's all-reduce, whose backward all-reduces their gradients, as SyncBatchNorm's does, on any backend."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        distributed = self.training and across_processes()
        if not self.training or (mask is None and not distributed):
            return super().forward(x)
        total, squares = x.sum(dim=(0, 2)), x.square().sum(dim=(0, 2))
        count = x.new_full((1,), x.shape[0] * x.shape[2]) if mask is None else mask.sum().to(x.dtype).reshape(1)
        if distributed:
            total, squares, count = all_reduce_sum(torch.cat([total, squares, count])).split([x.shape[1]] * 2 + [1])
        mean = total / count
        variance = (squares / count - mean.square()).clamp_min(0.0)
        self.update_running_statistics(mean, variance, count)
        scale = torch.rsqrt(variance + self.eps) * self.weight
        return (x - mean[:, None]) * scale[:, None] + self.bias[:, None]

    @torch.no_grad()
    def update_running_statistics(self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor) -> None:
        """As `nn.BatchNorm1d` updates them: the running variance is the unbiased one."""
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = variance * (count / (count - 1).clamp_min(1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def across_processes() -> bool:
    """Whether a process group of more than one process is running (DDP)."""
    distributed = torch.distributed
    return distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over the processes, differentiable: the backward sums the gradients over the processes too."""
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)


class ResidualConv(nn.Module):
    """x + Conv(GELU(BatchNorm(x))), Enformer's conv block inside a residual; padded positions kept at zero.

    Masking is skipped when nothing is padded (mask None), and products write into fresh intermediates in place:
    at full sequence length each avoided (batch, channels, length) tensor saves tens of megabytes."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.norm = MaskedBatchNorm1d(in_channels)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same")

    def block(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        normed = self.norm(x, mask)
        # Without autograd (which keeps the GELU's input), the GELU runs in place.
        hidden = F.gelu(normed) if torch.is_grad_enabled() else torch.ops.aten.gelu_(normed)
        if mask is None:
            return convolve(self.conv, hidden)
        return convolve(self.conv, hidden.mul_(mask[:, None, :])).mul_(mask[:, None, :])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.block(x, mask).add_(x)


class ConvTowerBlock(nn.Module):
    """Conv block changing the channels, a residual conv, then attention pooling."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool_size: int):
        super().__init__()
        self.conv = ResidualConv(in_channels, out_channels, kernel_size)
        self.residual = ResidualConv(out_channels, out_channels, 1)
        self.pool = AttentionPool(out_channels, pool_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.residual(self.conv.block(x, mask), mask)
        return self.pool(x, mask)


def masked_adaptive_average(x: torch.Tensor, mask: torch.Tensor | None, bins: int) -> torch.Tensor:
    """Averages each sequence's valid positions into `bins` equal bins (as `adaptive_avg_pool1d` would on the
    unpadded sequence), so the flattened vector has the same size whatever the input length."""
    if mask is None:
        return F.adaptive_avg_pool1d(x, bins)
    # Sequences of one length at a time, cut to it: each gets the bits it has unpadded.
    lengths = mask.sum(dim=-1)
    out = x.new_empty(*x.shape[:-1], bins)
    for length in lengths.unique().tolist():
        rows = (lengths == length).nonzero()[:, 0]
        out = out.index_copy(0, rows, F.adaptive_avg_pool1d(x[rows, :, : max(length, 1)], bins))
    return out


# Pooled windows per chunk of the stem stage in evaluation: 1,536 positions at pool size 12, a few MB per block.
STEM_CHUNK_WINDOWS = 128


class ConvBranch(nn.Module):
    """The authors' convolutional branch over the one-hot sequence: stem conv, residual conv, attention pooling,
    the conv tower, average-pooled bins flattened and joined with the per-gene features into `branch_dim`."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        self.vocab_size = config.vocab_size
        self.alphabet_size = config.alphabet_size
        self.first_letter_token_id = config.first_letter_token_id
        self.bins = config.conv_pooled_positions
        self.stem = nn.Conv1d(
            config.alphabet_size, config.conv_stem_channels, config.conv_stem_kernel_size, padding="same"
        )
        self.stem_residual = ResidualConv(config.conv_stem_channels, config.conv_stem_channels, 1)
        self.stem_pool = AttentionPool(config.conv_stem_channels, config.conv_stem_pool_size)
        channels = [config.conv_stem_channels] + list(config.conv_tower_channels)
        self.tower = nn.ModuleList(
            ConvTowerBlock(c_in, c_out, config.conv_tower_kernel_size, config.conv_tower_pool_size)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )
        self.project = nn.Linear(channels[-1] * self.bins + config.num_features, config.branch_dim)
        self.dropout = nn.Dropout(config.dropout)

    def one_hot(self, input_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(batch, alphabet, length) one-hot of the alphabet letters; N, [MASK] and padding are all-zero. A lookup
        in a (vocab, alphabet) table: one pass, no int64 intermediate."""
        table = torch.zeros(self.vocab_size, self.alphabet_size, dtype=dtype, device=input_ids.device)
        first = self.first_letter_token_id
        table[first : first + self.alphabet_size] = torch.eye(self.alphabet_size, dtype=dtype, device=input_ids.device)
        return F.embedding(input_ids, table).transpose(1, 2)

    def stem_stage(
        self,
        input_ids: torch.Tensor | None,
        mask: torch.Tensor | None,
        start: int,
        end: int,
        one_hot: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stem conv, residual conv and attention pooling of positions [start, end), `start` a multiple of the pool
        size: the stem reads its receptive field around them, zeros beyond the sequence ('same' padding). It reads
        the one-hot of `input_ids`, or `one_hot` (batch, length, alphabet) if given (then `input_ids` is None)."""
        length, kernel = (input_ids if one_hot is None else one_hot).shape[1], self.stem.kernel_size[0]
        left, right = (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2
        first, last = max(start - left, 0), min(end + right, length)
        if one_hot is None:  # (batch, length, 4)
            one_hot = self.one_hot(input_ids[:, first:last], self.stem.weight.dtype).transpose(1, 2)
        else:
            one_hot = one_hot[:, first:last].to(self.stem.weight.dtype)
        one_hot = F.pad(one_hot, (0, 0, left - (start - first), right - (last - end)))
        if one_hot.device.type == "cpu":  # one product per sequence: the same bits in any batch (see `convolve`)
            x = convolve_windows(self.stem.weight, self.stem.bias, one_hot, channels_last=True)
        else:
            x = F.conv1d(one_hot.transpose(1, 2), self.stem.weight, self.stem.bias)
        mask = None if mask is None else mask[:, start:end]
        if mask is not None:
            x = x.mul_(mask[:, None, :])
        return self.stem_pool(self.stem_residual(x, mask), mask)

    def stem_in_chunks(
        self,
        input_ids: torch.Tensor | None,
        mask: torch.Tensor | None,
        windows: int = STEM_CHUNK_WINDOWS,
        one_hot: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stem stage over the whole sequence (of `input_ids`, or the given `one_hot`). With batch norms in
        evaluation mode every step is local, so it runs chunk by chunk of `windows` pooled windows: the full-length
        (batch, channels, length) intermediates, tens of megabytes each, are never built. Training normalises with
        statistics of the whole batch and so runs in one piece."""
        length = (input_ids if one_hot is None else one_hot).shape[1]
        chunk = windows * self.stem_pool.pool_size
        if self.training or length <= chunk:
            return self.stem_stage(input_ids, mask, 0, length, one_hot)
        parts = [
            self.stem_stage(input_ids, mask, start, min(start + chunk, length), one_hot)
            for start in range(0, length, chunk)
        ]
        pooled = torch.cat([part[0] for part in parts], dim=-1)
        return pooled, None if mask is None else torch.cat([part[1] for part in parts], dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        mask: torch.Tensor | None,
        features: torch.Tensor | None,
        one_hot: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The branch vector of `input_ids`, or of a one-hot input `one_hot` (batch, length, alphabet), read as is
        (with `input_ids` None): an exact one-hot of the ids gives the same bits."""
        x, mask = self.stem_in_chunks(input_ids, mask, one_hot=one_hot)
        for block in self.tower:
            x, mask = block(x, mask)
        flat = masked_adaptive_average(x, mask, self.bins).flatten(1)
        if features is not None:
            flat = torch.cat([flat, features.to(flat.dtype)], dim=-1)
        return self.dropout(F.relu(linear_per_row(self.project, flat)))


def unpadded_as_none(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The boolean mask, or None when no position is padded: unmasked attention takes the fastest kernels and the
    convolutional branch skips its masking."""
    if attention_mask is None:
        return None
    mask = attention_mask.bool()
    return None if bool(mask.all()) else mask


class PerceiverEncoder(nn.Module):
    """Embedding, latents (with the per-gene features appended to each), Perceiver layers, conv branch and the
    fusion into one summary vector: the layer-normed mean latent projected to `branch_dim`, next to the branch
    vector after it has queried the latents (1-head cross-attention, residual).

    It reads token ids or, for attribution methods that differentiate or interpolate the input, a one-hot input
    over the alphabet's letters (see `forward`). `input_names`: the names of both inputs in the model's forward,
    for error messages."""

    def __init__(
        self, config: PerceiverExpressionConfig, input_names: tuple[str, str] = ("input_ids", "inputs_one_hot")
    ):
        super().__init__()
        self.config = config
        self.input_names = input_names
        self.embedding = SequenceEmbedding(config)
        self.latents = nn.Parameter(torch.zeros(config.num_latents, config.latent_dim))
        self.layers = nn.ModuleList(PerceiverLayer(config) for _ in range(config.num_layers))
        self.latent_norm = nn.LayerNorm(config.latent_width, eps=config.layer_norm_eps)
        self.latent_summary = nn.Linear(config.latent_width, config.branch_dim)
        if config.use_conv_branch:
            self.conv_branch = ConvBranch(config)
            self.branch_query = Attention(
                config.branch_dim, config.latent_width, 1, config.branch_dim, config.dropout, query_per_row=True
            )
        self.summary_dim = config.branch_dim * (2 if config.use_conv_branch else 1)

    def check_inputs(
        self, input_ids: torch.Tensor | None, features: torch.Tensor | None, inputs_one_hot: torch.Tensor | None = None
    ) -> None:
        ids_name, one_hot_name = self.input_names
        if (input_ids is None) == (inputs_one_hot is None):
            given = "both" if input_ids is not None else "neither"
            raise ValueError(f"pass exactly one of `{ids_name}` and `{one_hot_name}`; got {given}")
        if input_ids is None:
            alphabet = self.config.alphabet_size
            if inputs_one_hot.dim() != 3 or inputs_one_hot.shape[-1] != alphabet:
                raise ValueError(
                    f"`{one_hot_name}` has shape {tuple(inputs_one_hot.shape)}; expected (batch, length, {alphabet}) "
                    "(config.alphabet_size)"
                )
            name, length = one_hot_name, inputs_one_hot.shape[1]
        else:
            name, length = ids_name, input_ids.shape[-1]
        limit = self.config.max_sequence_length
        if length > limit:
            raise ValueError(
                f"{name}: input of length {length} is longer than this model's max_sequence_length ({limit}); "
                "crop it or build a model with a larger max_sequence_length"
            )
        if length == 0:
            raise ValueError(f"{name} is empty: every sequence needs at least one token")
        expected = self.config.num_features
        if expected and features is None:
            raise ValueError(f"this model expects `features` of width {expected} (config.num_features); got none")
        if features is not None and (features.dim() != 2 or features.shape[-1] != expected):
            raise ValueError(
                f"`features` has shape {tuple(features.shape)}; expected (batch, {expected}) (config.num_features)"
            )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """The latents, the summary vector and, with `output_attentions`, the cross-attention weights of each layer
        (`CrossAttentionBlock.attention_weights`; else None).

        Reads exactly one of `input_ids` and `inputs_one_hot`: a float tensor (batch, length, alphabet_size) over
        the letters in token order (ids `first_letter_token_id ..`), which the embedding reads linearly (an
        all-zero row is the unknown letter, N for DNA; see `SequenceEmbedding`) and the convolutional branch reads
        as its one-hot; rows at padded positions are zeroed. Both paths are differentiable with respect to it. The
        cross-attention reads it through the embedded sequence (`SequenceEmbedding.read_one_hot_by`): with
        `sequence_attention` `"folded"` or `"reference"`, an exact one-hot of the ids gives the same bits as the
        ids; with the chunked kernel (`"auto"` on CPU) the ids' outputs differ from it by float32 rounding."""
        self.check_inputs(input_ids, features, inputs_one_hot)
        mask = unpadded_as_none(attention_mask)
        if inputs_one_hot is None:
            input_ids = input_ids.long()
            sequence = self.embedding.read_by(input_ids, mask, self.config)
        else:
            if mask is not None:
                inputs_one_hot = inputs_one_hot * mask[:, :, None].to(inputs_one_hot.dtype)
            sequence = self.embedding.read_one_hot_by(inputs_one_hot, mask, self.config)
        latents = self.latents.expand((input_ids if inputs_one_hot is None else inputs_one_hot).shape[0], -1, -1)
        if features is not None and self.config.num_features:
            per_latent = features.to(latents.dtype)[:, None, :].expand(-1, latents.shape[1], -1)
            latents = torch.cat([latents, per_latent], dim=-1)
        attentions = [] if output_attentions else None
        for layer in self.layers:
            if output_attentions:
                attentions.append(layer.cross_attention.attention_weights(latents, sequence))
            latents = layer(latents, sequence)
        attentions = None if attentions is None else tuple(attentions)
        summary = linear_per_row(self.latent_summary, self.latent_norm(latents).mean(dim=1))
        if not self.config.use_conv_branch:
            return latents, summary, attentions
        branch_features = features if self.config.num_features else None
        branch = self.conv_branch(input_ids, mask, branch_features, inputs_one_hot)
        branch = branch + self.branch_query(branch[:, None, :], latents)[:, 0]
        return latents, torch.cat([summary, branch], dim=-1), attentions


# The pipeline file of the bundle and its declaration in `config.json` (`pipeline_expression_perceiver.py` holds the
# same; it is not imported here, so that loading a model does not load `transformers.Pipeline`).
PIPELINE_FILE = "pipeline_expression_perceiver.py"
PIPELINE_DECLARATION = {
    "expression-regression": {
        "impl": "pipeline_expression_perceiver.ExpressionRegressionPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "type": "text",
    }
}


# Keyword arguments that transformers itself may pass to any model's forward (output switches, the Trainer's item
# count) and that these models read nothing from; any other unknown keyword is a caller's mistake. (The models read
# `output_attentions`: the cross-attention weights.)
TRANSFORMERS_FORWARD_KEYWORDS = frozenset({"return_dict", "output_hidden_states", "use_cache", "num_items_in_batch"})


def check_forward_keywords(model: nn.Module, keywords: dict) -> None:
    """Refuses a keyword argument the model does not read (a misspelt `attention_mask` or `feature` would otherwise
    be ignored and the prediction silently wrong)."""
    unknown = sorted(set(keywords) - TRANSFORMERS_FORWARD_KEYWORDS)
    if unknown:
        accepted = [name for name in inspect.signature(model.forward).parameters if name != "kwargs"]
        raise TypeError(
            f"{type(model).__name__}.forward() got unexpected keyword argument(s) {', '.join(unknown)}; it reads "
            f"{', '.join(accepted)}"
        )


class PerceiverExpressionPreTrainedModel(PreTrainedModel):
    config_class = PerceiverExpressionConfig
    base_model_prefix = "perceiver"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CrossAttentionBlock", "LatentSelfAttentionBlock"]
    _auto_class = "AutoModel"  # makes `save_pretrained` copy this bundle's code next to the weights
    # The loss is a mean over the batch: the Trainer must not rescale it as a sum over items (it would under DDP).
    accepts_loss_kwargs = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Class names written into `config.auto_map`, so a saved checkpoint loads with `trust_remote_code=True`.
        config_class, model_class, head_class = MODEL_CLASSES[self.config.model_type]
        self.config.auto_map = {
            "AutoConfig": f"configuration_expression_perceiver.{config_class.__name__}",
            "AutoModel": f"modeling_expression_perceiver.{model_class.__name__}",
            "AutoModelForSequenceClassification": f"modeling_expression_perceiver.{head_class.__name__}",
        }
        # The expression-regression pipeline travels with the code: `pipeline(model=..., trust_remote_code=True)`.
        # Code loaded from a Hub cache may lack its file; the checkpoint then declares no pipeline.
        pipeline_file = Path(__file__).with_name(PIPELINE_FILE)
        if pipeline_file.is_file():
            self.config.custom_pipelines = PIPELINE_DECLARATION
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        if pipeline_file.is_file() and kwargs.get("is_main_process", True):
            shutil.copyfile(pipeline_file, Path(save_directory) / PIPELINE_FILE)
        return saved

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, PerceiverEncoder):
            init.normal_(module.latents, mean=0.0, std=self.config_for(module).initializer_range)
        elif isinstance(module, SequenceEmbedding):
            table = sinusoidal_table(*module.position_table.shape)
            init.copy_(module.position_table, table.to(module.position_table.device))
        elif isinstance(module, nn.Conv1d) and module.kernel_size[0] > 1:
            init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, AttentionPool):
            # Twice the identity: pooling starts close to max-pooling of strong signals, as in Enformer.
            init.dirac_(module.to_logits.weight)
            with torch.no_grad():
                module.to_logits.weight.mul_(2.0)

    def config_for(self, module: nn.Module) -> PerceiverExpressionConfig:
        return getattr(module, "config", self.config)


def sequence_classification_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss of the head by `config.problem_type`, as Hugging Face's sequence classification models define it: MSE
    for regression (the default), cross-entropy for single-label and binary cross-entropy for multi-label
    classification."""
    if config.problem_type == "regression":
        labels = labels.to(logits.dtype).view(logits.shape[0], -1)
        if labels.shape[-1] != config.num_labels:
            raise ValueError(
                f"labels have {labels.shape[-1]} values per example; the model predicts {config.num_labels} "
                "(config.num_labels)"
            )
        if torch.isnan(labels).any():
            raise ValueError("labels contain NaN: remove or impute those examples before training")
        return F.mse_loss(logits.float(), labels.float())
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class SequenceHead(nn.Module):
    """Dropout and a linear map from the summary vector to `num_labels` outputs: expression values under
    regression, class logits under classification."""

    def __init__(self, summary_dim: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(summary_dim, num_labels)

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return linear_per_row(self.out, self.dropout(summary))


class _SingleSequencePerceiverModel(PerceiverExpressionPreTrainedModel):
    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> PerceiverExpressionOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, length)`): token ids; or else
        inputs_one_hot (`torch.FloatTensor` of shape `(batch, length, alphabet_size)`): the sequence one-hot over
            the alphabet's letters in token order, differentiable (see `PerceiverEncoder.forward`); an all-zero row
            is the unknown letter (N for DNA).
        output_attentions (`bool`, *optional*): also return the cross-attention weights (`cross_attentions`).
        """
        check_forward_keywords(self, kwargs)
        latents, summary, attentions = self.perceiver(
            input_ids, attention_mask, features, inputs_one_hot, bool(output_attentions)
        )
        return PerceiverExpressionOutput(last_hidden_state=latents, pooler_output=summary, cross_attentions=attentions)


class _SingleSequencePerceiverForSequenceClassification(PerceiverExpressionPreTrainedModel):
    _auto_class = "AutoModelForSequenceClassification"

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config)
        self.head = SequenceHead(self.perceiver.summary_dim, config.num_labels, config.dropout)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> PerceiverExpressionRegressionOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, length)`): token ids; or else
        inputs_one_hot (`torch.FloatTensor` of shape `(batch, length, alphabet_size)`): the sequence one-hot over
            the alphabet's letters in token order, differentiable (see `PerceiverEncoder.forward`); an all-zero row
            is the unknown letter (N for DNA).
        output_attentions (`bool`, *optional*): also return the cross-attention weights (`cross_attentions`).
        """
        check_forward_keywords(self, kwargs)
        _, summary, attentions = self.perceiver(
            input_ids, attention_mask, features, inputs_one_hot, bool(output_attentions)
        )
        logits = self.head(summary)
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        return PerceiverExpressionRegressionOutput(loss=loss, logits=logits, cross_attentions=attentions)

    def score_substitutions(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        batch_size: int = 64,
    ) -> torch.Tensor:
        r"""
        The logits (mutants, num_labels) of substitution mutants of one sequence, as this forward gives them, at the
        cost of what each substitution changes (`substitutions_expression_perceiver.py`, which says when it applies).

        input_ids (`torch.LongTensor` of shape `(length,)` or `(1, length)`): the reference sequence.
        positions, tokens (`torch.LongTensor` of shape `(mutants, k)` or `(mutants,)`): mutant i has `tokens[i, j]`
            at `positions[i, j]` for every j.
        """
        # Imported here: the file travels with the checkpoint's code, and loading a model does not need it.
        from .substitutions_expression_perceiver import score_substitutions

        return score_substitutions(self, input_ids, positions, tokens, attention_mask, features, batch_size)


class DNAPerceiverModel(_SingleSequencePerceiverModel):
    """DNAPerceiver encoder: promoter tokens (+ optional per-gene `features`) to latents and a summary vector."""

    config_class = DNAPerceiverConfig


class DNAPerceiverForSequenceClassification(_SingleSequencePerceiverForSequenceClassification):
    """DNAPerceiver with a regression head (`num_labels` outputs, MSE loss): mRNA level from the promoter."""

    config_class = DNAPerceiverConfig


class ProteinPerceiverModel(_SingleSequencePerceiverModel):
    """ProteinPerceiver encoder: amino-acid tokens to latents and a summary vector."""

    config_class = ProteinPerceiverConfig


class ProteinPerceiverForSequenceClassification(_SingleSequencePerceiverForSequenceClassification):
    """ProteinPerceiver with a regression head (`num_labels` outputs, MSE loss): protein level from sequence."""

    config_class = ProteinPerceiverConfig


# Checkpoints written while the Protein&DNA head held its encoders under `model.` (the other families' heads and
# every base model hold them at the top level); read into today's layout, which is what they are saved in again.
PROTEIN_DNA_HEAD_KEY_MAPPING = {r"^model\.(perceiver|protein_perceiver)\.": r"\1."}


class ProteinDNAPerceiverPreTrainedModel(PerceiverExpressionPreTrainedModel):
    """The Protein&DNA family: a promoter encoder (`perceiver`) and a protein encoder (`protein_perceiver`), held
    under the same names by the base model and the head, so either checkpoint loads into the other."""

    config_class = ProteinDNAPerceiverConfig

    def __init__(self, config: ProteinDNAPerceiverConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config.dna_config)
        self.protein_perceiver = PerceiverEncoder(
            config.protein_config, input_names=("protein_input_ids", "protein_inputs_one_hot")
        )
        self.summary_dim = self.perceiver.summary_dim + self.protein_perceiver.summary_dim

    @classmethod
    def from_pretrained(cls, *args, key_mapping: dict[str, str] | None = None, **kwargs):
        """`PreTrainedModel.from_pretrained`, also reading checkpoints of the earlier head layout (`model.`)."""
        key_mapping = {**PROTEIN_DNA_HEAD_KEY_MAPPING, **(key_mapping or {})}
        loaded = super().from_pretrained(*args, key_mapping=key_mapping, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        # transformers reverses a load's renaming when saving; the earlier layout is read, never written.
        model._weight_conversions = [
            conversion
            for conversion in getattr(model, "_weight_conversions", None) or []
            if conversion._original_source_patterns != list(PROTEIN_DNA_HEAD_KEY_MAPPING)
        ] or None
        return loaded

    def load_state_dict(self, state_dict, *args, **kwargs):
        """`nn.Module.load_state_dict`, also taking state dicts of the earlier head layout (`model.`), as a
        `Trainer` resuming from or selecting an older checkpoint passes them."""
        renamed = {}
        for key, value in state_dict.items():
            for pattern, replacement in PROTEIN_DNA_HEAD_KEY_MAPPING.items():
                key = re.sub(pattern, replacement, key)
            renamed[key] = value
        return super().load_state_dict(renamed, *args, **kwargs)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def encode(
        self,
        input_ids: torch.Tensor | None,
        protein_input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        protein_attention_mask: torch.Tensor | None,
        features: torch.Tensor | None,
        inputs_one_hot: torch.Tensor | None = None,
        protein_inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> PerceiverExpressionOutput:
        """Both encoders' outputs; each reads its ids or its one-hot input (see `PerceiverEncoder.forward`)."""
        latents, summary, attentions = self.perceiver(
            input_ids, attention_mask, features, inputs_one_hot, output_attentions
        )
        protein_latents, protein_summary, protein_attentions = self.protein_perceiver(
            protein_input_ids, protein_attention_mask, None, protein_inputs_one_hot, output_attentions
        )
        return PerceiverExpressionOutput(
            last_hidden_state=latents,
            pooler_output=torch.cat([summary, protein_summary], dim=-1),
            protein_last_hidden_state=protein_latents,
            cross_attentions=attentions,
            protein_cross_attentions=protein_attentions,
        )


class ProteinDNAPerceiverModel(ProteinDNAPerceiverPreTrainedModel):
    """A promoter encoder and a protein encoder side by side; their summaries are concatenated."""

    def __init__(self, config: ProteinDNAPerceiverConfig):
        super().__init__(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        protein_input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        protein_attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        inputs_one_hot: torch.Tensor | None = None,
        protein_inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> PerceiverExpressionOutput:
        r"""
        input_ids / inputs_one_hot: the promoter's token ids or its one-hot input (exactly one of them).
        protein_input_ids / protein_inputs_one_hot: the protein's token ids or its one-hot input (exactly one).
        output_attentions (`bool`, *optional*): also return both encoders' cross-attention weights.
        """
        check_forward_keywords(self, kwargs)
        return self.encode(
            input_ids,
            protein_input_ids,
            attention_mask,
            protein_attention_mask,
            features,
            inputs_one_hot,
            protein_inputs_one_hot,
            bool(output_attentions),
        )


class ProteinDNAPerceiverForSequenceClassification(ProteinDNAPerceiverPreTrainedModel):
    """Protein&DNAPerceiver with a regression head; `num_labels=2` predicts mRNA and protein levels together."""

    _auto_class = "AutoModelForSequenceClassification"

    def __init__(self, config: ProteinDNAPerceiverConfig):
        super().__init__(config)
        self.head = SequenceHead(self.summary_dim, config.num_labels, config.dropout)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        protein_input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        protein_attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_one_hot: torch.Tensor | None = None,
        protein_inputs_one_hot: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> PerceiverExpressionRegressionOutput:
        r"""
        input_ids / inputs_one_hot: the promoter's token ids or its one-hot input (exactly one of them).
        protein_input_ids / protein_inputs_one_hot: the protein's token ids or its one-hot input (exactly one).
        output_attentions (`bool`, *optional*): also return both encoders' cross-attention weights.
        """
        check_forward_keywords(self, kwargs)
        outputs = self.encode(
            input_ids,
            protein_input_ids,
            attention_mask,
            protein_attention_mask,
            features,
            inputs_one_hot,
            protein_inputs_one_hot,
            bool(output_attentions),
        )
        logits = self.head(outputs.pooler_output)
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        return PerceiverExpressionRegressionOutput(
            loss=loss,
            logits=logits,
            cross_attentions=outputs.cross_attentions,
            protein_cross_attentions=outputs.protein_cross_attentions,
        )


# Each family's configuration, base model and model with head (`families.py` adds tokenizers and alphabets).
MODEL_CLASSES = {
    "dna_perceiver": (DNAPerceiverConfig, DNAPerceiverModel, DNAPerceiverForSequenceClassification),
    "protein_perceiver": (ProteinPerceiverConfig, ProteinPerceiverModel, ProteinPerceiverForSequenceClassification),
    "protein_dna_perceiver": (
        ProteinDNAPerceiverConfig,
        ProteinDNAPerceiverModel,
        ProteinDNAPerceiverForSequenceClassification,
    ),
}

__all__ = [
    "PerceiverExpressionOutput",
    "PerceiverExpressionRegressionOutput",
    "PerceiverExpressionPreTrainedModel",
    "DNAPerceiverModel",
    "DNAPerceiverForSequenceClassification",
    "ProteinPerceiverModel",
    "ProteinPerceiverForSequenceClassification",
    "ProteinDNAPerceiverModel",
    "ProteinDNAPerceiverForSequenceClassification",
]
