"""A sequence's numbers do not depend on the batch it shares. On CPU the chunked cross-attention and the latents it
feeds are the same bits for a sequence alone, in batches of 3 and of 16, padded to the longest of each; with one
thread, so are the model's outputs (the convolutional branch, the summary and the head). The kernel is also pinned to
a plain softmax attention."""

import re

import pytest
import torch

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification, DNAPerceiverModel
from expression_perceiver.modeling import kernels_expression_perceiver as kernels
from tests.conftest import REPOSITORY

# Mixed lengths around the default chunk (512 positions for 128 latents): one position, chunks just short of, at
# and just past full, several chunks with a partial last one.
LENGTHS = [2_600, 1, 511, 512, 513, 1_700, 2_599, 90, 1_024, 1_500, 2_048, 777, 2_600, 300, 1_025, 2_000]


def reproducibility_bullet() -> str:
    readme = (REPOSITORY / "README.md").read_text()
    bullet = re.search(r"^- A sequence's predictions depend on its batch.*?(?=^- |^$)", readme, re.M | re.S)
    assert bullet, "README.md's reproducibility bullet is missing"
    return " ".join(bullet[0].split())


def large_activation_model(seed: int = 0) -> DNAPerceiverModel:
    """The default widths, with latents and cross-attention weights scaled up: scores of hundreds, beyond what exp()
    takes unshifted, and latents of tens."""
    torch.manual_seed(seed)
    model = DNAPerceiverModel(DNAPerceiverConfig(num_features=8, dropout=0.0, max_sequence_length=3_000)).eval()
    attention = model.perceiver.layers[0].cross_attention.attention
    with torch.no_grad():
        model.perceiver.latents.mul_(100.0)
        for weight in (attention.to_query.weight, attention.to_key_value.weight, attention.to_out.weight):
            weight.mul_(30.0)
    return model


def sequences(seed: int = 1) -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = [torch.randint(5, 10, (length,), generator=generator) for length in LENGTHS]
    return ids, 5.0 * torch.randn(len(LENGTHS), 8, generator=generator)


def padded(group: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in group)
    input_ids = torch.zeros(len(group), width, dtype=torch.long)
    mask = torch.zeros(len(group), width, dtype=torch.long)
    for row, ids in enumerate(group):
        input_ids[row, : len(ids)], mask[row, : len(ids)] = ids, 1
    return input_ids, mask


def run_in_batches(model, ids: list[torch.Tensor], features: torch.Tensor, size: int) -> dict[str, torch.Tensor]:
    """Each output of the model for every sequence, run in consecutive batches of `size` padded to their longest."""
    outputs: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(ids), size):
        input_ids, mask = padded(ids[start : start + size])
        with torch.no_grad():
            output = model(input_ids=input_ids, attention_mask=mask, features=features[start : start + size])
        for name, value in output.items():
            outputs.setdefault(name, []).append(value)
    return {name: torch.cat(values) for name, values in outputs.items()}


@pytest.mark.parametrize("threads", [1, 4])
def test_latents_are_the_same_bits_in_any_batch_and_padding(threads, monkeypatch):
    assert "the latents it feeds give the same bits in any batch, padded to any length" in reproducibility_bullet()
    torch.set_num_threads(threads)  # the suite's fixture restores it
    model = large_activation_model()
    ids, features = sequences()
    bounds = []
    kernel = kernels.ChunkedSequenceAttention.apply

    def bounded_kernel(query, *arguments):
        bounds.append(float(query.norm(dim=-1).min()) * arguments[4] * query.shape[-1] ** 0.5)
        return kernel(query, *arguments)

    monkeypatch.setattr(kernels.ChunkedSequenceAttention, "apply", bounded_kernel)
    alone = run_in_batches(model, ids, features, 1)
    assert alone["last_hidden_state"].abs().max() > 50.0  # large activations
    assert min(bounds) > kernels.UNSHIFTED_SCORE_LIMIT  # every row's scores may exceed what exp() takes unshifted
    for size in (3, 16):
        batched = run_in_batches(model, ids, features, size)
        for row, length in enumerate(LENGTHS):
            same = torch.equal(batched["last_hidden_state"][row], alone["last_hidden_state"][row])
            assert same, f"sequence of {length} positions in batches of {size}"


