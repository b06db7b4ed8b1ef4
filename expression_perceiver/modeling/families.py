"""The model families, each named once: its configuration, base model, model with a head, tokenizer, the alphabet
of its main input, and whether it reads a protein beside it. Everything that depends on the family (argument
choices, Auto-class registration, tokenizers, alphabet checks, model cards) looks it up here."""

from dataclasses import dataclass

from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from .modeling_expression_perceiver import MODEL_CLASSES
from .tokenization_expression_perceiver import AminoAcidTokenizer, NucleotideTokenizer


@dataclass(frozen=True)
class ModelFamily:
    model_type: str
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    head_class: type[PreTrainedModel]
    tokenizer_class: type[PreTrainedTokenizerBase]
    alphabet: str  # of the main input (`input_ids`): "dna" or "protein"
    reads_protein: bool = False  # a second input of amino acids (`protein_input_ids`) beside the promoter

    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.tokenizer_class()


def _family(model_type: str, tokenizer_class: type, alphabet: str, reads_protein: bool = False) -> ModelFamily:
    config_class, model_class, head_class = MODEL_CLASSES[model_type]
    return ModelFamily(model_type, config_class, model_class, head_class, tokenizer_class, alphabet, reads_protein)


FAMILIES: dict[str, ModelFamily] = {
    "dna_perceiver": _family("dna_perceiver", NucleotideTokenizer, "dna"),
    "protein_perceiver": _family("protein_perceiver", AminoAcidTokenizer, "protein"),
    "protein_dna_perceiver": _family("protein_dna_perceiver", NucleotideTokenizer, "dna", reads_protein=True),
}
MODEL_TYPES = tuple(FAMILIES)
