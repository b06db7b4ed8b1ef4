"""Configurations of the DNA, Protein and Protein&DNA Perceivers (after Stefanini et al., 2023)."""

import math
from numbers import Real

from transformers import PreTrainedConfig

# The implementations of the cross-attention over the sequence (see `kernels_expression_perceiver.py`).
SEQUENCE_ATTENTION_IMPLEMENTATIONS = ("auto", "reference", "folded", "chunked")

# Token ids shared with `tokenization_expression_perceiver`: five special tokens, then the alphabet.
PAD_TOKEN_ID = 0
FIRST_LETTER_TOKEN_ID = 5
NUCLEOTIDE_VOCAB_SIZE = 10  # [PAD] [UNK] [CLS] [SEP] [MASK] A C G T N
AMINO_ACID_VOCAB_SIZE = 30  # specials + 20 standard amino acids + X B Z U O


def _default_to_regression(config: PreTrainedConfig, kwargs: dict) -> None:
    """Regression of one expression value is the default task; `num_labels=2` predicts mRNA and protein."""
    if config.id2label is None and kwargs.get("num_labels") is None:
        kwargs["num_labels"] = 1
    if config.problem_type is None:
        config.problem_type = "regression"


def _with_labels(config: PreTrainedConfig, config_dict: dict) -> dict:
    """Always saves the label map: `transformers` drops a 2-entry one as its default, but ours defaults to 1."""
    config_dict["id2label"] = {str(key): value for key, value in config.id2label.items()}
    config_dict["label2id"] = dict(config.label2id)
    return config_dict


def _validate_label_scale(config: PreTrainedConfig) -> None:
    """Refuses a `label_mean` or `label_std` that cannot have come from training labels, naming the field and value:
    predictions are `logits * label_std + label_mean`, so each needs one finite value per output, and a standard
    deviation of 0 or below would flatten or mirror every prediction. A bare number stands for one value."""
    for field, positive in (("label_mean", False), ("label_std", True)):
        values = getattr(config, field)
        if values is None:
            continue
        entries = [values] if isinstance(values, Real) else values
        valid = isinstance(entries, (list, tuple)) and len(entries) == config.num_labels
        valid = valid and all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in entries)
        if not valid or (positive and any(v <= 0 for v in entries)):
            requirement = "finite values > 0" if positive else "finite values"
            raise ValueError(
                f"{type(config).__name__}.{field} must hold {config.num_labels} {requirement} (one per output), "
                f"got {values!r}"
            )


