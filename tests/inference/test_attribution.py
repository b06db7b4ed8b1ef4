"""`attribute`: every method on tiny checkpoints (shapes, units, files, ensembles, proteins, errors), checked against
plain formulations (mutagenesis, finite differences, completeness), and on a model trained in seconds on promoters
with a motif planted at a known place: attributions must peak there."""

import json

import numpy as np
import pytest
import torch

from expression_perceiver import (
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    Example,
    NucleotideTokenizer,
)
from expression_perceiver.cli import main
from expression_perceiver.data.synthetic import generate_motif_promoters
from expression_perceiver.inference import mutagenesis
from expression_perceiver.inference.attribution import attribute
from expression_perceiver.inference.attribution_files import AttributionFile
from expression_perceiver.inference.predictor import Predictor
from tests.inference.helpers import DNA_WINDOW, random_dna, random_protein
from tests.small_models import SMALL_SIZES

FEATURES = [0.5, -1.0, 2.0]


def dna_inputs(count: int = 3, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    lengths = [DNA_WINDOW, DNA_WINDOW - 40, DNA_WINDOW][:count]
    return [
        {"id": f"g{i}", "sequence": random_dna(rng, length), "features": FEATURES} for i, length in enumerate(lengths)
    ]


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "deeplift_shap", "ism"])
def test_every_method_gives_positions_by_letters_in_the_predictions_units(models, method):
    inputs = dna_inputs(2)
    found = attribute(inputs, models["dna"], method=method, target=1, steps=8, num_references=2, batch_size=2)
    predicted = Predictor.from_pretrained(models["dna"]).predict_batch(
        [Example(i["id"], i["sequence"], tuple(FEATURES)) for i in inputs]
    )[:, 0, 1]
    for item, given, prediction in zip(found, inputs, predicted, strict=True):
        length = len(given["sequence"])
        assert item["attributions"].shape == item["hypothetical"].shape == item["one_hot"].shape == (length, 4)
        expected = np.array([[base == letter for letter in "ACGT"] for base in given["sequence"]])  # N: all zero
        assert np.array_equal(item["one_hot"], expected)
        assert item["prediction"] == pytest.approx(prediction, rel=1e-5, abs=1e-6)  # un-standardised like predict
        # the actual letter's hypothetical contribution is its attribution
        assert np.allclose((item["hypothetical"] * item["one_hot"]).sum(-1), item["attributions"].sum(-1), atol=1e-6)
        assert np.abs(item["attributions"]).max() > 0


def test_ism_attributions_are_mutagenesis_deltas_centred_over_letters(models):
    sequence = dna_inputs(1)[0]["sequence"]
    item = attribute([{"id": "g", "sequence": sequence, "features": FEATURES}], models["dna"], method="ism")[0]
    scan = mutagenesis(models["dna"], sequence=sequence, features={"sequence": FEATURES}, scan=(0, len(sequence)))
    deltas = np.nan_to_num(scan.delta[..., 0])  # (positions, letters): 0 at the reference letter
    assert np.allclose(item["hypothetical"], deltas - deltas.mean(-1, keepdims=True), atol=1e-9)


def test_gradient_x_input_matches_finite_differences_of_the_prediction(models):
    given = dna_inputs(1)[0]
    item = attribute([given], models["dna"], method="gradient_x_input", target=0)[0]
    predictor = Predictor.from_pretrained(models["dna"])
    member = predictor.first
    batch = predictor._batch(member, [Example("g", given["sequence"], tuple(FEATURES))])
    from expression_perceiver.inference.attribution import one_hot_of

    one_hot = one_hot_of(batch["input_ids"], member).double()
    model = member.model.double()
    std = member.label_scale[1][0]
    rng = np.random.default_rng(1)
    try:
        for position in rng.choice(len(given["sequence"]), 5, replace=False):
            present = int(one_hot[0, position].argmax())
            other = (present + 1) % 4
            step = torch.zeros_like(one_hot)
            step[0, position, other], step[0, position, present] = 1e-4, -1e-4

            def value(x):
                with torch.no_grad():
                    return model(inputs_one_hot=x, features=batch["features"].double()).logits[0, 0].item()

            slope = (value(one_hot + step) - value(one_hot - step)) / 2e-4 * std
            hypothetical = item["hypothetical"][position]
            assert hypothetical[other] - hypothetical[present] == pytest.approx(slope, rel=1e-3, abs=1e-6)
    finally:
        model.float()


