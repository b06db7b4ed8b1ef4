"""PyTorch DNA, Protein and Protein&DNA Perceivers for expression regression (after Stefanini et al., 2023).

Reading order: the sequence embedding, the Perceiver (latents, cross-attention, latent self-attention), the
convolutional branch, the fusion of both into one summary vector, then the models.
"""

import math
from dataclasses import dataclass

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
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    protein_last_hidden_state: torch.FloatTensor | None = None


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The Transformer's sinusoidal position table, (length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class SequenceEmbedding(nn.Module):
    """Token embedding plus a sinusoidal position encoding, learnable or fixed."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        self.max_sequence_length = config.max_sequence_length
        self.token_embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_token_id)
        table = torch.zeros(config.max_sequence_length, config.embedding_dim)
        if config.position_encoding == "learnable":
            self.position_table = nn.Parameter(table)
        else:
            self.register_buffer("position_table", table, persistent=False)

    def forward(self, input_ids: torch.LongTensor) -> torch.Tensor:
        return self.token_embedding(input_ids) + self.position_table[: input_ids.shape[1]]


class Attention(nn.Module):
    """Multi-head attention of `query_width` queries over `context_width` keys/values through SDPA."""

    def __init__(self, query_width: int, context_width: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.to_query = nn.Linear(query_width, heads * head_dim, bias=False)
        self.to_key_value = nn.Linear(context_width, 2 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, query_width)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = self.split_heads(self.to_query(x))
        key, value = map(self.split_heads, self.to_key_value(context).chunk(2, dim=-1))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return self.dropout(self.to_out(out.transpose(1, 2).flatten(2)))


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

    def forward(self, latents: torch.Tensor, sequence: torch.Tensor, sequence_mask: torch.Tensor) -> torch.Tensor:
        latents = latents + self.attention(self.latent_norm(latents), self.sequence_norm(sequence), sequence_mask)
        return latents + self.feed_forward(latents)


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

    def forward(self, latents: torch.Tensor, sequence: torch.Tensor, sequence_mask: torch.Tensor) -> torch.Tensor:
        latents = self.cross_attention(latents, sequence, sequence_mask)
        for block in self.self_attention:
            latents = block(latents)
        return latents


class AttentionPool(nn.Module):
    """Enformer's attention pooling over windows of `pool_size` positions, ignoring masked positions.

    The last window may be partial, so a sequence gives the same pooled values alone or right-padded in a batch.
    """

    def __init__(self, channels: int, pool_size: int):
        super().__init__()
        self.pool_size = pool_size
        self.to_logits = nn.Conv1d(channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, length = x.shape
        windows = -(-length // self.pool_size)
        padding = windows * self.pool_size - length
        x = F.pad(x, (0, padding))
        mask = F.pad(mask, (0, padding))
        logits = self.to_logits(x).masked_fill(~mask[:, None, :], float("-inf"))
        weights = logits.view(batch, channels, windows, self.pool_size).softmax(dim=-1)
        weights = weights.nan_to_num(0.0)  # windows made only of padding
        pooled = (x.view(batch, channels, windows, self.pool_size) * weights).sum(dim=-1)
        pooled_mask = mask.view(batch, windows, self.pool_size).any(dim=-1)
        return pooled, pooled_mask


class ResidualConv(nn.Module):
    """x + Conv(GELU(BatchNorm(x))), Enformer's conv block inside a residual; padded positions kept at zero."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_channels)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same")

    def block(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(F.gelu(self.norm(x)) * mask[:, None, :]) * mask[:, None, :]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.block(x, mask)


class ConvTowerBlock(nn.Module):
    """Conv block changing the channels, a residual conv, then attention pooling."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, pool_size: int):
        super().__init__()
        self.conv = ResidualConv(in_channels, out_channels, kernel_size)
        self.residual = ResidualConv(out_channels, out_channels, 1)
        self.pool = AttentionPool(out_channels, pool_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.residual(self.conv.block(x, mask), mask)
        return self.pool(x, mask)


def masked_adaptive_average(x: torch.Tensor, mask: torch.Tensor, bins: int) -> torch.Tensor:
    """Averages each sequence's valid positions into `bins` equal bins (as `adaptive_avg_pool1d` would on the
    unpadded sequence), so the flattened vector has the same size whatever the input length."""
    lengths = mask.sum(dim=-1, keepdim=True)  # (batch, 1)
    bin_index = torch.arange(bins, device=x.device)[None, :, None]  # (1, bins, 1)
    start = torch.div(bin_index * lengths[:, :, None], bins, rounding_mode="floor")
    end = torch.div((bin_index + 1) * lengths[:, :, None] + bins - 1, bins, rounding_mode="floor")
    position = torch.arange(x.shape[-1], device=x.device)[None, None, :]
    membership = ((position >= start) & (position < end)).to(x.dtype)  # (batch, bins, length)
    return torch.einsum("bcl,bkl->bck", x, membership) / membership.sum(dim=-1)[:, None, :].clamp(min=1)


class ConvBranch(nn.Module):
    """The authors' convolutional branch over the one-hot sequence: stem conv, residual conv, attention pooling,
    the conv tower, average-pooled bins flattened and joined with the per-gene features into `branch_dim`."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
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
        """(batch, alphabet, length) one-hot of the alphabet letters; N, [MASK] and padding are all-zero."""
        letter = input_ids.long() - self.first_letter_token_id
        is_letter = (letter >= 0) & (letter < self.alphabet_size)
        one_hot = F.one_hot(letter.clamp(0, self.alphabet_size - 1), self.alphabet_size) * is_letter[..., None]
        return one_hot.transpose(1, 2).to(dtype)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        x = self.stem(self.one_hot(input_ids, self.stem.weight.dtype)) * mask[:, None, :]
        x, mask = self.stem_pool(self.stem_residual(x, mask), mask)
        for block in self.tower:
            x, mask = block(x, mask)
        flat = masked_adaptive_average(x, mask, self.bins).flatten(1)
        if features is not None:
            flat = torch.cat([flat, features.to(flat.dtype)], dim=-1)
        return self.dropout(F.relu(self.project(flat)))


