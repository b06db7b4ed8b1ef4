"""Model sizes small enough for fast tests and large enough that every building block runs."""

SMALL_SIZES = dict(
    num_latents=8,
    latent_dim=16,
    self_attention_heads=2,
    self_attention_head_dim=8,
    cross_attention_head_dim=8,
    conv_stem_channels=8,
    conv_tower_channels=[8, 8],
    conv_pooled_positions=4,
    branch_dim=8,
)

# The same sizes as `train.py --config_overrides`.
SMALL_OVERRIDES = ",".join(f"{name}={value}" for name, value in SMALL_SIZES.items())
