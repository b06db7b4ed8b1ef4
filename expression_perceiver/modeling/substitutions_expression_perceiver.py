"""Scores of many substitutions of one sequence, each at the cost of what it changes (DNAPerceiver, ProteinPerceiver).

A saturation scan scores every letter at every position of one sequence: thousands of mutants that differ from the
reference in one position (or a few). The full forward pass reads all of each mutant's sequence; this path reads the
reference once, caches what a substitution leaves unchanged, and computes per mutant only what it changes. It gives
the logits the full forward gives each mutant, to float32 rounding.

API:

- `model.score_substitutions(input_ids, positions, tokens, attention_mask=None, features=None, batch_size=64)`, a
  method of `DNAPerceiverForSequenceClassification` and `ProteinPerceiverForSequenceClassification` (also when the
  model is loaded with `trust_remote_code`), or `score_substitutions(model, ...)` here: `input_ids` (length,) or (1,
  length) is the reference, right-padded if `attention_mask` says so; `positions` and `tokens` are (mutants, k) long
  tensors (or (mutants,) for k = 1): mutant i has token `tokens[i, j]` at position `positions[i, j]` for every j, k
  distinct positions of the valid part, any token id of the vocabulary (a letter, N / X, ...). It returns the logits
  (mutants, num_labels) that `model(mutant_ids, attention_mask, features).logits` would give, in `batch_size`
  mutants at a time.
- `SubstitutionScorer(model, input_ids, attention_mask, features)` holds the reference's caches; its
  `score(positions, tokens, batch_size)` scores any number of mutants of that reference.
- `supports_incremental(model_or_config)` and `unsupported_reason(model_or_config)`: whether the path applies (and
  why not). Where it does not, `SubstitutionScorer` and `score_substitutions` raise a ValueError with the reason and
  the caller runs the full forward.

The caches hold the model's weights as they were when the scorer was built: build a new scorer after changing them.

Exact (to float32 rounding) for a model with a head, one Perceiver layer (`num_layers == 1`), float32 parameters,
in evaluation mode, with or without the convolutional branch and per-gene features, any `sequence_attention`
implementation (they compute the same function). Refused: `num_layers > 1` (the second layer's queries are latents
that depend on every position), training mode (dropout, batch statistics), other parameter dtypes, the
Protein&DNAPerceiver. Insertions and deletions shift every later position and are not substitutions: score them with
the full forward.

How. The cross-attention's queries (latents, features appended, through the block's layer norm and the folded key
projection, as `CrossAttentionBlock.read_sequence` builds them) do not depend on the sequence. Per query row, the
reference's read is N / D with N = sum_j exp(s_j - m) x_j and D = sum_j exp(s_j - m), x_j the layer-normalised (no
affine) embedded position j, s_j its score and m the row's maximum, all in float64; a substitution at p replaces
x_p and s_p only, so N and D change by one term each, and a mutant's read is the reference's rescaled by D / D'
plus 2k vectors (`ReadTerms`). Rows where the substituted positions held nearly all the weight (the subtraction
would cancel) are summed again over the whole sequence. The cross-attention block is affine in the read up to its
feed-forward, and that feed-forward's first projection is linear after each row's layer norm: both are computed from
the rescaling and the 2k vectors (`CrossBlockCache`), without a product per latent. The latent self-attention
blocks, the summary and the head then run on each mutant's latents as in the forward pass: they are most of the
cost, the same per mutant as in the forward pass (for the default model on one CPU core, about 2 ms of its 15-30).

The convolutional branch is local in evaluation mode (batch norms use running statistics): a substitution changes
the stem's outputs within its kernel's reach, hence a few pooled windows, hence a few positions of each tower block
and a few of the bins averaged at the end. Each level's reference activations are cached; per substituted position
the affected pooled windows of each level are recomputed from the level below, read with enough context (the
reference's values, the mutant's own recomputed windows where they overlap, zeros beyond the sequence's ends as the
'same' padding gives) through the model's own modules. The last level is small and averaged whole.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .kernels_expression_perceiver import linear_per_row

# The model types whose head this path reproduces: one sequence, one encoder.
SUPPORTED_MODEL_TYPES = ("dna_perceiver", "protein_perceiver")

# A row whose denominator after the substitution is below this fraction of the reference's has lost its largest
# terms: float64 keeps about 16 digits of the subtraction, so the result would keep about 10. Such rows (rare: one
# position holding nearly all of a query's weight) are summed again over the whole sequence.
CANCELLATION_LIMIT = 1e-6

# The cross-attention block's closed form (`CrossBlockCache`) adds the reference's terms scaled by D / D' in float32:
# where the substituted positions held most of a row's weight, D / D' is large, the terms nearly cancel and float32
# would amplify its rounding by as much. Mutants with a row scaled beyond this run the block on their read instead.
DIRECT_SCALE_LIMIT = 2.0

# Mutants whose latents go through the latent blocks together: their intermediates (16 x 128 latents x 512 wide for
# the default model) stay in a core's cache, which runs these blocks about a quarter faster per mutant on CPU than
# passes of 64.
LATENT_PASS_MUTANTS = 8


def unsupported_reason(model_or_config: nn.Module | object) -> str | None:
    """Why the incremental path cannot reproduce this model's forward pass, or None where it can. Takes a model
    (every condition) or a configuration (those of the configuration only)."""
    is_model = isinstance(model_or_config, nn.Module)
    config = model_or_config.config if is_model else model_or_config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"substitution scoring supports the DNAPerceiver and the ProteinPerceiver, not {model_type!r}"
    if config.num_layers != 1:
        return (
            f"substitution scoring needs one Perceiver layer (num_layers is {config.num_layers}): later layers' "
            "queries depend on the whole sequence"
        )
    if not is_model:
        return None
    if not hasattr(model_or_config, "head"):
        return "substitution scoring needs a model with a head (…ForSequenceClassification)"
    if model_or_config.training:
        return "substitution scoring needs the model in evaluation mode (model.eval()): dropout, batch statistics"
    dtypes = {parameter.dtype for parameter in model_or_config.parameters()}
    if dtypes != {torch.float32}:
        return f"substitution scoring needs float32 parameters, got {sorted(map(str, dtypes))}"
    return None


def supports_incremental(model_or_config: nn.Module | object) -> bool:
    """Whether `score_substitutions` applies to this model (or configuration): see `unsupported_reason`."""
    return unsupported_reason(model_or_config) is None


def score_substitutions(
    model: nn.Module,
    input_ids: torch.Tensor,
    positions: torch.Tensor,
    tokens: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """The logits (mutants, num_labels) of each mutant of `input_ids` (see the module's docstring)."""
    scorer = SubstitutionScorer(model, input_ids, attention_mask, features)
    return scorer.score(positions, tokens, batch_size)


def reference_ids(config, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The reference's valid tokens, (length,): a right-padded sequence is the same as its valid part to the model
    (padding is masked in the attention and zero in the branch, as beyond an unpadded sequence's ends)."""
    if input_ids.dim() == 2 and input_ids.shape[0] == 1:
        input_ids = input_ids[0]
    if input_ids.dim() != 1:
        raise ValueError(f"input_ids must be one sequence, (length,) or (1, length); got {tuple(input_ids.shape)}")
    if attention_mask is not None:
        mask = attention_mask.reshape(-1).bool()
        if mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} for input_ids {input_ids.shape}")
        length = int(mask.sum())
        if not bool(mask[:length].all()):
            raise ValueError("attention_mask must mark a prefix of the sequence (right padding)")
        input_ids = input_ids[:length]
    if not 1 <= input_ids.shape[0] <= config.max_sequence_length:
        raise ValueError(
            f"the sequence has {input_ids.shape[0]} valid tokens; expected 1 to {config.max_sequence_length} "
            "(config.max_sequence_length)"
        )
    return input_ids.long()


def reference_features(config, features: torch.Tensor | None) -> torch.Tensor | None:
    """The per-gene features as one row (1, num_features), or None for a model without them."""
    expected = config.num_features
    if not expected:
        if features is not None:
            raise ValueError("this model reads no features (config.num_features is 0); pass none")
        return None
    if features is None or features.numel() != expected:
        shape = None if features is None else tuple(features.shape)
        raise ValueError(f"this model expects features of width {expected} (config.num_features); got {shape}")
    return features.reshape(1, expected).float()


def substitutions(positions: torch.Tensor, tokens: torch.Tensor, length: int, vocab_size: int):
    """`positions` and `tokens` as (mutants, k) long tensors, checked: positions in the sequence's valid part and
    distinct within a mutant, tokens in the vocabulary."""
    positions, tokens = torch.as_tensor(positions).long(), torch.as_tensor(tokens).long()
    if positions.dim() == 1:
        positions, tokens = positions[:, None], tokens.reshape(-1, 1)
    if positions.dim() != 2 or positions.shape != tokens.shape or positions.shape[1] < 1:
        raise ValueError(
            f"positions and tokens must both be (mutants, k), k >= 1; got {tuple(positions.shape)} and "
            f"{tuple(tokens.shape)}"
        )
    if positions.numel() and not (0 <= int(positions.min()) and int(positions.max()) < length):
        raise ValueError(f"positions must lie in the sequence's valid part, 0 to {length - 1}")
    if positions.numel() and not (0 <= int(tokens.min()) and int(tokens.max()) < vocab_size):
        raise ValueError(f"tokens must be ids of the vocabulary, 0 to {vocab_size - 1}")
    if positions.shape[1] > 1 and bool((positions.sort(dim=1).values.diff(dim=1) == 0).any()):
        raise ValueError("a mutant substitutes each position at most once: positions repeat within a row")
    return positions, tokens


class SubstitutionScorer:
    """A reference sequence's caches, from which `score` computes the logits of any of its substitution mutants."""

    def __init__(
        self,
        model: nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(reason)
        self.model, self.encoder, self.config = model, model.perceiver, model.config
        device = self.encoder.latents.device
        self.ids = reference_ids(self.config, input_ids.to(device), attention_mask)
        self.features = reference_features(self.config, None if features is None else features.to(device))
        layer = self.encoder.layers[0]
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            self.latents = initial_latents(self.encoder, self.features)
            self.read = ReadCache.build(self.encoder, self.latents, self.ids)
            self.cross = CrossBlockCache.build(layer.cross_attention, self.latents, self.read.reference_read)
            self.projections = [query_key_value_weight(block.attention) for block in layer.self_attention]
            self.branch = BranchCache.build(self.encoder.conv_branch, self.ids) if self.config.use_conv_branch else None

    def score(self, positions: torch.Tensor, tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """The logits (mutants, num_labels) of the mutants `positions`, `tokens` (see the module's docstring)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        positions, tokens = substitutions(positions, tokens, self.ids.shape[0], self.config.vocab_size)
        positions, tokens = positions.to(self.ids.device), tokens.to(self.ids.device)
        if positions.shape[0] == 0:
            return self.ids.new_zeros((0, self.config.num_labels), dtype=torch.float32)
        with torch.no_grad(), torch.autocast(device_type=self.ids.device.type, enabled=False):
            parts = [
                self.score_batch(positions[start : start + batch_size], tokens[start : start + batch_size])
                for start in range(0, positions.shape[0], batch_size)
            ]
        return torch.cat(parts)

    def score_batch(self, positions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The head's logits for one batch of mutants: the reads and branch vectors of the whole batch, then the
        latents and the head a few mutants at a time."""
        terms = self.read.terms(positions, tokens)
        branch = None if self.branch is None else self.branch.vector(positions, tokens, self.features)
        # On CPU the latents go through the blocks a few mutants at a time (LATENT_PASS_MUTANTS); a GPU takes them all.
        step = LATENT_PASS_MUTANTS if positions.device.type == "cpu" else positions.shape[0]
        parts = []
        for start in range(0, positions.shape[0], step):
            part = slice(start, start + step)
            latents = self.layer_output(terms.part(part), positions[part])
            parts.append(self.logits(latents, None if branch is None else branch[part]))
        return torch.cat(parts)

    def layer_output(self, terms: "ReadTerms", positions: torch.Tensor) -> torch.Tensor:
        """The Perceiver layer's output latents (batch, num_latents, width) of each mutant."""
        layer = self.encoder.layers[0]
        latents = self.cross.output(terms)
        direct = (terms.cancelled | (terms.scale > DIRECT_SCALE_LIMIT)).any(dim=1).nonzero()[:, 0]
        if direct.numel():  # the block runs on their reads (summed again where cancelled), as the forward runs it
            read = self.read.exact_read(terms.part(direct), positions[direct]).float()
            latents[direct] = cross_attention_block(layer.cross_attention, self.latents, read)
        for block, projection in zip(layer.self_attention, self.projections, strict=True):
            latents = self_attention_block(block, projection, latents)
        return latents

    def logits(self, latents: torch.Tensor, branch: torch.Tensor | None) -> torch.Tensor:
        """The head's logits from the mutants' latents and branch vectors, as `PerceiverEncoder.forward` and the head
        compute them."""
        encoder = self.encoder
        summary = linear_per_row(encoder.latent_summary, encoder.latent_norm(latents).mean(dim=1))
        if branch is not None:
            branch = branch + branch_query(encoder.branch_query, branch, latents)
            summary = torch.cat([summary, branch], dim=-1)
        return self.model.head(summary)


def initial_latents(encoder: nn.Module, features: torch.Tensor | None) -> torch.Tensor:
    """The latents before the first layer, (1, num_latents, latent_width): learned, with the features appended."""
    latents = encoder.latents[None]
    if features is None:
        return latents
    return torch.cat([latents, features.to(latents.dtype)[:, None, :].expand(-1, latents.shape[1], -1)], dim=-1)


def normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The layer norm without affine parameters over the last dimension."""
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def centred(x: torch.Tensor) -> torch.Tensor:
    """`x` minus its mean over the last dimension."""
    return x - x.mean(dim=-1, keepdim=True)


@dataclass
class ReadTerms:
    """The mutants' reads of the sequence in terms of the reference's: per query row,
    `read = scale * reference_read + weights @ vectors`, the vectors being the substituted positions' new normalised
    embeddings, then their old ones (float64)."""

    scale: torch.Tensor  # (batch, rows)
    weights: torch.Tensor  # (batch, rows, 2k)
    vectors: torch.Tensor  # (batch, 2k, width)
    cancelled: torch.Tensor  # (batch, rows): rows to be summed again (see CANCELLATION_LIMIT)

    def part(self, index: slice | torch.Tensor) -> "ReadTerms":
        return ReadTerms(self.scale[index], self.weights[index], self.vectors[index], self.cancelled[index])


@dataclass
class ReadCache:
    """The reference's cross-attention over its sequence as per-row sums, float64: rows are the folded queries
    (heads x latents), x the layer-normalised (no affine) embedded positions, scores their scaled products."""

    query: torch.Tensor  # (rows, width), the scale applied
    token_table: torch.Tensor  # (vocab, width)
    position_table: torch.Tensor  # (length, width)
    eps: float
    normalized: torch.Tensor  # (length, width)
    scores: torch.Tensor  # (length, rows)
    shift: torch.Tensor  # (rows,): each row's largest score, so that every exp() is at most 1
    denominator: torch.Tensor  # (rows,): sum_j exp(s_j - shift)
    reference_read: torch.Tensor  # (rows, width): sum_j exp(s_j - shift) x_j / denominator

    @classmethod
    def build(cls, encoder: nn.Module, latents: torch.Tensor, ids: torch.Tensor) -> "ReadCache":
        block, embedding = encoder.layers[0].cross_attention, encoder.embedding
        # The queries as the forward pass builds them (float32), then widened.
        folded = block.folded_query(block.latent_norm(latents))  # (1, heads, latents, width)
        query = folded.flatten(1, 2)[0].double() * block.attention.head_dim**-0.5
        token_table = embedding.token_embedding.weight.double()
        position_table = embedding.position_table[: ids.shape[0]].double()
        eps = encoder.config.layer_norm_eps
        normalized = normalize(token_table[ids] + position_table, eps)
        scores = normalized @ query.T
        shift = scores.amax(0)
        weights = (scores - shift).exp()
        denominator = weights.sum(0)
        read = weights.T @ normalized / denominator[:, None]
        return cls(query, token_table, position_table, eps, normalized, scores, shift, denominator, read)

    def terms(self, positions: torch.Tensor, tokens: torch.Tensor) -> ReadTerms:
        """Each mutant's read as the reference's sums with the substituted positions' terms replaced:
        N' = N - sum exp(s_p) x_p + sum exp(s'_p) x'_p over the substituted p, D' likewise, read = N' / D'."""
        old_x, old_scores = self.normalized[positions], self.scores[positions]  # (batch, k, width), (batch, k, rows)
        new_x = normalize(self.token_table[tokens] + self.position_table[positions], self.eps)
        new_scores = new_x @ self.query.T
        # A new score above the row's maximum moves the shift, so that exp() never overflows.
        shift = torch.maximum(self.shift, new_scores.amax(1))  # (batch, rows)
        factor = (self.shift - shift).exp()
        old_weights = (old_scores - self.shift).exp() * factor[:, None, :]
        new_weights = (new_scores - shift[:, None, :]).exp()
        reference = self.denominator * factor
        denominator = reference - old_weights.sum(1) + new_weights.sum(1)
        weights = torch.cat([new_weights, -old_weights], dim=1).transpose(1, 2) / denominator[..., None]
        cancelled = denominator < CANCELLATION_LIMIT * reference
        return ReadTerms(reference / denominator, weights, torch.cat([new_x, old_x], dim=1), cancelled)

    def read(self, terms: ReadTerms) -> torch.Tensor:
        """The mutants' reads (batch, rows, width), float64, from their terms."""
        return terms.scale[..., None] * self.reference_read + terms.weights @ terms.vectors

    def exact_read(self, terms: ReadTerms, positions: torch.Tensor) -> torch.Tensor:
        """`read`, with the cancelled rows summed again over each mutant's whole sequence."""
        read = self.read(terms)
        new_x = terms.vectors[:, : positions.shape[1]]
        for mutant in terms.cancelled.any(dim=1).nonzero()[:, 0].tolist():
            rows = terms.cancelled[mutant].nonzero()[:, 0]
            x = self.normalized.clone()
            x[positions[mutant]] = new_x[mutant]
            weights = (x @ self.query[rows].T).softmax(dim=0)  # (length, rows)
            read[mutant, rows] = weights.T @ x
        return read


def cross_attention_block(block: nn.Module, latents: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """The cross-attention block's output latents (batch, num_latents, width) from its read (batch, heads x
    latents, embedding_dim): what `CrossAttentionBlock.read_sequence` does after its attention, then the block's
    residual and feed-forward."""
    attention = block.attention
    heads, head_dim = attention.heads, attention.head_dim
    value_weight = attention.to_key_value.weight.unflatten(0, (2, heads, head_dim))[1]
    values = read.unflatten(1, (heads, -1)) * block.sequence_norm.weight + block.sequence_norm.bias
    out = torch.einsum("bhnd,hed->bnhe", values, value_weight).flatten(2)
    latents = latents + attention.dropout(attention.to_out(out))
    return latents + block.feed_forward(latents)


@dataclass
class CrossBlockCache:
    """The cross-attention block in closed form over the mutants' `ReadTerms`.

    The block's output before the feed-forward is affine in the read: latents0 + sum_h M_h read_h + c, with M_h the
    head's value and output projections and the layer norm's scale folded into one (width, embedding_dim) map. A
    mutant's read is the reference's, rescaled per row, plus 2k vectors, so these latents are the reference's
    terms rescaled plus 2k maps of vectors. The feed-forward's first projection of their layer norm is linear after
    centring and scaling each row, so it is the same combination of the projected terms: per mutant, products of
    2k rows instead of one per latent."""

    base: torch.Tensor  # (latents, width): latents0 + c, float32
    read_outputs: torch.Tensor  # (heads, latents, width): M_h reference_read_h, float32
    maps: torch.Tensor  # (heads, width, embedding_dim), float64
    hidden_base: torch.Tensor  # (latents, hidden): the first projection of centred(base), float32
    hidden_reads: torch.Tensor  # (heads, latents, hidden): that of centred(read_outputs), float32
    hidden_map: torch.Tensor  # (hidden, width): the first projection with the norm's scale folded in, float64
    hidden_bias: torch.Tensor  # (hidden,): the first projection of the norm's shift, plus its bias, float32
    eps: float
    feed_forward: nn.Module

    @classmethod
    def build(cls, block: nn.Module, latents: torch.Tensor, reference_read: torch.Tensor) -> "CrossBlockCache":
        attention, norm = block.attention, block.sequence_norm
        heads, head_dim = attention.heads, attention.head_dim
        value_weight = attention.to_key_value.weight.unflatten(0, (2, heads, head_dim))[1].double()
        out_weight = attention.to_out.weight.double().unflatten(1, (heads, head_dim))
        maps = torch.einsum("whd,hde->hwe", out_weight, value_weight)
        # Each head's values are gamma * read + beta: beta contributes the same to every mutant.
        base = latents[0].double() + torch.einsum("hwe,e->w", maps, norm.bias.double()) + attention.to_out.bias.double()
        maps = maps * norm.weight.double()
        read_outputs = torch.einsum("hne,hwe->hnw", reference_read.unflatten(0, (heads, -1)), maps)
        feed_forward = block.feed_forward
        project_in = feed_forward.project_in
        hidden_map = project_in.weight.double() * feed_forward.norm.weight.double()
        hidden_bias = project_in.weight.double() @ feed_forward.norm.bias.double() + project_in.bias.double()
        return cls(
            base.float(),
            read_outputs.float(),
            maps,
            (centred(base) @ hidden_map.T).float(),
            (centred(read_outputs) @ hidden_map.T).float(),
            hidden_map,
            hidden_bias.float(),
            feed_forward.norm.eps,
            feed_forward,
        )

    def output(self, terms: ReadTerms) -> torch.Tensor:
        """The block's output latents (batch, latents, width), float32, for the mutants' read terms. In float32, as
        the forward pass computes them: the terms' scales are at most DIRECT_SCALE_LIMIT (other mutants run the
        block on their reads), so no term is much larger than their sum."""
        heads, latents = self.read_outputs.shape[:2]
        scale = terms.scale.float().view(-1, heads, latents)
        # (batch, latents, heads x 2k) weights of the (batch, heads x 2k, width) mapped vectors.
        weights = terms.weights.float().unflatten(1, (heads, latents)).transpose(1, 2).flatten(2)
        vectors = torch.einsum("bqe,hwe->bhqw", terms.vectors, self.maps).flatten(1, 2)
        before = torch.baddbmm(self.combine(self.base, scale, self.read_outputs), weights, vectors.float())
        inverse_std = (centred(before).square_().mean(dim=-1, keepdim=True) + self.eps).rsqrt_()
        # bias + (hidden_base + sum_h scale_h hidden_reads_h + weights @ projected vectors) / std, in three passes.
        hidden = torch.addcmul(self.hidden_bias, self.hidden_base, inverse_std)
        hidden = self.combine(hidden, scale * inverse_std[:, None, :, 0], self.hidden_reads, out=hidden)
        hidden.baddbmm_(weights * inverse_std, (centred(vectors) @ self.hidden_map.T).float())
        return geglu_output(self.feed_forward, hidden, before)

    @staticmethod
    def combine(
        base: torch.Tensor, scale: torch.Tensor, terms: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """base + sum_h scale[:, h, :, None] * terms[h], (batch, latents, width); into `out` (holding `base`)."""
        if out is None:
            out = torch.addcmul(base, scale[:, 0, :, None], terms[0])
        else:
            out.addcmul_(scale[:, 0, :, None], terms[0])
        for head in range(1, terms.shape[0]):
            out.addcmul_(scale[:, head, :, None], terms[head])
        return out


def geglu_output(feed_forward: nn.Module, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """residual + the GEGLU feed-forward's output from its first projection `hidden` (consumed)."""
    half = hidden.shape[-1] // 2
    value = hidden[..., :half].mul_(F.gelu(hidden[..., half:]))
    project_out = feed_forward.project_out
    shape = residual.shape
    out = torch.addmm((residual + project_out.bias).reshape(-1, shape[-1]), value.reshape(-1, value.shape[-1]),
                      project_out.weight.T)  # fmt: skip
    return out.view(shape)


def feed_forward_residual(feed_forward: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """latents + GEGLUFeedForward(latents) in evaluation mode, the residual added inside the last product."""
    normed = feed_forward.norm(latents)
    return geglu_output(feed_forward, feed_forward.project_in(normed), latents)


def query_key_value_weight(attention: nn.Module) -> torch.Tensor:
    """The self-attention's query, key and value projections as one (width, 3 x heads x head_dim) matrix."""
    return torch.cat([attention.to_query.weight, attention.to_key_value.weight]).T.contiguous()


def self_attention_block(block: nn.Module, projection: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """`LatentSelfAttentionBlock.forward` in evaluation mode, with queries, keys and values in one product
    (`projection`, from `query_key_value_weight`) and the residuals added inside the products."""
    attention = block.attention
    batch, count, width = latents.shape
    heads, head_dim = attention.heads, attention.head_dim
    qkv = (block.norm(latents) @ projection).view(batch, count, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(batch * count, -1)
    to_out = attention.to_out
    latents = torch.addmm((latents + to_out.bias).view(-1, width), out, to_out.weight.T).view(batch, count, width)
    return feed_forward_residual(block.feed_forward, latents)


def branch_query(attention: nn.Module, branch: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """The branch vector's attention over the latents (`PerceiverEncoder`'s `branch_query`, one head), (batch,
    branch_dim), with its key and value projections folded: scores q . (W_k l) = (W_k^T q) . l, and the weighted
    sum of W_v l is W_v of the weighted sum of l, so neither is projected per latent."""
    if attention.heads != 1:
        return attention(branch[:, None, :], latents)[:, 0]
    key_weight, value_weight = attention.to_key_value.weight.chunk(2)
    query = linear_per_row(attention.to_query, branch) @ key_weight  # (batch, width)
    scores = torch.bmm(latents, query[:, :, None])[..., 0] * attention.head_dim**-0.5
    pooled = torch.bmm(scores.softmax(dim=-1)[:, None, :], latents)[:, 0]
    return linear_per_row(attention.to_out, pooled @ value_weight.T)


@dataclass(frozen=True)
class Stage:
    """One step of the branch (the stem, or a tower block): a 'same' convolution reaching `left` positions before
    and `right` after each output, then attention pooling by `pool`; `windows` pooled windows are recomputed per
    substituted position, enough to cover every one it can change."""

    left: int
    right: int
    pool: int
    input_length: int
    output_length: int
    windows: int


def branch_stages(branch: nn.Module, length: int) -> list[Stage]:
    """The branch's stages for a sequence of `length` positions, with the windows each substitution reaches: a
    span of `reach` changed inputs changes `reach + kernel - 1` convolution outputs, which fall in at most
    `(reach + kernel - 2) // pool + 2` pooled windows."""
    steps = [(branch.stem.kernel_size[0], branch.stem_pool.pool_size)]
    steps += [(block.conv.conv.kernel_size[0], block.pool.pool_size) for block in branch.tower]
    stages, reach = [], 1
    for kernel, pool in steps:
        output_length = -(-length // pool)
        windows = min((reach + kernel - 2) // pool + 2, output_length)
        left = (kernel - 1) // 2  # as 'same' padding pads: the extra position of an even kernel goes right
        stages.append(Stage(left, kernel - 1 - left, pool, length, output_length, windows))
        length, reach = output_length, windows
    return stages


def window_starts(stage: Stage, previous: torch.Tensor) -> torch.Tensor:
    """First pooled window of `stage` that each substitution can change, (batch, k), moved back where needed so
    that all `stage.windows` windows lie in the sequence. `previous` (batch, k): the first position of the stage's
    input that the substitution can change (the substituted position, or the window recomputed below)."""
    first = torch.div(previous - stage.right, stage.pool, rounding_mode="floor")
    return first.clamp(0, stage.output_length - stage.windows)


def patched_tokens(
    ids: torch.Tensor, starts: torch.Tensor, length: int, positions: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's mutant tokens at positions starts .. starts + length, (rows, length), and whether each lies in
    the sequence. `positions` and `tokens` (rows, k): the row's mutant."""
    index = starts[:, None] + torch.arange(length, device=ids.device)
    inside = (index >= 0) & (index < ids.shape[0])
    local = ids[index.clamp(0, ids.shape[0] - 1)]
    for site in range(positions.shape[1]):
        local = torch.where(index == positions[:, site, None], tokens[:, site, None], local)
    return local, inside


def patched_values(
    reference: torch.Tensor, starts: torch.Tensor, length: int, site_starts: torch.Tensor, site_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's mutant activations at positions starts .. starts + length of a level, (rows, channels, length),
    and whether each lies in the sequence: the reference's (`reference`, (positions, channels)), except within the
    windows recomputed for the row's mutant (`site_values` (rows, k, channels, windows) from `site_starts` (rows,
    k)). Windows of one mutant that overlap hold the same values."""
    index = starts[:, None] + torch.arange(length, device=reference.device)
    inside = (index >= 0) & (index < reference.shape[0])
    values = reference[index.clamp(0, reference.shape[0] - 1)]  # (rows, length, channels)
    windows = site_values.shape[-1]
    for site in range(site_starts.shape[1]):
        offset = index - site_starts[:, site, None]
        within = (offset >= 0) & (offset < windows)
        patch = site_values[:, site].transpose(1, 2)  # (rows, windows, channels)
        gathered = patch.gather(1, offset.clamp(0, windows - 1)[..., None].expand(-1, -1, patch.shape[-1]))
        values = torch.where(within[..., None], gathered, values)
    return values.transpose(1, 2), inside


def mask_or_none(inside: torch.Tensor) -> torch.Tensor | None:
    """The validity mask, or None when every position is valid (the modules then skip their masking)."""
    return None if bool(inside.all()) else inside


@dataclass
class BranchCache:
    """The reference's activations after each stage of the convolutional branch, positions first."""

    branch: nn.Module
    ids: torch.Tensor
    stages: list[Stage]
    levels: list[torch.Tensor]  # per stage (output_length, channels)

    @classmethod
    def build(cls, branch: nn.Module, ids: torch.Tensor) -> "BranchCache":
        x, _ = branch.stem_in_chunks(ids[None], None)
        levels = [x[0].T.contiguous()]
        for block in branch.tower:
            x, _ = block(x, None)
            levels.append(x[0].T.contiguous())
        return cls(branch, ids, branch_stages(branch, ids.shape[0]), levels)

    def vector(self, positions: torch.Tensor, tokens: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """The branch vector (batch, branch_dim) of each mutant, as `ConvBranch.forward` computes it."""
        batch, k = positions.shape
        starts = window_starts(self.stages[0], positions)
        values = self.stem_windows(self.stages[0], starts, positions, tokens)
        for index, block in enumerate(self.branch.tower):
            stage = self.stages[index + 1]
            below = starts
            starts = window_starts(stage, below)
            values = self.tower_windows(
                block, stage, self.levels[index], starts, below, values.unflatten(0, (batch, k))
            )
        last = self.levels[-1]
        x, _ = patched_values(last, starts.new_zeros(batch), last.shape[0], starts, values.unflatten(0, (batch, k)))
        flat = F.adaptive_avg_pool1d(x, self.branch.bins).flatten(1)
        if features is not None:
            flat = torch.cat([flat, features.to(flat.dtype).expand(batch, -1)], dim=-1)
        return self.branch.dropout(F.relu(linear_per_row(self.branch.project, flat)))

    def stem_windows(
        self, stage: Stage, starts: torch.Tensor, positions: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """The stem's pooled windows from `starts` (batch, k) for each substitution of each mutant, (batch x k,
        channels, windows): the stem stage over the windows' positions, reading its reach on both sides."""
        span = stage.windows * stage.pool
        first = (starts * stage.pool - stage.left).flatten()
        k = positions.shape[1]
        local, inside = patched_tokens(
            self.ids, first, span + stage.left + stage.right, positions.repeat_interleave(k, 0),
            tokens.repeat_interleave(k, 0),
        )  # fmt: skip
        dtype = self.branch.stem.weight.dtype
        one_hot = self.branch.one_hot(local, dtype).transpose(1, 2) * inside[..., None].to(dtype)
        mask = mask_or_none(inside[:, stage.left : stage.left + span])
        mask = None if mask is None else inside  # `stem_stage` cuts the windows' part out of it
        pooled, _ = self.branch.stem_stage(None, mask, stage.left, stage.left + span, one_hot=one_hot)
        return pooled

    def tower_windows(
        self,
        block: nn.Module,
        stage: Stage,
        level: torch.Tensor,
        starts: torch.Tensor,
        below_starts: torch.Tensor,
        below: torch.Tensor,
    ) -> torch.Tensor:
        """A tower block's pooled windows from `starts` (batch, k) for each substitution of each mutant, (batch x k,
        channels, windows): the block over the windows' positions, reading its reach on both sides from the level
        below, the reference's `level` (positions, channels) with the mutant's recomputed windows `below` (batch, k,
        channels, windows) from `below_starts` (batch, k) in place."""
        span = stage.windows * stage.pool
        k = starts.shape[1]
        first = (starts * stage.pool - stage.left).flatten()
        x, inside = patched_values(
            level, first, span + stage.left + stage.right,
            below_starts.repeat_interleave(k, 0), below.repeat_interleave(k, 0),
        )  # fmt: skip
        # Outputs next to the local window's ends read its 'same' padding, not the sequence: only the middle is kept.
        hidden = block.conv.block(x, mask_or_none(inside))[..., stage.left : stage.left + span]
        mask = mask_or_none(inside[:, stage.left : stage.left + span])
        pooled, _ = block.pool(block.residual(hidden, mask), mask)
        return pooled
