"""Predict mRNA levels from promoter DNA and protein levels from protein sequence with Perceiver models.

Names are imported on first use (PEP 562), so that `expression-perceiver --help` and `import expression_perceiver`
stay light. Using any model, configuration or tokenizer name, or importing `expression_perceiver.modeling`, registers
the three model types with transformers' Auto classes (`register_auto_classes`).
"""

import importlib

__version__ = "0.1.0"

# Public name -> the submodule that defines it.
_MODELING_NAMES = (
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
    "FAMILIES",
    "register_auto_classes",
)
_INFERENCE_NAMES = (
    "predict",
    "embed",
    "variant_effects",
    "mutagenesis",
    "attribute",
    "Predictor",
    "Embedder",
    "Example",
    "InputFile",
)
_LAZY_NAMES = {
    **{name: ".modeling" for name in _MODELING_NAMES},
    **{name: ".inference" for name in _INFERENCE_NAMES},
}


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_NAMES])


__all__ = [name for name in _LAZY_NAMES if name not in ("FAMILIES", "register_auto_classes")]