class PerceiverEncoder(nn.Module):
    """Embedding, latents (with the per-gene features appended to each), Perceiver layers, conv branch and the
    fusion into one summary vector: the layer-normed mean latent projected to `branch_dim`, next to the branch
    vector after it has queried the latents (1-head cross-attention, residual)."""

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__()
        self.config = config
        self.embedding = SequenceEmbedding(config)
        self.latents = nn.Parameter(torch.zeros(config.num_latents, config.latent_dim))
        self.layers = nn.ModuleList(PerceiverLayer(config) for _ in range(config.num_layers))
        self.latent_norm = nn.LayerNorm(config.latent_width, eps=config.layer_norm_eps)
        self.latent_summary = nn.Linear(config.latent_width, config.branch_dim)
        if config.use_conv_branch:
            self.conv_branch = ConvBranch(config)
            self.branch_query = Attention(config.branch_dim, config.latent_width, 1, config.branch_dim, config.dropout)
        self.summary_dim = config.branch_dim * (2 if config.use_conv_branch else 1)

    def check_inputs(self, input_ids: torch.Tensor, features: torch.Tensor | None) -> None:
        length, limit = input_ids.shape[-1], self.config.max_sequence_length
        if length > limit:
            raise ValueError(
                f"input of length {length} is longer than this model's max_sequence_length ({limit}); "
                "crop it or build a model with a larger max_sequence_length"
            )
        if length == 0:
            raise ValueError("input_ids is empty: every sequence needs at least one token")
        expected = self.config.num_features
        if expected and features is None:
            raise ValueError(f"this model expects `features` of width {expected} (config.num_features); got none")
        if features is not None and (features.dim() != 2 or features.shape[-1] != expected):
            raise ValueError(
                f"`features` has shape {tuple(features.shape)}; expected (batch, {expected}) (config.num_features)"
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_inputs(input_ids, features)
        input_ids = input_ids.long()
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        sequence = self.embedding(input_ids)
        latents = self.latents.expand(input_ids.shape[0], -1, -1).to(sequence.dtype)
        if features is not None and self.config.num_features:
            per_latent = features.to(sequence.dtype)[:, None, :].expand(-1, latents.shape[1], -1)
            latents = torch.cat([latents, per_latent], dim=-1)
        for layer in self.layers:
            latents = layer(latents, sequence, mask)
        summary = self.latent_summary(self.latent_norm(latents).mean(dim=1))
        if not self.config.use_conv_branch:
            return latents, summary
        branch = self.conv_branch(input_ids, mask, features if self.config.num_features else None)
        branch = branch + self.branch_query(branch[:, None, :], latents)[:, 0]
        return latents, torch.cat([summary, branch], dim=-1)


# Class names written into `config.auto_map`, so a saved checkpoint loads with `trust_remote_code=True` alone.
AUTO_CLASS_NAMES = {
    "dna_perceiver": ("DNAPerceiverConfig", "DNAPerceiverModel", "DNAPerceiverForSequenceClassification"),
    "protein_perceiver": (
        "ProteinPerceiverConfig",
        "ProteinPerceiverModel",
        "ProteinPerceiverForSequenceClassification",
    ),
    "protein_dna_perceiver": (
        "ProteinDNAPerceiverConfig",
        "ProteinDNAPerceiverModel",
        "ProteinDNAPerceiverForSequenceClassification",
    ),
}


class PerceiverExpressionPreTrainedModel(PreTrainedModel):
    config_class = PerceiverExpressionConfig
    base_model_prefix = "perceiver"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["CrossAttentionBlock", "LatentSelfAttentionBlock"]
    _auto_class = "AutoModel"  # makes `save_pretrained` copy this bundle's code next to the weights
    # The loss is a mean over the batch: the Trainer must not rescale it as a sum over items (it would under DDP).
    accepts_loss_kwargs = False

    def save_pretrained(self, save_directory, *args, **kwargs):
        config_name, model_name, head_name = AUTO_CLASS_NAMES[self.config.model_type]
        self.config.auto_map = {
            "AutoConfig": f"configuration_expression_perceiver.{config_name}",
            "AutoModel": f"modeling_expression_perceiver.{model_name}",
            "AutoModelForSequenceClassification": f"modeling_expression_perceiver.{head_name}",
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

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


def regression_loss(config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Loss of the head as Hugging Face's sequence classification models define it (MSE for regression)."""
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


class RegressionHead(nn.Module):
    def __init__(self, summary_dim: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(summary_dim, num_labels)

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(summary))


class _SingleSequencePerceiverModel(PerceiverExpressionPreTrainedModel):
    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverExpressionOutput:
        latents, summary = self.perceiver(input_ids, attention_mask, features)
        return PerceiverExpressionOutput(last_hidden_state=latents, pooler_output=summary)


class _SingleSequencePerceiverForRegression(PerceiverExpressionPreTrainedModel):
    _auto_class = "AutoModelForSequenceClassification"

    def __init__(self, config: PerceiverExpressionConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config)
        self.head = RegressionHead(self.perceiver.summary_dim, config.num_labels, config.dropout)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        _, summary = self.perceiver(input_ids, attention_mask, features)
        logits = self.head(summary)
        loss = None if labels is None else regression_loss(self.config, logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class DNAPerceiverModel(_SingleSequencePerceiverModel):
    """DNAPerceiver encoder: promoter tokens (+ optional per-gene `features`) to latents and a summary vector."""

    config_class = DNAPerceiverConfig


class DNAPerceiverForSequenceClassification(_SingleSequencePerceiverForRegression):
    """DNAPerceiver with a regression head (`num_labels` outputs, MSE loss): mRNA level from the promoter."""

    config_class = DNAPerceiverConfig


class ProteinPerceiverModel(_SingleSequencePerceiverModel):
    """ProteinPerceiver encoder: amino-acid tokens to latents and a summary vector."""

    config_class = ProteinPerceiverConfig


class ProteinPerceiverForSequenceClassification(_SingleSequencePerceiverForRegression):
    """ProteinPerceiver with a regression head (`num_labels` outputs, MSE loss): protein level from sequence."""

    config_class = ProteinPerceiverConfig


class ProteinDNAPerceiverPreTrainedModel(PerceiverExpressionPreTrainedModel):
    config_class = ProteinDNAPerceiverConfig


class ProteinDNAPerceiverModel(ProteinDNAPerceiverPreTrainedModel):
    """A promoter encoder and a protein encoder side by side; their summaries are concatenated."""

    def __init__(self, config: ProteinDNAPerceiverConfig):
        super().__init__(config)
        self.perceiver = PerceiverEncoder(config.dna_config)
        self.protein_perceiver = PerceiverEncoder(config.protein_config)
        self.summary_dim = self.perceiver.summary_dim + self.protein_perceiver.summary_dim
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.perceiver.embedding.token_embedding

    def forward(
        self,
        input_ids: torch.Tensor,
        protein_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        protein_attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        **kwargs,
    ) -> PerceiverExpressionOutput:
        latents, summary = self.perceiver(input_ids, attention_mask, features)
        protein_latents, protein_summary = self.protein_perceiver(protein_input_ids, protein_attention_mask)
        return PerceiverExpressionOutput(
            last_hidden_state=latents,
            pooler_output=torch.cat([summary, protein_summary], dim=-1),
            protein_last_hidden_state=protein_latents,
        )


class ProteinDNAPerceiverForSequenceClassification(ProteinDNAPerceiverPreTrainedModel):
    """Protein&DNAPerceiver with a regression head; `num_labels=2` predicts mRNA and protein levels together."""

    _auto_class = "AutoModelForSequenceClassification"

    def __init__(self, config: ProteinDNAPerceiverConfig):
        super().__init__(config)
        self.model = ProteinDNAPerceiverModel(config)
        self.head = RegressionHead(self.model.summary_dim, config.num_labels, config.dropout)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        protein_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        protein_attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.model(input_ids, protein_input_ids, attention_mask, protein_attention_mask, features)
        logits = self.head(outputs.pooler_output)
        loss = None if labels is None else regression_loss(self.config, logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


__all__ = [
    "PerceiverExpressionOutput",
    "PerceiverExpressionPreTrainedModel",
    "DNAPerceiverModel",
    "DNAPerceiverForSequenceClassification",
    "ProteinPerceiverModel",
    "ProteinPerceiverForSequenceClassification",
    "ProteinDNAPerceiverModel",
    "ProteinDNAPerceiverForSequenceClassification",
]
