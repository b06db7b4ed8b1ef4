"""Substitution scoring (`model.score_substitutions`) against the full forward on every mutant.

Each test scores mutants of one reference incrementally and through the model's forward on the mutants' whole
sequences, and asks for the same logits to 1e-5: saturation scans (every letter, N included, at every position, so
substitutions within every receptive field of both ends), with and without the convolutional branch, per-gene
features, padding, several positions per mutant, the cross-attention implementations, a protein model, batch norms
with running statistics away from (0, 1). Models it cannot reproduce are refused.
"""

import json

import pytest
import torch
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from expression_perceiver import (
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
)
from expression_perceiver.modeling.substitutions_expression_perceiver import (
    DIRECT_SCALE_LIMIT,
    SubstitutionScorer,
    supports_incremental,
    unsupported_reason,
)
from tests.small_models import SMALL_SIZES

TOLERANCE = 1e-5
DNA_LETTERS = list(range(5, 10))  # A C G T N
PROTEIN_LETTERS = list(range(5, 25))  # the 20 standard amino acids
# Pooling by 3 and 2 keeps every level of the branch several positions long on short test sequences.
SHORT_POOLS = dict(conv_stem_pool_size=3, conv_tower_pool_size=2)
# Weights ten times the default initialisation's: an untrained model's logits then move by up to 0.1 between mutants,
# not 1e-4, so that a difference from the forward shows (their rounding grows with them, to a few 1e-7).
SENSITIVE = dict(initializer_range=0.2)


def randomise_batch_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics away from (0, 1), as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.num_features, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.num_features, generator=generator))


def dna_model(seed: int = 0, max_sequence_length: int = 300, **overrides) -> DNAPerceiverForSequenceClassification:
    torch.manual_seed(seed)
    config = DNAPerceiverConfig(**{**SMALL_SIZES, **SENSITIVE, "max_sequence_length": max_sequence_length, **overrides})
    model = DNAPerceiverForSequenceClassification(config)
    randomise_batch_norms(model, seed)
    return model.eval()


