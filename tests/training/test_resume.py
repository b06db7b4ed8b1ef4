"""A run interrupted after a checkpoint and resumed with `--resume_from_checkpoint auto` ends like an
uninterrupted one: it skips a checkpoint cut short by the interruption, reports the whole run, evaluates without
training on when training had finished, and a different run refuses the folder."""

import json
import shutil

import pytest
from transformers import TrainerCallback

from expression_perceiver.training.run import main
from tests.training.test_run import tiny_run_arguments


class StopAfterFirstEpoch(TrainerCallback):
    """Stands in for a crash after the first epoch's checkpoint was written."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_training_stop = True


def as_left_by_a_kill_during_its_save(complete, partial) -> None:
    """The folder a kill leaves while the Trainer writes a checkpoint: weights cut short, no state file yet."""
    shutil.copytree(complete, partial)
    weights = partial / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (partial / "trainer_state.json").unlink()


def assert_same_metrics(resumed: dict, uninterrupted: dict) -> None:
    for name in ("r2", "mse", "pearson"):
        assert resumed["test"][name] == pytest.approx(uninterrupted["test"][name], rel=1e-5, abs=1e-6)
        assert resumed["validation"][name] == pytest.approx(uninterrupted["validation"][name], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_resumed_run_ends_with_the_metrics_of_an_uninterrupted_one(tmp_path):
    arguments = ["--num_train_epochs", "3"]  # the tiny model keeps dropout: RNG states must resume too
    uninterrupted = main(tiny_run_arguments(tmp_path / "whole", *arguments))
    main(tiny_run_arguments(tmp_path / "resumed", *arguments), callbacks=[StopAfterFirstEpoch()])
    assert (tmp_path / "resumed" / "checkpoint-8").is_dir()
    as_left_by_a_kill_during_its_save(tmp_path / "resumed" / "checkpoint-8", tmp_path / "resumed" / "checkpoint-16")

    resumed = main(tiny_run_arguments(tmp_path / "resumed", *arguments, "--resume_from_checkpoint", "auto"))
    assert resumed["train"]["epoch"] == uninterrupted["train"]["epoch"] == 3
    assert_same_metrics(resumed, uninterrupted)
    # The report covers the whole run, not only its resumed part.
    assert resumed["train"]["train_loss"] == pytest.approx(uninterrupted["train"]["train_loss"], rel=1e-5)
    assert resumed["train"]["global_step"] == uninterrupted["train"]["global_step"] == 24
    assert resumed["train"]["stopped"] == "completed num_train_epochs (3)"
    assert resumed["train"]["training_seconds"] > 0


@pytest.mark.slow
def test_a_run_stopped_after_training_evaluates_without_training_further(tmp_path):
    arguments = ["--num_train_epochs", "2", "--save_total_limit", "1"]
    finished = main(tiny_run_arguments(tmp_path / "run", *arguments))
    # Killed while writing the final model: its weights cut short, no reports yet.
    (tmp_path / "run" / "results.json").unlink()
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    again = main(tiny_run_arguments(tmp_path / "run", *arguments, "--resume_from_checkpoint", "auto"))
    assert_same_metrics(again, finished)
    assert again["train"]["global_step"] == finished["train"]["global_step"]
    assert again["train"]["train_loss"] == pytest.approx(finished["train"]["train_loss"], rel=1e-6)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test"]["r2"] == pytest.approx(
        finished["test"]["r2"], rel=1e-6
    )

    # Another run (another seed) refuses the folder, naming the difference, and leaves it as it was.
    before = sorted(path.name for path in (tmp_path / "run").iterdir())
    with pytest.raises(ValueError, match=r"holds another run \(training.seed: 42 -> 3\).*--overwrite_output_dir"):
        main(tiny_run_arguments(tmp_path / "run", *arguments, "--seed", "3", "--resume_from_checkpoint", "auto"))
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == before
