"""Predict mRNA levels from promoter DNA and protein levels from protein sequence with Perceiver models."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from .modeling import (
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
    families = [
        (DNAPerceiverConfig, DNAPerceiverModel, DNAPerceiverForSequenceClassification, NucleotideTokenizer),
        (ProteinPerceiverConfig, ProteinPerceiverModel, ProteinPerceiverForSequenceClassification, AminoAcidTokenizer),
        (
            ProteinDNAPerceiverConfig,
            ProteinDNAPerceiverModel,
            ProteinDNAPerceiverForSequenceClassification,
            NucleotideTokenizer,
        ),
    ]
    for config_class, model_class, head_class, tokenizer_class in families:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
        AutoModelForSequenceClassification.register(config_class, head_class, exist_ok=True)
        AutoTokenizer.register(config_class, fast_tokenizer_class=tokenizer_class, exist_ok=True)


_register_auto_classes()

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
]