class PerceiverExpressionConfig(PreTrainedConfig):
    r"""
    Fields shared by the three Perceivers. A sequence of token ids is embedded, read by learned latents through
    cross-attention, refined by latent self-attention blocks, and summarised together with a convolutional
    branch over the one-hot sequence into one vector from which the head regresses expression.

    Args:
        vocab_size (`int`): number of token ids the embedding accepts.
        max_sequence_length (`int`): longest input accepted; sets the size of the position table.
        alphabet_size (`int`): number of letters one-hot encoded for the convolutional branch; they are the
            token ids `first_letter_token_id .. first_letter_token_id + alphabet_size - 1` (A C G T for DNA,
            so N, [MASK] and padding become all-zero columns, as in the Xpresso one-hot encoding).
        first_letter_token_id (`int`): token id of the first one-hot encoded letter.
        num_features (`int`): width of the optional per-gene feature vector (8 mRNA half-life features for
            Xpresso; 0 for none). Features are concatenated to every latent and to the branch vector.
        embedding_dim (`int`): width of the token embedding and position encoding (32).
        position_encoding (`str`): `"learnable"` (sinusoidal initialisation, trained) or `"fixed"` (sinusoidal).
        num_latents (`int`): number of learned latent vectors (128).
        latent_dim (`int`): width of each learned latent (128); the latent stream is `latent_dim + num_features`.
        num_layers (`int`): repeats of (cross-attention, latent self-attention blocks) (1).
        num_self_attention_blocks (`int`): latent self-attention blocks after each cross-attention (1).
        cross_attention_heads (`int`): heads of the cross-attention from latents to the sequence (1).
        cross_attention_head_dim (`int`): width of each cross-attention head (64).
        self_attention_heads (`int`): heads of the latent self-attention (8).
        self_attention_head_dim (`int`): width of each latent self-attention head (64).
        feed_forward_mult (`int`): hidden width of the GEGLU feed-forward as a multiple of its input (2).
        dropout (`float`): dropout after attention and feed-forward layers and in the branch (0.2).
        use_conv_branch (`bool`): whether the convolutional branch is built and used (True).
        conv_stem_channels (`int`): channels of the first convolution (64).
        conv_stem_kernel_size (`int`): kernel size of the first convolution (15).
        conv_stem_pool_size (`int`): attention-pooling factor after the stem (12).
        conv_tower_channels (`list[int]`): output channels of the tower blocks ([46, 32]).
        conv_tower_kernel_size (`int`): kernel size of the tower convolutions (5).
        conv_tower_pool_size (`int`): attention-pooling factor after each tower block (6).
        conv_pooled_positions (`int`): the tower output is average-pooled into this many bins along the
            sequence before flattening, so that any input length gives the same vector size (24 is what the
            authors' 10,500-base window yields without this step).
        branch_dim (`int`): width of the branch vector that queries the latents and of each half of the head (64).
        layer_norm_eps (`float`): epsilon of the layer norms.
        sequence_attention (`str`): implementation of the cross-attention over the sequence, all computing the
            same function with the same parameters: `"reference"` (the plain formulation: keys and values
            projected from the layer-normalised sequence, multi-head SDPA), `"folded"` (key and value projections
            folded away, SDPA over the normalised sequence; for GPUs and `torch.compile`), `"chunked"` (the folded
            attention in chunks of positions, nothing of the sequence's full length materialised; fastest on CPU),
            or `"auto"` (default: `"chunked"` on CPU in eager mode, `"folded"` elsewhere). A run-time choice: set it
            on a loaded model's config or pass it to `from_pretrained`.
        attention_chunk_length (`int`, *optional*): positions per chunk of the `"chunked"` implementation; by
            default 512 for 128 query rows (`num_latents * cross_attention_heads`), i.e. 256 KB of scores per
            sequence, at most `max_sequence_length`. Never a function of the batch: with a given value a sequence
            gives the same bits in any batch, padded to any length. Changes speed, memory and float32 rounding.
        initializer_range (`float`): standard deviation of the normal initialisation of linear layers and latents.
        label_mean (`list[float]`, *optional*): training-set mean of each output; with `label_std`, the model's
            logits are standardised labels and `logits * label_std + label_mean` is in the data's units.
        label_std (`list[float]`, *optional*): training-set standard deviation of each output. Both hold
            `num_labels` finite values, the standard deviations > 0.
        feature_mean (`list[float]`, *optional*): training-set mean of each per-gene feature (`num_features`
            values); prediction tools fill a gene's missing features with it when asked to.
        feature_names (`list[str]`, *optional*): the per-gene features' names, in the order the model reads them
            (`num_features` values), e.g. Xpresso's 8 mRNA half-life features.
        label_units (`list[str]`, *optional*): the units of each output in the data (e.g. `"log10(TPM + 0.1)"`);
            the outputs' names are `id2label`, set by training from the data's label names.
        training_masking (`dict`, *optional*): the masking augmentation the model was trained with
            (`MaskingSettings.to_dict()`: strategy, mode, mask_length or mask_fraction, num_spans, mask_token). A
            model trained in `drop` mode evaluated its inputs with the same positions removed, and so does
            prediction.
        training_seed (`int`, *optional*): the training run's seed (it also keys the masks).
        data_fingerprint (`str`, *optional*): fingerprint of the training data's splits, as provenance.
    """

    vocab_size: int = NUCLEOTIDE_VOCAB_SIZE
    max_sequence_length: int = 20_000
    alphabet_size: int = 4
    first_letter_token_id: int = FIRST_LETTER_TOKEN_ID
    num_features: int = 0
    embedding_dim: int = 32
    position_encoding: str = "learnable"
    num_latents: int = 128
    latent_dim: int = 128
    num_layers: int = 1
    num_self_attention_blocks: int = 1
    cross_attention_heads: int = 1
    cross_attention_head_dim: int = 64
    self_attention_heads: int = 8
    self_attention_head_dim: int = 64
    feed_forward_mult: int = 2
    dropout: float | int = 0.2
    use_conv_branch: bool = True
    conv_stem_channels: int = 64
    conv_stem_kernel_size: int = 15
    conv_stem_pool_size: int = 12
    conv_tower_channels: list[int] | tuple[int, ...] = (46, 32)
    conv_tower_kernel_size: int = 5
    conv_tower_pool_size: int = 6
    conv_pooled_positions: int = 24
    branch_dim: int = 64
    layer_norm_eps: float = 1e-5
    sequence_attention: str = "auto"
    attention_chunk_length: int | None = None
    initializer_range: float = 0.02
    label_mean: list[float] | None = None
    label_std: list[float] | None = None
    feature_mean: list[float] | None = None
    feature_names: list[str] | None = None
    label_units: list[str] | None = None
    training_masking: dict | None = None
    training_seed: int | None = None
    data_fingerprint: str | None = None
    pad_token_id: int | None = PAD_TOKEN_ID

    def __post_init__(self, **kwargs):
        _default_to_regression(self, kwargs)
        self.conv_tower_channels = list(self.conv_tower_channels)
        super().__post_init__(**kwargs)
        self.validate_perceiver()

    def to_diff_dict(self) -> dict:
        return _with_labels(self, super().to_diff_dict())

    @property
    def latent_width(self) -> int:
        """Width of the latent stream: the learned latent plus the per-gene features."""
        return self.latent_dim + self.num_features

    def validate_perceiver(self):
        """Rejects values that cannot build a model, naming the field."""
        positive = [
            "vocab_size", "max_sequence_length", "alphabet_size", "embedding_dim", "num_latents", "latent_dim",
            "num_layers", "num_self_attention_blocks", "cross_attention_heads", "cross_attention_head_dim",
            "self_attention_heads", "self_attention_head_dim", "feed_forward_mult", "conv_stem_channels",
            "conv_stem_kernel_size", "conv_stem_pool_size", "conv_tower_kernel_size", "conv_tower_pool_size",
            "conv_pooled_positions", "branch_dim",
        ]  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.num_features, int) or self.num_features < 0:
            raise ValueError(f"{type(self).__name__}.num_features must be >= 0, got {self.num_features!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout!r}")
        if self.position_encoding not in ("learnable", "fixed"):
            raise ValueError(
                f"{type(self).__name__}.position_encoding must be 'learnable' or 'fixed', "
                f"got {self.position_encoding!r}"
            )
        if self.sequence_attention not in SEQUENCE_ATTENTION_IMPLEMENTATIONS:
            choices = ", ".join(SEQUENCE_ATTENTION_IMPLEMENTATIONS)
            raise ValueError(
                f"{type(self).__name__}.sequence_attention must be one of {choices}, got {self.sequence_attention!r}"
            )
        for name in ("feature_mean", "feature_names"):
            values = getattr(self, name)
            if values is not None and len(values) != self.num_features:
                raise ValueError(
                    f"{type(self).__name__}.{name} has {len(values)} values for num_features {self.num_features}"
                )
        chunk = self.attention_chunk_length
        if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
            raise ValueError(
                f"{type(self).__name__}.attention_chunk_length must be a positive integer or None, got {chunk!r}"
            )
        _validate_label_scale(self)
        if self.embedding_dim % 2:
            raise ValueError(f"{type(self).__name__}.embedding_dim must be even (sinusoids), got {self.embedding_dim}")
        if self.first_letter_token_id + self.alphabet_size > self.vocab_size:
            raise ValueError(
                f"{type(self).__name__}: first_letter_token_id + alphabet_size "
                f"({self.first_letter_token_id} + {self.alphabet_size}) exceeds vocab_size ({self.vocab_size})"
            )
        if any(not isinstance(c, int) or c < 1 for c in self.conv_tower_channels):
            raise ValueError(
                f"{type(self).__name__}.conv_tower_channels must be positive integers, got {self.conv_tower_channels!r}"
            )