def test_integrated_gradients_are_complete(models):
    found = attribute(dna_inputs(2), models["dna"], method="integrated_gradients", steps=64, num_references=2)
    for item in found:
        change = item["prediction"] - item["reference_prediction"]
        total = item["attributions"].sum() + item["feature_attributions"].sum()
        assert total == pytest.approx(change, abs=1e-3 * max(1.0, abs(change)))
        assert item["completeness_error"] < 1e-3


def test_an_ensembles_attribution_is_its_members_mean_with_their_spread(models):
    inputs = dna_inputs(2)
    one = attribute(inputs, models["dna"], method="gradient_x_input")
    other = attribute(inputs, models["dna_other_seed"], method="gradient_x_input")
    both = attribute(inputs, [models["dna"], models["dna_other_seed"]], method="gradient_x_input")
    for a, b, mean in zip(one, other, both, strict=True):
        assert np.allclose(mean["attributions"], (a["attributions"] + b["attributions"]) / 2, atol=1e-9)
        spread = np.std([a["attributions"], b["attributions"]], axis=0, ddof=1)
        assert np.allclose(mean["attributions_std"], spread, atol=1e-9)


def test_shuffled_references_depend_on_the_seed_and_the_sequence_not_the_batch(models):
    inputs = dna_inputs(3)
    whole = attribute(inputs, models["dna"], method="deeplift_shap", num_references=3, batch_size=3)
    alone = attribute(inputs[1:2], models["dna"], method="deeplift_shap", num_references=3, batch_size=1)
    other_seed = attribute(inputs[1:2], models["dna"], method="deeplift_shap", num_references=3, seed=1)
    assert np.allclose(whole[1]["attributions"], alone[0]["attributions"], atol=1e-5)
    assert not np.allclose(alone[0]["attributions"], other_seed[0]["attributions"], atol=1e-5)


def test_cross_attention_weights_are_a_distribution_over_positions(models):
    item = attribute(dna_inputs(1), models["dna"], method="cross_attention")[0]
    weights = item["cross_attention"]  # (layers, heads, length)
    assert weights.shape[-1] == DNA_WINDOW
    assert np.allclose(weights.sum(-1), 1.0, atol=1e-5)


def test_the_file_holds_what_was_returned_and_proteins_are_stored_flat(models, tmp_path):
    rng = np.random.default_rng(0)
    proteins = [("p1", random_protein(rng, 50)), ("p2", random_protein(rng, 80))]
    output = tmp_path / "protein.npz"
    summary = attribute(proteins, models["protein"], method="gradient_x_input", output=output)
    returned = attribute(proteins, models["protein"], method="gradient_x_input")
    opened = AttributionFile.open(output)
    assert opened.ids == ["p1", "p2"] and list(opened.lengths) == [50, 80] and not opened.uniform
    assert opened.letters == "ACDEFGHIKLMNPQRSTVWY" and opened.origin == "start"
    for stored, item in zip(opened.sequences("attributions"), returned, strict=True):
        assert np.allclose(stored, item["attributions"], atol=1e-6)
    assert np.load(output)["attributions"].shape == (130, 20)  # a plain .npz
    record = json.loads((tmp_path / "protein.npz.json").read_text())
    assert record["method"] == "gradient_x_input" and summary.rows == 2


def test_dna_windows_are_stored_as_arrays_with_positions_from_the_tss(models, tmp_path):
    inputs = [dict(item, sequence=item["sequence"][:200]) for item in dna_inputs(3)]
    output = tmp_path / "dna.npz"
    attribute(inputs, models["dna"], method="integrated_gradients", steps=4, num_references=2, tss_index=150,
              output=output)  # fmt: skip
    stored = np.load(output)
    assert stored["attributions"].shape == stored["hypothetical"].shape == stored["one_hot"].shape == (3, 200, 4)
    assert list(stored["positions"][[0, 150, 199]]) == [-150, 0, 49]
    assert stored["completeness_error"].shape == (3,) and stored["feature_attributions"].shape == (3, 3)
    record = json.loads((tmp_path / "dna.npz.json").read_text())
    assert record["completeness"]["n"] == 3 and record["references"] == "shuffle"


