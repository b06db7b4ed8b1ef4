import subprocess
import sys
from pathlib import Path

import pytest

from expression_perceiver.cli import main
from tests.processes import process_timeout

REPOSITORY = Path(__file__).resolve().parents[1]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["--help"])
    assert exit_code.value.code == 0
    listed = capsys.readouterr().out
    for command in (
        "train",
        "prepare",
        "baseline",
        "generate",
        "study",
        "predict",
        "embed",
        "variant-effect",
        "mutagenesis",
    ):
        assert command in listed


def test_train_with_a_bad_config_field_is_one_line_and_exit_code_2(tmp_path, capsys):
    # In this process: `main` returns what the installed command exits with (a real process exits 3 on a failed push
    # in tests/training/test_hub_faults.py, with the same one-line handling).
    assert main(["train", "--config_overrides", "num_latent=8", "--output_dir", str(tmp_path / "run")]) == 2
    errors = capsys.readouterr().err
    assert errors.strip().splitlines()[-1] == (
        "expression-perceiver train: error: --config_overrides: unknown config field(s) num_latent; "
        "see DNAPerceiverConfig"
    )
    assert "Traceback" not in errors
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_train_on_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    assert main(["train", "--dataset_dir", str(tmp_path), "--output_dir", str(tmp_path / "run")]) == 2
    errors = capsys.readouterr().err
    assert "not a prepared dataset" in errors.strip().splitlines()[-1] and "Traceback" not in errors


def test_generate_writes_a_table_that_prepare_reads(tmp_path):
    assert main(["generate", "promoters", str(tmp_path / "p.tsv.gz"), "--num", "40", "--length", "1000"]) == 0
    prepared = main([
        "prepare", "table", str(tmp_path / "p.tsv.gz"), "--alphabet", "dna", "-o", str(tmp_path / "data"),
        *[arg for i in range(8) for arg in ("--feature-column", f"feature_{i}")],
    ])  # fmt: skip
    assert prepared == 0
    assert (tmp_path / "data" / "expression_perceiver.json").is_file()


# Builds every parser, asks for help and makes argument errors, then names the heavy libraries that got imported.
STARTUP_PROBE = """
import contextlib, io, sys
from expression_perceiver.cli import build_parser, main

build_parser()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for argv in (["--help"], ["predict", "--help"], ["study", "run", "--help"], ["predict", "in.fa"]):
        try:
            main(argv)
        except SystemExit:
            pass
    codes = [
        main(["predict", "missing.fa", "-m", "model", "-o", "out.tsv"]),
        main(["prepare", "table", "missing.tsv", "--alphabet", "dna", "-o", "out"]),
        main(["study", "plan", "missing.yaml"]),
    ]
print(codes, sorted(name for name in ("torch", "transformers", "datasets", "pandas") if name in sys.modules))
"""


@pytest.mark.slow
def test_help_argument_errors_and_missing_files_answer_without_importing_the_heavy_libraries(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=process_timeout()
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[2, 2, 2] []"


def test_a_missing_input_file_is_one_line_naming_it(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.fa"), "-m", "model", "-o", str(tmp_path / "out.tsv")]) == 2
    missing = tmp_path / "missing.fa"
    assert capsys.readouterr().err == f"expression-perceiver predict: error: missing.fa: file not found ({missing})\n"
    assert not (tmp_path / "out.tsv").exists()
