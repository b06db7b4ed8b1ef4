"""Tiny checkpoints saved the way training saves them, and predictions computed without the inference code: the
model called directly on the tokenizer's output, one sequence at a time, and un-standardised by hand."""

import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from expression_perceiver import (
    AminoAcidTokenizer,
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    NucleotideTokenizer,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
)
from tests.small_models import SMALL_SIZES

DNA_WINDOW = 300
PROTEIN_WINDOW = 120
NUM_FEATURES = 3


def save_dna_model(
    folder: Path, seed: int, num_features: int = NUM_FEATURES, label_scale: bool = True, num_labels: int = 2
) -> Path:
    torch.manual_seed(seed)
    scale = dict(label_mean=[1.5, -2.0][:num_labels], label_std=[2.0, 0.25][:num_labels]) if label_scale else {}
    config = DNAPerceiverConfig(
        num_labels=num_labels, num_features=num_features, max_sequence_length=DNA_WINDOW, **scale, **SMALL_SIZES
    )
    model = DNAPerceiverForSequenceClassification(config)
    randomise_batch_norms(model)
    model.save_pretrained(folder)
    NucleotideTokenizer().save_pretrained(folder)
    return folder


def save_protein_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    scale = dict(label_mean=[2.0], label_std=[0.5])
    config = ProteinPerceiverConfig(max_sequence_length=PROTEIN_WINDOW, **scale, **SMALL_SIZES)
    model = ProteinPerceiverForSequenceClassification(config)
    randomise_batch_norms(model)
    model.save_pretrained(folder)
    AminoAcidTokenizer().save_pretrained(folder)
    return folder


def save_protein_dna_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    config = ProteinDNAPerceiverConfig(
        dna_config={**SMALL_SIZES, "num_features": 2, "max_sequence_length": DNA_WINDOW},
        protein_config={**SMALL_SIZES, "max_sequence_length": PROTEIN_WINDOW},
        num_labels=2,
        label_mean=[0.5, 3.0],
        label_std=[1.5, 0.75],
    )
    model = ProteinDNAPerceiverForSequenceClassification(config)
    randomise_batch_norms(model)
    model.save_pretrained(folder)
    NucleotideTokenizer().save_pretrained(folder)
    AminoAcidTokenizer().save_pretrained(folder / "protein_tokenizer")
    return folder


def randomise_batch_norms(model: torch.nn.Module) -> None:
    """Running statistics away from (0, 1), as after training: a batch norm that used batch statistics in evaluation
    would then give other numbers."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def random_dna(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACGTN"), size=length, p=[0.24, 0.24, 0.24, 0.24, 0.04]))


def random_protein(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=length))


def label_scale(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    config = json.loads((Path(folder) / "config.json").read_text())
    if config.get("label_mean") is None:
        return None
    return np.asarray(config["label_mean"]), np.asarray(config["label_std"])


def direct_predictions(folder: Path, sequences, features=None, proteins=None) -> np.ndarray:
    """(n, outputs): the head called on each sequence alone, through the checkpoint's tokenizer(s), times the
    config's label_std plus its label_mean (read from config.json)."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    protein_tokenizer = AutoTokenizer.from_pretrained(folder / "protein_tokenizer") if proteins is not None else None
    rows = []
    with torch.no_grad():
        for index, sequence in enumerate(sequences):
            inputs = dict(tokenizer([sequence], return_tensors="pt"))
            if features is not None:
                inputs["features"] = torch.tensor([features[index]], dtype=torch.float32)
            if proteins is not None:
                protein = protein_tokenizer([proteins[index]], return_tensors="pt")
                inputs["protein_input_ids"] = protein["input_ids"]
                inputs["protein_attention_mask"] = protein["attention_mask"]
            rows.append(model(**inputs).logits[0].double().numpy())
    logits = np.stack(rows)
    scale = label_scale(folder)
    return logits if scale is None else logits * scale[1] + scale[0]


def direct_embeddings(folder: Path, sequences, features=None, latents: bool = False) -> np.ndarray:
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = []
    with torch.no_grad():
        for index, sequence in enumerate(sequences):
            inputs = dict(tokenizer([sequence], return_tensors="pt"))
            if features is not None:
                inputs["features"] = torch.tensor([features[index]], dtype=torch.float32)
            output = model(**inputs)
            rows.append((output.last_hidden_state if latents else output.pooler_output)[0].numpy())
    return np.stack(rows)


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = Path(path).read_text().splitlines()
    header = lines[0].split("\t")
    return header, [line.split("\t") for line in lines[1:]]


def tsv_column(path: Path, name: str) -> np.ndarray:
    header, rows = read_tsv(path)
    return np.array([float(row[header.index(name)]) for row in rows])