def test_outputs_are_the_same_bits_in_any_batch_and_padding():
    assert "so do the model's outputs (logits and `pooler_output`, float32)" in reproducibility_bullet()
    torch.set_num_threads(1)  # the suite's fixture restores it
    torch.manual_seed(0)
    config = DNAPerceiverConfig(num_features=8, dropout=0.0, max_sequence_length=3_000)
    head, base = DNAPerceiverForSequenceClassification(config).eval(), DNAPerceiverModel(config).eval()
    ids, features = sequences()
    for model, name in ((head, "logits"), (base, "pooler_output")):
        alone = run_in_batches(model, ids, features, 1)[name]
        for size in (3, 16):
            batched = run_in_batches(model, ids, features, size)[name]
            for row, length in enumerate(LENGTHS):
                same = torch.equal(batched[row], alone[row])
                assert same, f"{name} of the sequence of {length} positions in batches of {size}"


def plain_attention(query, tokens, positions, input_ids, mask, scale, eps) -> torch.Tensor:
    """softmax(query x^T * scale) x over x = LayerNorm(token_table[ids] + position_table), no affine, in float64."""
    x = torch.nn.functional.layer_norm((tokens[input_ids] + positions).double(), (tokens.shape[-1],), eps=eps)
    scores = torch.einsum("bqd,bld->bql", query.double(), x) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], -torch.inf)
    return torch.einsum("bql,bld->bqd", scores.softmax(-1), x)


def test_each_query_row_shifts_its_exponentials_on_its_own():
    """One sequence's scores beyond exp's range make only its own rows subtract their maximum: the other sequences
    of the batch keep the bits they have alone, and every row equals the plain softmax."""
    torch.manual_seed(0)
    queries, width, chunk, scale, eps = 16, 32, 64, 0.125, 1e-5
    tokens, positions = torch.randn(10, width), torch.randn(400, width)
    tokens, positions = tokens - tokens.mean(-1, keepdim=True), positions - positions.mean(-1, keepdim=True)
    ids = [torch.randint(5, 10, (length,)) for length in (400, 150, 333)]
    query = torch.randn(3, queries, width) * torch.tensor([0.1, 40.0, 0.1])[:, None, None]  # row 1: scores of 100s

    def attend(rows: list[int]) -> torch.Tensor:
        input_ids, mask = padded([ids[row] for row in rows])
        mask = mask.bool() if not mask.all() else None
        arguments = (tokens, positions[: input_ids.shape[1]], input_ids, mask, scale, eps, 0, chunk)
        return kernels.ChunkedSequenceAttention.apply(query[rows], *arguments)

    together = attend([0, 1, 2])
    for row in range(3):
        assert torch.equal(together[row], attend([row])[0]), f"row {row}"
    input_ids, mask = padded(ids)
    plain = plain_attention(query, tokens, positions, input_ids, mask.bool(), scale, eps)
    torch.testing.assert_close(together.double(), plain, rtol=1e-5, atol=1e-5)


def test_chunk_length_is_a_function_of_the_model_only():
    assert kernels.positions_per_chunk(128, 20_000) == 512  # 128 latents x 1 head: 256 KB of scores a sequence
    assert kernels.positions_per_chunk(8, 1_000) == 1_000  # a small model: one chunk up to its longest input
    assert kernels.positions_per_chunk(128, 20_000, fixed=48) == 48  # config.attention_chunk_length
    model = DNAPerceiverModel(DNAPerceiverConfig(num_features=0, cross_attention_heads=2))
    sequence = model.perceiver.embedding.read_by(torch.full((3, 700), 5), None, model.config)
    assert sequence.chunk_length == 256  # 256 query rows (latents x heads), whatever the batch
