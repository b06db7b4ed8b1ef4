"""The expression-regression pipeline of the Hub bundle: `transformers.pipeline(model=..., trust_remote_code=True)` from
a local folder and from the Hub test server, in a process where `expression_perceiver` cannot be imported; predictions
in data units and z-scores, equal to the model called directly."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from expression_perceiver.inference.pipeline import add_pipeline
from tests.hub_server import HubTestServer, client_environment
from tests.inference.helpers import DNA_WINDOW, direct_predictions, label_scale, random_dna, save_dna_model
from tests.processes import process_timeout

RNG = np.random.default_rng(17)
SEQUENCES = [random_dna(RNG, length) for length in (180, 300, 420)]
FEATURES = [[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [-2.0, 1.0, 0.5]]

# Runs where only the checkpoint's files can provide the code.
PIPELINE_CHECK = textwrap.dedent(
    """
    import json, sys
    sys.modules["expression_perceiver"] = None
    try:
        import expression_perceiver
        raise SystemExit("expression_perceiver should not be importable here")
    except ImportError:
        pass
    from transformers import pipeline

    sequences, features, sources = json.loads(sys.argv[1])
    report = {}
    for name, source in sources.items():
        regress = pipeline(model=source, trust_remote_code=True, device="cpu")
        if name == "hub":
            inputs = [{"sequence": s, "features": f} for s, f in zip(sequences, features)]
        else:
            inputs = sequences
        report[name] = {
            "task": regress.task,
            "module": type(regress).__module__,
            "data": regress(inputs, batch_size=2),
            "z": regress(inputs, units="z-score"),
            "single": regress(inputs[0]),
        }
    print(json.dumps(report))
    """
)


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


@pytest.mark.slow
def test_pipeline_from_a_folder_and_from_the_hub_without_the_package(tmp_path, models):
    # A local folder of a model without label standardisation (z-scores); on the Hub, a model with it, 3 per-gene
    # features and 2 outputs.
    plain = add_pipeline(shutil.copytree(models["zscore"], tmp_path / "plain")).parent
    with_features = add_pipeline(shutil.copytree(models["dna"], tmp_path / "features")).parent
    config = json.loads((with_features / "config.json").read_text())
    assert config["custom_pipelines"]["expression-regression"]["impl"] == (
        "pipeline_expression_perceiver.ExpressionRegressionPipeline"
    )
    with HubTestServer() as hub:
        hub.create_repo("org/tiny-pipeline")
        hub.commit_files("org/tiny-pipeline", bundle_files(with_features))
        environment = {**client_environment(hub, tmp_path / "hf_home"), "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
        sources = {"plain": str(plain), "hub": "org/tiny-pipeline"}
        completed = subprocess.run(
            [sys.executable, "-c", PIPELINE_CHECK, json.dumps([SEQUENCES, FEATURES, sources])],
            env=environment, cwd=tmp_path, capture_output=True, text=True,
            timeout=process_timeout(starts=1, work_s=10),
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    cropped = [sequence[:DNA_WINDOW] for sequence in SEQUENCES]

    for name, folder, features in (("plain", plain, None), ("hub", with_features, FEATURES)):
        case = report[name]
        assert case["task"] == "expression-regression"
        assert case["module"].startswith("transformers_modules"), name  # the checkpoint's own pipeline file ran
        expected = direct_predictions(folder, cropped, features)
        scale = label_scale(folder)
        z_scores = expected if scale is None else (expected - scale[0]) / scale[1]
        outputs = ["output"] if expected.shape[1] == 1 else [f"output_{i}" for i in range(expected.shape[1])]
        got = np.array([[item["predictions"][output] for output in outputs] for item in case["data"]])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        got_z = np.array([[item["predictions"][output] for output in outputs] for item in case["z"]])
        np.testing.assert_allclose(got_z, z_scores, rtol=1e-5, atol=1e-5)
        assert {item["units"] for item in case["z"]} == {"z-score"}
        assert {item["units"] for item in case["data"]} == {"data" if scale is not None else "z-score"}
        single = [case["single"]["predictions"][output] for output in outputs]  # one input, not a list
        np.testing.assert_allclose(single, got[0], rtol=0, atol=1e-6)


def test_every_saved_checkpoint_declares_the_pipeline(tmp_path):
    folder = save_dna_model(tmp_path / "model", seed=0, num_features=0, num_labels=1)
    config = json.loads((folder / "config.json").read_text())
    assert "expression-regression" in (config.get("custom_pipelines") or {})
    assert (folder / "pipeline_expression_perceiver.py").is_file()
    assert os.path.getsize(folder / "pipeline_expression_perceiver.py") > 0


def test_the_modeling_file_declares_the_pipeline_as_the_pipeline_file_does():
    from expression_perceiver.modeling import modeling_expression_perceiver, pipeline_expression_perceiver

    assert modeling_expression_perceiver.PIPELINE_DECLARATION == pipeline_expression_perceiver.CUSTOM_PIPELINES
    assert modeling_expression_perceiver.PIPELINE_FILE == pipeline_expression_perceiver.PIPELINE_FILE


def test_the_protein_dna_pipeline_reads_promoter_features_and_protein(models):
    """In this process, through the checkpoint's own pipeline file: both inputs, the protein through the tokenizer in
    `protein_tokenizer/`, two outputs in data units."""
    from transformers import pipeline

    from tests.inference.helpers import random_protein

    folder = models["protein_dna"]
    proteins = [random_protein(RNG, length) for length in (40, 90, 60)]
    features = [[0.5, -1.0], [0.0, 0.0], [2.0, 1.0]]
    regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    inputs = [
        {"sequence": s, "features": f, "protein_sequence": p}
        for s, f, p in zip(SEQUENCES, features, proteins, strict=True)
    ]
    got = regress(inputs, batch_size=2)
    names = list(got[0]["predictions"])
    assert len(names) == 2 and {item["units"] for item in got} == {"data"}
    expected = direct_predictions(folder, [s[:DNA_WINDOW] for s in SEQUENCES], features, proteins)
    np.testing.assert_allclose([[item["predictions"][n] for n in names] for item in got], expected, atol=1e-5)


def test_missing_features_are_refused_or_filled_with_the_training_means(tmp_path, models):
    """Without features the pipeline says which option fills them; with `fill_missing_features` an input without them
    gets the config's `feature_mean` (zeros for a checkpoint without it) and is marked, one with them is not."""
    from transformers import pipeline

    with_means = shutil.copytree(models["dna"], tmp_path / "with_means")
    config = json.loads((with_means / "config.json").read_text())
    means = [0.75, -1.5, 2.0]
    (with_means / "config.json").write_text(json.dumps({**config, "feature_mean": means}))
    cropped = [sequence[:DNA_WINDOW] for sequence in SEQUENCES]
    for folder, fill in ((with_means, means), (models["dna"], [0.0, 0.0, 0.0])):
        regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
        try:
            regress(SEQUENCES[0])
            raise AssertionError("an input without features was scored")
        except ValueError as error:
            assert "fill_missing_features=True" in str(error)
        inputs = [SEQUENCES[0], {"sequence": SEQUENCES[1], "features": FEATURES[1]}, {"sequence": SEQUENCES[2]}]
        got = regress(inputs, batch_size=2, fill_missing_features=True)
        assert [item.get("features_filled", False) for item in got] == [True, False, True]
        expected = direct_predictions(folder, cropped, [fill, FEATURES[1], fill])
        names = ["output_0", "output_1"]
        np.testing.assert_allclose([[item["predictions"][n] for n in names] for item in got], expected, atol=1e-5)
        # The option also works when the pipeline is built, for every call.
        regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu", fill_missing_features=True)
        single = regress(SEQUENCES[2])
        assert single["features_filled"] is True and single["units"] == "data"
        np.testing.assert_allclose([single["predictions"][n] for n in names], expected[2], atol=1e-5)


def test_outputs_are_named_by_the_configs_labels(tmp_path, models):
    """Named labels in `id2label` name the outputs; the default LABEL_i names give `output` / `output_i`."""
    from transformers import pipeline

    folder = shutil.copytree(models["zscore"], tmp_path / "named")
    config = json.loads((folder / "config.json").read_text())
    regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    assert list(regress(SEQUENCES[0])["predictions"]) == ["output"]
    config.update(id2label={"0": "expression"}, label2id={"expression": 0})
    (folder / "config.json").write_text(json.dumps(config))
    regress = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    assert list(regress(SEQUENCES[0])["predictions"]) == ["expression"]
