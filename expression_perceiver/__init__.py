"""Predict mRNA levels from promoter DNA and protein levels from protein sequence with Perceiver models."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from .modeling import (
    FAMILIES,
    AminoAcidTokenizer,
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    DNAPerceiverModel,
    NucleotideTokenizer,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinDNAPerceiverModel,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
    ProteinPerceiverModel,
)

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    """Makes the Auto classes know our model types, so checkpoints load without `trust_remote_code`."""
    for family in FAMILIES.values():
        AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
        AutoModel.register(family.config_class, family.model_class, exist_ok=True)
        AutoModelForSequenceClassification.register(family.config_class, family.head_class, exist_ok=True)
        AutoTokenizer.register(family.config_class, fast_tokenizer_class=family.tokenizer_class, exist_ok=True)


_register_auto_classes()

# Inference reads files and the Hub: imported on first use, so that importing the models stays light.
_INFERENCE_NAMES = (
    "predict",
    "embed",
    "variant_effects",
    "mutagenesis",
    "Predictor",
    "Embedder",
    "Example",
    "InputFile",
)


def __getattr__(name: str):
    if name in _INFERENCE_NAMES:
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DNAPerceiverConfig",
    "ProteinPerceiverConfig",
    "ProteinDNAPerceiverConfig",
    "DNAPerceiverModel",
    "DNAPerceiverForSequenceClassification",
    "ProteinPerceiverModel",
    "ProteinPerceiverForSequenceClassification",
    "ProteinDNAPerceiverModel",
    "ProteinDNAPerceiverForSequenceClassification",
    "NucleotideTokenizer",
    "AminoAcidTokenizer",
    *_INFERENCE_NAMES,
]
