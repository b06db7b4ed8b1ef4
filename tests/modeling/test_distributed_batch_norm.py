"""The convolutional branch's batch norms across processes: a training step split over two gloo ranks computes the
gradients one process computes on the whole batch (what DDP averages is then what one process would apply)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from expression_perceiver import DNAPerceiverForSequenceClassification
from tests.modeling.test_modeling_expression_perceiver import random_batch, small_dna_config

WORLD_SIZE = 2


def whole_batch():
    torch.manual_seed(0)
    model = DNAPerceiverForSequenceClassification(small_dna_config(dropout=0.0)).train()
    input_ids, attention_mask = random_batch(5, 10, [300, 211, 57, 300])
    return model, input_ids, attention_mask, torch.randn(4, 8), torch.randn(4)


def step(model, input_ids, attention_mask, features, labels) -> dict[str, torch.Tensor]:
    model.zero_grad()
    model(input_ids=input_ids, attention_mask=attention_mask, features=features, labels=labels).loss.backward()
    return {name: parameter.grad for name, parameter in model.named_parameters()}


def rank_step(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    model, input_ids, attention_mask, features, labels = whole_batch()
    half = slice(2 * rank, 2 * rank + 2)  # each rank holds two of the four sequences
    gradients = step(model, input_ids[half], attention_mask[half], features[half], labels[half])
    for gradient in gradients.values():
        dist.all_reduce(gradient)
        gradient /= WORLD_SIZE  # what DDP applies
    if rank == 0:
        torch.save(
            {"gradients": gradients, "running_mean": model.perceiver.conv_branch.stem_residual.norm.running_mean},
            out_file,
        )
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_compute_the_whole_batch_gradients_with_the_conv_branch_on(tmp_path):
    mp.spawn(rank_step, args=(str(tmp_path / "init"), str(tmp_path / "rank0.pt")), nprocs=WORLD_SIZE, join=True)
    distributed = torch.load(tmp_path / "rank0.pt")
    model, *batch = whole_batch()
    expected = step(model, *batch)
    for name, gradient in expected.items():
        torch.testing.assert_close(distributed["gradients"][name], gradient, rtol=1e-4, atol=1e-6, msg=name)
    torch.testing.assert_close(distributed["running_mean"], model.perceiver.conv_branch.stem_residual.norm.running_mean)
