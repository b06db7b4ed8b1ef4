"""Predictions against the model called directly: strings and records, ensembles, units, batch sizes, crops and
features."""

import json
import shutil

import numpy as np
import pytest

from expression_perceiver import Predictor, predict
from expression_perceiver.data import DataError
from expression_perceiver.inference import Example, InputPreparer, ModelLoadError
from tests.inference.helpers import (
    DNA_WINDOW,
    NUM_FEATURES,
    PROTEIN_WINDOW,
    direct_embeddings,
    direct_predictions,
    random_dna,
    random_protein,
)

RNG = np.random.default_rng(7)
# Lengths around the model's 300-position window: shorter ones are padded, longer ones cropped.
SEQUENCES = [random_dna(RNG, length) for length in (120, 300, 257, 410, 33, 299, 301, 180, 260)]
FEATURES = RNG.normal(size=(len(SEQUENCES), NUM_FEATURES)).round(4).tolist()
RECORDS = [
    {"gene_id": f"gene{index}", "sequence": sequence, "features": features}
    for index, (sequence, features) in enumerate(zip(SEQUENCES, FEATURES, strict=True))
]
CROPPED = [sequence[:DNA_WINDOW] for sequence in SEQUENCES]


def test_records_predict_as_the_model_does_in_the_labels_units(models):
    table = predict(RECORDS, models["dna"], batch_size=4)
    assert list(table.columns) == ["id", "predicted_output_0", "predicted_output_1", "features_filled"]
    assert table["id"].tolist() == [record["gene_id"] for record in RECORDS]
    expected = direct_predictions(models["dna"], CROPPED, FEATURES)
    np.testing.assert_allclose(table[["predicted_output_0", "predicted_output_1"]].to_numpy(), expected, atol=1e-6)
    assert table["features_filled"].tolist() == [0] * len(RECORDS)


def test_strings_without_label_standardisation_are_z_scores(models):
    table = predict(SEQUENCES[:3], models["zscore"])
    assert list(table.columns) == ["id", "predicted_output_zscore"]
    assert table["id"].tolist() == ["seq1", "seq2", "seq3"]
    expected = direct_predictions(models["zscore"], CROPPED[:3])
    np.testing.assert_allclose(table["predicted_output_zscore"].to_numpy(), expected[:, 0], atol=1e-6)


def test_predictions_do_not_depend_on_the_batch_size_or_the_chunks(models):
    predictor = Predictor.from_pretrained([models["dna"]])
    preparer = InputPreparer(predictor.model_inputs)
    examples = [preparer(Example(r["gene_id"], r["sequence"], tuple(r["features"]))) for r in RECORDS]

    def run(batch_size: int, chunk_size: int | None) -> np.ndarray:
        chunks = list(predictor.predict_chunks(examples, batch_size, chunk_size))
        assert [chunk.start for chunk in chunks] == list(range(0, len(examples), chunk_size or len(examples)))
        assert [example.id for chunk in chunks for example in chunk.examples] == [e.id for e in examples]
        return np.concatenate([chunk.values for chunk in chunks])

    one = run(1, None)
    np.testing.assert_allclose(run(7, None), one, rtol=0, atol=1e-6)
    np.testing.assert_allclose(run(3, 4), one, rtol=0, atol=1e-6)
    assert preparer.counts_dict() == {
        "records": 9, "cropped": 2, "padded": 6, "features_filled": 0, "features_ignored": 0, "all_n": 0
    }  # fmt: skip


