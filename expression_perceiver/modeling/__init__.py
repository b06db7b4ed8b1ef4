"""The Hub bundle: configurations, models and tokenizers, self-contained (torch, transformers, tokenizers), and
the registry of the model families built from them (`families.py`, not part of the bundle)."""

from .configuration_expression_perceiver import (
    DNAPerceiverConfig,
    PerceiverExpressionConfig,
    ProteinDNAPerceiverConfig,
    ProteinPerceiverConfig,
)
from .families import FAMILIES, MODEL_TYPES, ModelFamily
from .modeling_expression_perceiver import (
    DNAPerceiverForSequenceClassification,
    DNAPerceiverModel,
    PerceiverExpressionOutput,
    PerceiverExpressionPreTrainedModel,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinDNAPerceiverModel,
    ProteinPerceiverForSequenceClassification,
    ProteinPerceiverModel,
)
from .tokenization_expression_perceiver import AminoAcidTokenizer, NucleotideTokenizer

__all__ = [
    "FAMILIES",
    "MODEL_TYPES",
    "ModelFamily",
    "PerceiverExpressionConfig",
    "DNAPerceiverConfig",
    "ProteinPerceiverConfig",
    "ProteinDNAPerceiverConfig",
    "PerceiverExpressionOutput",
    "PerceiverExpressionPreTrainedModel",
    "DNAPerceiverModel",
    "DNAPerceiverForSequenceClassification",
    "ProteinPerceiverModel",
    "ProteinPerceiverForSequenceClassification",
    "ProteinDNAPerceiverModel",
    "ProteinDNAPerceiverForSequenceClassification",
    "NucleotideTokenizer",
    "AminoAcidTokenizer",
]
