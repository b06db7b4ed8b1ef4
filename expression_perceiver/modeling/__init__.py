"""The Hub bundle: configurations, models and tokenizers, self-contained (torch, transformers, tokenizers)."""

from .configuration_expression_perceiver import (
    DNAPerceiverConfig,
    PerceiverExpressionConfig,
    ProteinDNAPerceiverConfig,
    ProteinPerceiverConfig,
)
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
