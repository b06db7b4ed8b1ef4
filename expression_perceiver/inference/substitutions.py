"""Scoring substitutions of one sequence at the cost of what each changes (`model.score_substitutions`, the
bundle's exact incremental path) where every member of a `Predictor` supports it, for `mutagenesis`, attribute's ISM
and the SNVs and equal-length substitutions of `variant_effects`; the full forward pass elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from ..data.standardization import in_data_units
from ..modeling.substitutions_expression_perceiver import unsupported_reason
from .inputs import Example
from .predictor import Predictor

INCREMENTAL = "incremental: each substitution at the cost of what it changes (model.score_substitutions)"
FULL = "full: every mutant through the whole forward pass"


def scan_path(predictor: Predictor, incremental: bool) -> str:
    """The incremental path where every member supports it exactly, in float32, reading the sequence as given (a
    model trained with positions dropped reads a cropped window at evaluation); else the full forward."""
    if not incremental or predictor.precision != torch.float32:
        return FULL
    for member in predictor.members:
        supported = getattr(member.model, "score_substitutions", None) is not None
        if not supported or unsupported_reason(member.model) is not None or member.collator.applies_masking():
            return FULL
    return INCREMENTAL


def incremental_scan(
    predictor: Predictor,
    reference: Example,
    positions: np.ndarray,
    letters: str,
    rows: np.ndarray,
    columns: np.ndarray,
    shape: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """`ref_pred` (models, outputs) and `alt_pred` (positions, letters, models, outputs; NaN where nothing was
    made) of a scan, as the full path's `place_results` gives them: the reference scored once, each substitution
    (letter `columns[i]` at `positions[rows[i]]`) incrementally."""
    alt_pred = np.full(shape, np.nan)
    alphabet = np.array(list(letters))
    substituted = substituted_values(predictor, reference, positions[rows][:, None], alphabet[columns][:, None])
    alt_pred[rows, columns] = substituted
    return predictor.predict_batch([reference])[0], alt_pred


def substituted_values(
    predictor: Predictor, reference: Example, positions: np.ndarray, letters: np.ndarray
) -> np.ndarray:
    """(mutants, members, outputs) predictions, in the predictions' units, of the mutants of `reference` that hold
    `letters[i, j]` at `positions[i, j]` (mutants x k), each member scoring them incrementally."""
    values = np.empty((len(positions), len(predictor.members), predictor.num_outputs))
    for index, (member, batch) in enumerate(predictor._batches([reference])):
        flat = [str(letter) for letter in letters.reshape(-1)]
        tokens = torch.tensor(member.tokenizer.convert_tokens_to_ids(flat), device=predictor.device)
        with torch.no_grad():
            logits = member.model.score_substitutions(
                batch["input_ids"][0],
                torch.as_tensor(positions, device=predictor.device),
                tokens.reshape(letters.shape),
                attention_mask=batch.get("attention_mask"),
                features=batch.get("features"),
            )
        scale = predictor.scales[index]
        logits = logits.double().cpu().numpy()
        values[:, index] = in_data_units(logits, *scale) if scale is not None else logits
    return values


__all__ = ["FULL", "INCREMENTAL", "incremental_scan", "scan_path", "substituted_values"]
