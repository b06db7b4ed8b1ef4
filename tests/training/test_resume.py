"""A run interrupted after a checkpoint and resumed with `--resume_from_checkpoint auto` ends like an
uninterrupted one."""

import pytest
from transformers import TrainerCallback

from expression_perceiver.training.run import main
from tests.training.test_run import tiny_run_arguments


class StopAfterFirstEpoch(TrainerCallback):
    """Stands in for a crash after the first epoch's checkpoint was written."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


def test_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(tmp_path):
    arguments = ["--num_train_epochs", "3"]  # the tiny model keeps dropout: RNG states must resume too
    uninterrupted = main(tiny_run_arguments(tmp_path / "whole", *arguments))
    main(tiny_run_arguments(tmp_path / "resumed", *arguments), callbacks=[StopAfterFirstEpoch()])
    assert (tmp_path / "resumed" / "checkpoint-8").is_dir()
    resumed = main(tiny_run_arguments(tmp_path / "resumed", *arguments, "--resume_from_checkpoint", "auto"))
    assert resumed["train"]["epoch"] == uninterrupted["train"]["epoch"] == 3
    for name in ("r2", "mse", "pearson"):
        assert resumed["test"][name] == pytest.approx(uninterrupted["test"][name], rel=1e-5, abs=1e-6)
        assert resumed["validation"][name] == pytest.approx(uninterrupted["validation"][name], rel=1e-5, abs=1e-6)
