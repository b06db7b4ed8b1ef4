"""Data collators: padding, cropping and the masking augmentation of sequence inputs."""

from .masking import MaskingCollator, MaskingEpochCallback, MaskingSettings

__all__ = ["MaskingCollator", "MaskingEpochCallback", "MaskingSettings"]