class DNAPerceiverConfig(PerceiverExpressionConfig):
    r"""
    Configuration of the DNAPerceiver: promoter DNA (A C G T N tokens, up to 20,000 bases) plus optional per-gene
    features such as Xpresso's 8 mRNA half-life features (`num_features=8`). See [`PerceiverExpressionConfig`]
    for every field.

    Example:

    ```python
    >>> from transformers import AutoConfig, AutoModelForSequenceClassification
    >>> config = AutoConfig.for_model("dna_perceiver", num_features=8)
    >>> model = AutoModelForSequenceClassification.from_config(config)
    ```
    """

    model_type = "dna_perceiver"

    vocab_size: int = NUCLEOTIDE_VOCAB_SIZE
    max_sequence_length: int = 20_000
    alphabet_size: int = 4


class ProteinPerceiverConfig(PerceiverExpressionConfig):
    r"""
    Configuration of the ProteinPerceiver: amino-acid tokens (up to 6,000 residues), no per-gene features by
    default. The convolutional branch one-hot encodes the 20 standard amino acids. See
    [`PerceiverExpressionConfig`] for every field.
    """

    model_type = "protein_perceiver"

    vocab_size: int = AMINO_ACID_VOCAB_SIZE
    max_sequence_length: int = 6_000
    alphabet_size: int = 20


