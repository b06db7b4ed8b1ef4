"""Runs that would give a meaningless number are refused before training, with one line naming what is wrong, and
leave no output folder behind."""

import pytest

from expression_perceiver.cli import main as cli
from expression_perceiver.training.run import main
from tests.training.test_run import tiny_run_arguments


def test_a_protein_dataset_does_not_train_a_dna_model(tmp_path):
    assert cli(["generate", "proteins", str(tmp_path / "proteins.tsv"), "--num", "60"]) == 0
    assert cli(["prepare", "table", str(tmp_path / "proteins.tsv"), "--alphabet", "protein",
                "--label-column", "label", "-o", str(tmp_path / "data")]) == 0  # fmt: skip
    arguments = tiny_run_arguments(tmp_path / "run", "--dataset_dir", str(tmp_path / "data"))
    with pytest.raises(ValueError, match=r"sequences are protein .* but a dna_perceiver reads dna.*protein_perceiver"):
        main(arguments)
    with pytest.raises(ValueError, match=r"sequences are dna .* but a protein_perceiver reads protein"):
        main(tiny_run_arguments(tmp_path / "run", "--model_type", "protein_perceiver"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num_train_epochs", "-1"], "--num_train_epochs must be positive"),
        (["--num_train_epochs", "0"], "--num_train_epochs must be positive"),
        (["--mask_strategy", "first", "--mask_length", "100000"], "covers the whole of every training sequence"),
        (["--mask_strategy", "sideways"], "invalid choice"),
    ],
)
def test_arguments_that_train_nothing_are_refused_in_one_line(tmp_path, capsys, flags, message):
    code = cli(["train", *tiny_run_arguments(tmp_path / "run", *flags)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in error[-1] and "Traceback" not in "\n".join(error)
    assert not (tmp_path / "run").exists()