def test_refused_models_and_arguments(models, tmp_path):
    with pytest.raises(ValueError, match="Protein&DNAPerceiver"):
        attribute(dna_inputs(1), models["protein_dna"], method="gradient_x_input")
    with pytest.raises(ValueError, match="--target 2"):
        attribute(dna_inputs(1), models["dna"], target=2)
    with pytest.raises(ValueError, match="--method"):
        attribute(dna_inputs(1), models["dna"], method="saliency")
    with pytest.raises(ValueError, match=r"\.npz"):
        attribute(dna_inputs(1), models["dna"], output=tmp_path / "a.tsv")
    assert not list(tmp_path.iterdir())


# --- planted truth -----------------------------------------------------------------------------------------------

MOTIF_LENGTH = 100


@pytest.fixture(scope="module")
def motif_model(tmp_path_factory):
    """A tiny DNAPerceiver trained for a few seconds on windows where a planted NRF1 site sets the label."""
    generated, planted = generate_motif_promoters(400, MOTIF_LENGTH, seed=0)
    tokenizer = NucleotideTokenizer()
    torch.manual_seed(0)
    sizes = dict(SMALL_SIZES, conv_stem_channels=16, conv_tower_channels=[16, 16], conv_pooled_positions=8)
    config = DNAPerceiverConfig(
        max_sequence_length=MOTIF_LENGTH, conv_stem_pool_size=2, conv_tower_pool_size=2, dropout=0.0,
        label_mean=[0.5], label_std=[0.5], **sizes,
    )  # fmt: skip
    model = DNAPerceiverForSequenceClassification(config)
    ids = torch.tensor([tokenizer(sequence)["input_ids"] for sequence in generated.sequence])
    labels = torch.tensor((generated.label - 0.5) / 0.5, dtype=torch.float32)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(6):
        for batch in torch.randperm(len(ids), generator=generator).split(32):
            loss = model(input_ids=ids[batch], labels=labels[batch]).loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    folder = tmp_path_factory.mktemp("motif_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, generated, planted


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "ism"])
def test_attributions_peak_at_the_planted_motif(motif_model, method):
    folder, generated, planted = motif_model
    carriers = np.flatnonzero(planted.starts >= 0)[:20]
    inputs = [(generated.gene_id[i], generated.sequence[i]) for i in carriers]
    found = attribute(inputs, folder, method=method, steps=16, num_references=3)
    contribution = np.mean([np.abs(item["attributions"].sum(-1)) for item in found], axis=0)
    start = int(planted.starts[carriers[0]])
    inside = contribution[start : start + len(planted.motif)].mean()
    outside = np.delete(contribution, np.arange(start, start + len(planted.motif))).mean()
    assert inside > 3 * outside, (method, inside, outside)
    assert start <= int(contribution.argmax()) < start + len(planted.motif)


def test_command_writes_the_file_and_its_profile_and_refuses_bad_input_in_one_line(motif_model, tmp_path, capsys):
    folder, generated, _ = motif_model
    fasta = tmp_path / "promoters.fa"
    fasta.write_text(
        "".join(f">{i}\n{s}\n" for i, s in zip(generated.gene_id[:6], generated.sequence[:6], strict=True))
    )
    output = tmp_path / "out.npz"
    command = ["attribute", str(fasta), "-m", str(folder), "-o"]
    assert main([*command, str(output), "--method", "gradient_x_input", "--tss-index", "50", "--profile"]) == 0
    assert AttributionFile.open(output).origin == "tss"
    profile = (tmp_path / "out.profile.tsv").read_text().splitlines()
    assert profile[0].startswith("position\tn\t") and profile[1].startswith("-50\t6\t")
    assert (tmp_path / "out.profile.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main([*command, str(tmp_path / "other.npz"), "--target", "3", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.strip().count("\n") == 0 and "--target 3" in error
    assert not (tmp_path / "other.npz").exists()