def test_an_ensemble_reports_mean_std_and_n_and_each_member(models, tmp_path):
    members = [models["dna"], models["dna_other_seed"]]
    table = predict(RECORDS, members, members=True, batch_size=5)
    first = direct_predictions(models["dna"], CROPPED, FEATURES)
    second = direct_predictions(models["dna_other_seed"], CROPPED, FEATURES)
    both = np.stack([first, second])
    for output in range(2):
        stem = f"predicted_output_{output}"
        np.testing.assert_allclose(table[f"{stem}_mean"], both[:, :, output].mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(table[f"{stem}_std"], both[:, :, output].std(axis=0, ddof=1), atol=1e-6)
        np.testing.assert_allclose(table[f"{stem}_model1"], first[:, output], atol=1e-6)
        np.testing.assert_allclose(table[f"{stem}_model2"], second[:, output], atol=1e-6)
    assert table["n_models"].tolist() == [2] * len(RECORDS)


def test_ensemble_members_that_disagree_are_refused_naming_the_model(models):
    with pytest.raises(ModelLoadError, match=r"zscore: num_features 0 where .*dna has 3"):
        Predictor.from_pretrained([models["dna"], models["zscore"]])


def test_missing_features_stop_or_are_filled_and_marked(models):
    records = [dict(RECORDS[0]), {"gene_id": "bare", "sequence": SEQUENCES[1]}]
    with pytest.raises(DataError, match=r"record 'bare' has no features; the model reads 3 per-gene features"):
        predict(records, models["dna"])
    table = predict(records, models["dna"], fill_missing_features=True)
    assert table["features_filled"].tolist() == [0, 1]
    expected = direct_predictions(models["dna"], CROPPED[:2], [FEATURES[0], [0.0] * NUM_FEATURES])
    np.testing.assert_allclose(table[["predicted_output_0", "predicted_output_1"]].to_numpy(), expected, atol=1e-6)


def test_crop_rules_keep_the_start_the_centre_or_the_end(models):
    long = SEQUENCES[3]  # 410 bases, window 300
    kept = {"start": long[:300], "center": long[55:355], "end": long[110:]}
    for rule, sequence in kept.items():
        table = predict([long], models["zscore"], crop=rule)
        expected = direct_predictions(models["zscore"], [sequence])[0, 0]
        assert table["predicted_output_zscore"][0] == pytest.approx(expected, abs=1e-6), rule


def test_an_invalid_letter_names_the_record_and_position(models):
    with pytest.raises(DataError, match=r"input: record 'seq2' has letter 'X' at position 4 \(1-based\)"):
        predict(["ACGT", "ACGXT"], models["zscore"])


def test_embeddings_are_the_base_models_pooler_output_and_latents(models):
    from expression_perceiver import embed

    ids, summary = embed(RECORDS[:4], models["dna"], batch_size=3)
    assert ids == [record["gene_id"] for record in RECORDS[:4]]
    np.testing.assert_allclose(summary, direct_embeddings(models["dna"], CROPPED[:4], FEATURES[:4]), atol=1e-6)
    _, latents = embed(RECORDS[:2], models["dna"], latents=True)
    expected = direct_embeddings(models["dna"], CROPPED[:2], FEATURES[:2], latents=True)
    assert latents.shape == expected.shape == (2, 8, 16 + NUM_FEATURES)
    np.testing.assert_allclose(latents, expected, atol=1e-6)


def test_a_run_trained_in_drop_mode_reads_inputs_as_its_evaluation_did(models, tmp_path):
    """`results.json` beside the weights names the outputs and the masking: a run that removed its first 50
    positions (mode drop) was evaluated on inputs without them, and so is predicted."""
    folder = tmp_path / "dropped_first"
    shutil.copytree(models["zscore"], folder)
    data = {
        "alphabet": "dna", "source": "test", "label_names": ["mrna"], "label_transform": "log10(x + 0.1)",
        "label_mean": 0.0, "label_std": 1.0, "feature_names": [], "split": {}, "counts": {},
    }  # fmt: skip
    masking = {"mask_strategy": "first", "mask_mode": "drop", "mask_length": 50, "mask_num_spans": 1}
    (folder / "results.json").write_text(json.dumps({"data": data, "arguments": {"masking": masking}, "seed": 0}))
    table = predict(SEQUENCES[:3], folder)
    assert list(table.columns) == ["id", "predicted_mrna_zscore"]
    expected = direct_predictions(models["zscore"], [sequence[50:] for sequence in CROPPED[:3]])
    np.testing.assert_allclose(table["predicted_mrna_zscore"], expected[:, 0], atol=1e-6)
    predictor = Predictor.from_pretrained(str(folder))
    assert predictor.output_units == ["z-score (the checkpoint stores no label_mean/label_std)"]
    assert predictor.first.describe()["evaluation_masking"].startswith("first, 50 positions removed")


def test_proteins_lose_a_trailing_stop_and_are_cropped_to_the_models_window(models):
    proteins = [random_protein(RNG, length) for length in (60, 150)]
    table = predict([proteins[0].lower() + "*", proteins[1]], models["protein"])
    expected = direct_predictions(models["protein"], [proteins[0], proteins[1][:PROTEIN_WINDOW]])
    np.testing.assert_allclose(table["predicted_output"], expected[:, 0], atol=1e-6)
    with pytest.raises(DataError, match=r"record 'seq1' has letter 'J' at position 2"):
        predict(["MJK"], models["protein"])