def random_ids(length: int, letters: list[int], seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.tensor(letters)[torch.randint(len(letters), (1, length), generator=generator)]


def saturation(length: int, letters: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every letter at every position (the reference's own letter included): (mutants, 1) each."""
    positions = torch.arange(length).repeat_interleave(len(letters))[:, None]
    return positions, torch.tensor(letters).repeat(length)[:, None]


def full_logits(model, input_ids, positions, tokens, attention_mask=None, features=None, batch: int = 512):
    """The forward on every mutant's whole sequence."""
    parts = []
    with torch.no_grad():
        for start in range(0, positions.shape[0], batch):
            where, what = positions[start : start + batch], tokens[start : start + batch]
            mutants = input_ids.expand(where.shape[0], -1).scatter(1, where, what)
            mask = None if attention_mask is None else attention_mask.expand(where.shape[0], -1)
            rows = None if features is None else features.expand(where.shape[0], -1)
            parts.append(model(input_ids=mutants, attention_mask=mask, features=rows).logits)
    return torch.cat(parts)


def assert_scores_equal(model, input_ids, positions, tokens, attention_mask=None, features=None, batch_size=64):
    expected = full_logits(model, input_ids, positions, tokens, attention_mask, features)
    scored = model.score_substitutions(input_ids, positions, tokens, attention_mask, features, batch_size=batch_size)
    assert scored.shape == expected.shape
    difference = (scored - expected).abs().max().item()
    assert difference < TOLERANCE, f"largest difference {difference:.2e}"
    # The mutants differ by far more than the tolerance: scores that ignored a substitution would not pass.
    assert (expected.amax(dim=0) - expected.amin(dim=0)).min() > 100 * TOLERANCE
    return difference


@pytest.mark.parametrize(
    "sequence_attention, conv_branch, num_features",
    [("chunked", True, 0), ("folded", True, 0), ("chunked", False, 0), ("chunked", True, 3), ("folded", False, 3)],
)
def test_saturation_scan_equals_the_full_forward(sequence_attention, conv_branch, num_features):
    model = dna_model(
        sequence_attention=sequence_attention,
        use_conv_branch=conv_branch,
        num_features=num_features,
        attention_chunk_length=48,
        **SHORT_POOLS,
    )
    input_ids = random_ids(150, DNA_LETTERS)
    features = 3.0 * torch.randn(1, num_features) if num_features else None
    assert_scores_equal(model, input_ids, *saturation(150, DNA_LETTERS), features=features)


def test_default_pool_sizes_and_several_heads():
    """The branch's default pooling (12, then 6 twice: one position left after the tower), three heads."""
    model = dna_model(num_features=2, cross_attention_heads=3)
    input_ids = random_ids(300, DNA_LETTERS)
    positions, tokens = saturation(300, DNA_LETTERS)
    assert_scores_equal(model, input_ids, positions[::2], tokens[::2], features=torch.randn(1, 2))


def test_even_kernels_pad_more_on_the_right():
    model = dna_model(conv_stem_kernel_size=8, conv_tower_kernel_size=4, conv_pooled_positions=3, **SHORT_POOLS)
    input_ids = random_ids(97, DNA_LETTERS)
    assert_scores_equal(model, input_ids, *saturation(97, DNA_LETTERS))


def test_sequence_shorter_than_the_model_right_padded():
    """A 173-base reference padded to 300 positions: the mask is repeated for every mutant in the full forward."""
    model = dna_model(num_features=3, **SHORT_POOLS)
    input_ids = random_ids(300, DNA_LETTERS)
    attention_mask = (torch.arange(300) < 173)[None].long()
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    features = torch.randn(1, 3)
    assert_scores_equal(model, input_ids, *saturation(173, DNA_LETTERS), attention_mask, features)


def test_references_with_unknown_and_special_tokens():
    """N, [UNK] and [MASK] in the reference (all-zero one-hot in the branch, their own embeddings in the
    attention), substituted by letters and letters substituted by them."""
    model = dna_model(**SHORT_POOLS)
    input_ids = random_ids(120, DNA_LETTERS + [9, 9, 9, 1, 4])
    assert bool((input_ids == 9).any()) and bool((input_ids == 1).any())
    assert_scores_equal(model, input_ids, *saturation(120, DNA_LETTERS + [1, 4]))


def test_protein_model_scan_of_19_alternatives():
    torch.manual_seed(0)
    config = ProteinPerceiverConfig(**{**SMALL_SIZES, **SENSITIVE, "max_sequence_length": 120, **SHORT_POOLS})
    model = ProteinPerceiverForSequenceClassification(config)
    randomise_batch_norms(model)
    model.eval()
    input_ids = random_ids(80, PROTEIN_LETTERS)
    positions, tokens = saturation(80, PROTEIN_LETTERS)
    alternative = tokens[:, 0] != input_ids[0, positions[:, 0]]
    assert int(alternative.sum()) == 80 * 19
    assert_scores_equal(model, input_ids, positions[alternative], tokens[alternative])


@pytest.mark.parametrize("k", [2, 3])
def test_several_positions_per_mutant(k):
    """k positions per mutant: close together (their windows overlap at every level), far apart, at both ends."""
    model = dna_model(num_features=2, **SHORT_POOLS)
    length = 160
    input_ids = random_ids(length, DNA_LETTERS)
    generator = torch.Generator().manual_seed(k)
    spread = torch.stack([torch.randperm(length, generator=generator)[:k] for _ in range(150)])
    start = torch.randint(0, length - 6, (150, 1), generator=generator)
    close = start + torch.stack([torch.randperm(6, generator=generator)[:k] for _ in range(150)])
    ends = torch.tensor([[0, length - 1, 1][:k], [length - 1, length - 2, length - 3][:k], [0, 1, 2][:k]])
    positions = torch.cat([spread, close, ends])
    tokens = torch.randint(5, 10, positions.shape, generator=generator)
    assert_scores_equal(model, input_ids, positions, tokens, features=torch.randn(1, 2), batch_size=37)


def test_batches_mixing_positions_give_the_same_scores_in_any_order():
    model = dna_model(**SHORT_POOLS)
    input_ids = random_ids(130, DNA_LETTERS)
    positions, tokens = saturation(130, DNA_LETTERS)
    order = torch.randperm(positions.shape[0], generator=torch.Generator().manual_seed(0))
    assert_scores_equal(model, input_ids, positions[order], tokens[order], batch_size=23)
    scorer = SubstitutionScorer(model, input_ids)
    in_order = scorer.score(positions, tokens, batch_size=1_000)
    shuffled = scorer.score(positions[order], tokens[order], batch_size=7)
    assert (in_order[order] - shuffled).abs().max() < 1e-6
    assert scorer.score(positions[:0], tokens[:0]).shape == (0, 1)


def test_positions_holding_most_of_a_querys_weight():
    """Scores of thousands: one position holds all or most of some rows' weight. Removing it from the reference's
    sums cancels them (those rows are summed again over the sequence) or leaves a large rescaling (those mutants'
    cross-attention block runs on their reads, not in closed form)."""
    model = dna_model(max_sequence_length=100, use_conv_branch=False)
    with torch.no_grad():
        model.perceiver.layers[0].cross_attention.attention.to_query.weight.mul_(3_000.0)
    input_ids = random_ids(60, DNA_LETTERS)
    positions, tokens = saturation(60, DNA_LETTERS)
    terms = SubstitutionScorer(model, input_ids).read.terms(positions, tokens)
    assert bool(terms.cancelled.any())
    assert bool(((terms.scale > DIRECT_SCALE_LIMIT) & ~terms.cancelled).any())
    assert_scores_equal(model, input_ids, positions, tokens)


def test_unsupported_models_are_refused():
    two_layers = DNAPerceiverConfig(**SMALL_SIZES, num_layers=2, max_sequence_length=100)
    assert not supports_incremental(two_layers)
    assert "num_layers" in unsupported_reason(two_layers)
    model = DNAPerceiverForSequenceClassification(two_layers).eval()
    input_ids = random_ids(50, DNA_LETTERS)
    with pytest.raises(ValueError, match="num_layers"):
        model.score_substitutions(input_ids, torch.tensor([[3]]), torch.tensor([[6]]))
    model = dna_model(max_sequence_length=100)
    assert supports_incremental(model) and supports_incremental(model.config)
    with pytest.raises(ValueError, match="evaluation mode"):
        model.train().score_substitutions(input_ids, torch.tensor([[3]]), torch.tensor([[6]]))
    assert "float32" in unsupported_reason(model.eval().double())
    protein_dna = ProteinDNAPerceiverForSequenceClassification(
        ProteinDNAPerceiverConfig(dna_config=SMALL_SIZES, protein_config=SMALL_SIZES)
    )
    assert "protein_dna_perceiver" in unsupported_reason(protein_dna)


def test_invalid_substitutions_are_refused():
    model = dna_model(max_sequence_length=100)
    input_ids = random_ids(100, DNA_LETTERS)
    mask = (torch.arange(100) < 60)[None]
    cases = {
        "valid part": (torch.tensor([[60]]), torch.tensor([[6]]), mask),  # a padded position
        "vocabulary": (torch.tensor([[3]]), torch.tensor([[10]]), None),
        "at most once": (torch.tensor([[3, 3]]), torch.tensor([[6, 7]]), None),
        "right padding": (torch.tensor([[3]]), torch.tensor([[6]]), ~mask),
    }
    for message, (positions, tokens, attention_mask) in cases.items():
        with pytest.raises(ValueError, match=message):
            model.score_substitutions(input_ids, positions, tokens, attention_mask)


def test_saved_model_loaded_through_remote_code_scores_substitutions(tmp_path):
    model = dna_model(num_features=2, **SHORT_POOLS)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "substitutions_expression_perceiver.py").is_file()
    # The class as `trust_remote_code` loads it where our package is absent: from the checkpoint's copied code (in
    # this process the registered Auto classes would take our package's instead).
    name = "modeling_expression_perceiver.DNAPerceiverForSequenceClassification"
    assert json.loads((tmp_path / "config.json").read_text())["auto_map"]["AutoModelForSequenceClassification"] == name
    remote_class = get_class_from_dynamic_module(name, str(tmp_path))
    assert remote_class.__module__.startswith("transformers_modules")
    loaded = remote_class.from_pretrained(tmp_path).eval()
    input_ids = random_ids(90, DNA_LETTERS)
    positions, tokens = saturation(90, DNA_LETTERS)
    assert_scores_equal(loaded, input_ids, positions, tokens, features=torch.randn(1, 2))