class ProteinDNAPerceiverConfig(PreTrainedConfig):
    r"""
    Configuration of the Protein&DNAPerceiver: a DNAPerceiver encoder over the promoter and a ProteinPerceiver
    encoder over the protein, their summary vectors concatenated and regressed by one head.

    Args:
        dna_config (`DNAPerceiverConfig` or `dict`): configuration of the promoter encoder.
        protein_config (`ProteinPerceiverConfig` or `dict`): configuration of the protein encoder.
        dropout (`float`): dropout before the joint head (0.2).
        initializer_range (`float`): standard deviation of the normal initialisation of the head.
        label_mean (`list[float]`, *optional*): training-set mean of each output (see `PerceiverExpressionConfig`).
        label_std (`list[float]`, *optional*): training-set standard deviation of each output.
        label_units, training_masking, training_seed, data_fingerprint: as in `PerceiverExpressionConfig`; the
            per-gene features' names and means are fields of `dna_config`, whose encoder reads them.
    """

    model_type = "protein_dna_perceiver"
    sub_configs_defaults = {"dna_config": DNAPerceiverConfig, "protein_config": ProteinPerceiverConfig}

    dna_config: dict | DNAPerceiverConfig | None = None
    protein_config: dict | ProteinPerceiverConfig | None = None
    dropout: float | int = 0.2
    initializer_range: float = 0.02
    label_mean: list[float] | None = None
    label_std: list[float] | None = None
    label_units: list[str] | None = None
    training_masking: dict | None = None
    training_seed: int | None = None
    data_fingerprint: str | None = None
    pad_token_id: int | None = PAD_TOKEN_ID

    def __post_init__(self, **kwargs):
        _default_to_regression(self, kwargs)
        super().__post_init__(**kwargs)
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"ProteinDNAPerceiverConfig.dropout must be in [0, 1), got {self.dropout!r}")
        _validate_label_scale(self)

    def to_diff_dict(self) -> dict:
        return _with_labels(self, super().to_diff_dict())


__all__ = ["PerceiverExpressionConfig", "DNAPerceiverConfig", "ProteinPerceiverConfig", "ProteinDNAPerceiverConfig"]
