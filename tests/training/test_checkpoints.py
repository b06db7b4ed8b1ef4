"""Output folders: one live run at a time, and complete checkpoints only."""

import pytest

from expression_perceiver.training.checkpoints import (
    claim_output_dir,
    last_complete_checkpoint,
    lock_output_dir,
    output_dir_in_use,
)


def test_a_folder_held_by_a_live_run_is_refused_and_freed_when_it_ends(tmp_path):
    held = lock_output_dir(tmp_path / "run")
    assert output_dir_in_use(tmp_path / "run")
    with pytest.raises(ValueError, match=r"in use by another running process \(pid \d+\)"):
        lock_output_dir(tmp_path / "run")
    held.close()  # as the system does when the process ends, however it ends
    assert not output_dir_in_use(tmp_path / "run")
    lock_output_dir(tmp_path / "run").close()


def test_unidentified_run_outputs_are_refused_unless_overwritten(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint-5").mkdir(parents=True)
    identity = {"training": {"seed": 1}, "data_fingerprint": "x"}
    with pytest.raises(ValueError, match="unidentified run"):
        claim_output_dir(run, identity, overwrite=False)
    claim_output_dir(run, identity, overwrite=True)
    assert not (run / "checkpoint-5").exists() and (run / "run_identity.json").is_file()
    claim_output_dir(run, {**identity, "added_later": 1}, overwrite=False)  # a newer argument is not a new run


def test_no_complete_checkpoint_means_none(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3')  # cut short
    assert last_complete_checkpoint(tmp_path) is None
