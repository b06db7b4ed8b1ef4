"""The Hub bundle: configurations, models and tokenizers, self-contained (torch, transformers, tokenizers), and
the registry of the model families built from them (`families.py`, not part of the bundle). Importing this package
registers the model types with transformers' Auto classes, so checkpoints load without `trust_remote_code`."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

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


def register_auto_classes() -> None:
    """Makes the Auto classes know our model types (idempotent)."""
    for family in FAMILIES.values():
        AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
        AutoModel.register(family.config_class, family.model_class, exist_ok=True)
        AutoModelForSequenceClassification.register(family.config_class, family.head_class, exist_ok=True)
        AutoTokenizer.register(family.config_class, fast_tokenizer_class=family.tokenizer_class, exist_ok=True)


register_auto_classes()

__all__ = [
    "register_auto_classes",
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
