"""The k-mer ridge baseline: counts against a naive count, ridge against the normal equations, reference figures."""

import gzip
import json

import numpy as np
import pytest

from expression_perceiver.cli import main as cli
from expression_perceiver.training import baseline
from expression_perceiver.training.baseline import (
    ALPHABETS,
    baseline_features,
    fit_ridge_baseline,
    kmer_features,
    kmer_names,
    ridge_path,
)
from expression_perceiver.training.metrics import compute_expression_metrics


def naive_kmer_frequencies(sequence: str, letters: str, ks: list[int]) -> np.ndarray:
    """One k-mer at a time, the way one would count by hand."""
    row = []
    for k in ks:
        names = kmer_names(letters, [k])
        counts = dict.fromkeys(names, 0)
        for start in range(len(sequence) - k + 1):
            kmer = sequence[start : start + k].upper()
            if all(letter in letters for letter in kmer):
                counts[kmer] += 1
        row.extend(counts[name] / max(len(sequence) - k + 1, 1) for name in names)
    return np.array(row)


def random_sequences(rng: np.random.Generator, letters: str, count: int) -> list[str]:
    lengths = rng.integers(0, 40, size=count)
    return ["".join(rng.choice(list(letters), size=length)) for length in lengths]


@pytest.mark.parametrize(
    ("alphabet", "letters", "ks"),
    [
        ("dna", "ACGTacgtN", [1, 2, 3, 4]),
        ("protein", "ACDEFGHIKLMNPQRSTVWYXU", [1, 2]),
        ("ACG", "ACGT", [2, 5]),
    ],
)
def test_kmer_features_match_a_naive_count(alphabet, letters, ks):
    rng = np.random.default_rng(1)
    sequences = random_sequences(rng, letters, 60) + ["", "A", "NNNN"]
    # A tiny chunk size makes the counting run over many chunks, as it does on long promoters.
    features = kmer_features(sequences, alphabet, ks, chunk_letters=50)

    expected = np.stack(
        [naive_kmer_frequencies(sequence, ALPHABETS.get(alphabet, alphabet), ks) for sequence in sequences]
    )
    assert features.shape == (len(sequences), sum(len(ALPHABETS.get(alphabet, alphabet)) ** k for k in ks))
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(kmer_features(sequences, alphabet, ks), features)


def test_kmer_names_follow_the_alphabet_order():
    assert kmer_names("dna", [1, 2])[:6] == ["A", "C", "G", "T", "AA", "AC"]
    assert kmer_names("dna", [2])[-1] == "TT"
    assert len(kmer_names("protein", [1, 2])) == 20 + 400


def test_baseline_features_add_log_length():
    features = baseline_features(["ACGT", "ACGTACGT"], "dna", [1])
    np.testing.assert_allclose(features[:, -1], np.log([4, 8]))
    np.testing.assert_allclose(features[:, :4], 0.25)


@pytest.mark.parametrize(
    ("sequences", "alphabet", "ks", "message"),
    [
        (["ACGT", "ACGÜ"], "dna", [1], "ASCII"),
        (["ACGT"], "AAC", [1], "distinct"),
        (["ACGT"], "dna", [0, 1], "positive"),
    ],
)
def test_bad_input_is_rejected(sequences, alphabet, ks, message):
    with pytest.raises(ValueError, match=message):
        kmer_features(sequences, alphabet, ks)


def test_ridge_path_solves_the_normal_equations():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(80, 12))
    features[:, 11] = features[:, 10]  # collinear columns, as k-mer frequencies summing to one are
    targets = features @ rng.normal(size=12) + rng.normal(size=80)
    alphas = [1e-3, 0.1, 10.0]

    path = ridge_path(features, targets, alphas)

    for alpha, coefficients in zip(alphas, path, strict=True):
        expected = np.linalg.solve(features.T @ features + alpha * np.eye(12), features.T @ targets)
        np.testing.assert_allclose(coefficients, expected, rtol=1e-6, atol=1e-8)


def test_fit_standardises_on_train_and_picks_alpha_on_validation():
    rng = np.random.default_rng(3)
    sequences = [sequence + "A" for sequence in random_sequences(rng, "ACGT", 300)]
    sequences = [sequence + "ACGT" for sequence in sequences]  # no empty sequence: log length stays finite
    labels = np.array([sequence.count("G") / len(sequence) for sequence in sequences]) + rng.normal(0, 0.05, 300)
    alphas = [1e-2, 1.0, 100.0, 1e4]

    model = fit_ridge_baseline(sequences[:200], labels[:200], sequences[200:], labels[200:], "dna", [1, 2], alphas)

    train = baseline_features(sequences[:200], "dna", [1, 2])
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale[scale == 0] = 1
    standardised = (train - mean) / scale
    valid = (baseline_features(sequences[200:], "dna", [1, 2]) - mean) / scale
    validation_mse = {}
    for alpha in alphas:
        gram = standardised.T @ standardised + alpha * np.eye(train.shape[1])
        coefficients = np.linalg.solve(gram, standardised.T @ (labels[:200] - labels[:200].mean()))
        validation_mse[alpha] = np.mean((valid @ coefficients + labels[:200].mean() - labels[200:]) ** 2)
    best = min(validation_mse, key=validation_mse.get)

    assert model.alpha == best
    assert model.validation_mse == pytest.approx(validation_mse, rel=1e-6)
    assert model.intercept == pytest.approx(labels[:200].mean())
    gram = standardised.T @ standardised + best * np.eye(train.shape[1])
    expected = np.linalg.solve(gram, standardised.T @ (labels[:200] - labels[:200].mean()))
    np.testing.assert_allclose(model.coefficients, expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.predict(sequences[200:]), valid @ expected + labels[:200].mean(), atol=1e-8)


def write_table(path, rows: list[tuple[str, str]]) -> None:
    with gzip.open(path, "wt") as handle:
        handle.write("gene_id\tsequence\tlevel\n")
        handle.writelines(f"g{i}\t{sequence}\t{label}\n" for i, (sequence, label) in enumerate(rows))


def test_cli_prints_and_writes_the_metrics(tmp_path, capsys):
    rng = np.random.default_rng(4)
    sequences = [sequence + "GG" for sequence in random_sequences(rng, "ACGTN", 400)]
    levels = [10 ** (sequence.count("G") / len(sequence) * 3 + rng.normal(0, 0.1)) for sequence in sequences]
    rows = [(sequence, f"{level:.6g}") for sequence, level in zip(sequences, levels, strict=True)]
    rows += [("ACGT", "NA"), ("ACGT", "")]
    table = tmp_path / "levels.tsv.gz"
    write_table(table, rows)
    output = tmp_path / "out" / "results.json"
    arguments = ["--table", str(table), "--alphabet", "dna", "--label-column", "level", "--log10"]
    arguments += ["--drop-missing-labels", "--k", "1", "2", "--output", str(output)]
    assert cli(["baseline", *arguments]) == 0

    results = json.loads(output.read_text())
    assert any("missing label" in line and "2" in line for line in results["read"]), results["read"]
    assert results["split_sizes"] == {"train": 320, "validation": 40, "test": 40}
    assert results["label"] == "log10(level)" and results["k"] == [1, 2] and results["split"]["seed"] == 0
    assert results["test"]["r2"] > 0.5
    assert f"r2={results['test']['r2']:.3f}" in capsys.readouterr().out


def test_a_table_is_read_and_split_exactly_as_prepare_does(tmp_path):
    """`baseline --table f` and `baseline --dataset-dir` of `prepare table f` are the same fit on the same genes."""
    rng = np.random.default_rng(5)
    sequences = [sequence + "A" for sequence in random_sequences(rng, "ACGT", 300)]
    rows = [(sequence, f"{sequence.count('A') / len(sequence) + rng.normal(0, 0.05):.6g}") for sequence in sequences]
    table = tmp_path / "levels.tsv.gz"
    write_table(table, rows)
    options = ["--alphabet", "dna", "--label-column", "level", "--seed", "3", "--fractions", "0.7", "0.15", "0.15"]
    assert cli(["prepare", "table", str(table), *options, "-o", str(tmp_path / "prepared")]) == 0
    assert cli(["baseline", "--table", str(table), *options, "--output", str(tmp_path / "table.json")]) == 0
    prepared = ["--dataset-dir", str(tmp_path / "prepared"), "--output", str(tmp_path / "prepared.json")]
    assert cli(["baseline", *prepared]) == 0
    from_table, from_prepared = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("table", "prepared"))
    assert from_table["split_sizes"] == from_prepared["split_sizes"] == {"train": 210, "validation": 45, "test": 45}
    assert from_table["test"] == from_prepared["test"] and from_table["alpha"] == from_prepared["alpha"]


@pytest.mark.parametrize(
    ("row", "message"),
    [(("ACGT", "high"), "column 'level' is 'high', not a number"), (("MKWL", "1.0"), "letter 'L'")],
)
def test_baseline_reads_as_prepare_does_a_word_for_a_label_and_protein_letters_as_dna(tmp_path, row, message, capsys):
    table = tmp_path / "levels.tsv.gz"
    write_table(table, [("ACGT", "1.0"), row])
    assert cli(["baseline", "--table", str(table), "--alphabet", "dna", "--label-column", "level"]) != 0
    assert message in capsys.readouterr().err


def test_a_missing_column_or_alphabet_is_one_clear_error(tmp_path, capsys):
    table = tmp_path / "levels.tsv.gz"
    write_table(table, [("ACGT", "1.0")])
    assert cli(["baseline", "--table", str(table), "--alphabet", "dna", "--label-column", "label_human"]) != 0
    assert "label_human" in capsys.readouterr().err
    assert cli(["baseline", "--table", str(table), "--label-column", "level"]) != 0
    assert "--alphabet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("file_name", "options", "reference_r2"),
    [
        ("human_proteome_paxdb.tsv.gz", ["--alphabet", "protein", "--label-column", "abundance_ppm", "--log10"], 0.303),
        ("epd_core_promoters_xpresso.tsv.gz", ["--alphabet", "dna", "--label-column", "label_human"], 0.271),
    ],
)
@pytest.mark.slow
def test_reference_figures_are_reproduced(shared_data, tmp_path, file_name, options, reference_r2):
    output = tmp_path / "results.json"
    assert cli(["baseline", "--table", str(shared_data / file_name), *options, "--output", str(output)]) == 0
    assert json.loads(output.read_text())["test"]["r2"] == pytest.approx(reference_r2, abs=0.01)


def promoter_splits(num_genes: int, seed: int = 0):
    """Generated promoters (label = sequence terms + 0.4 f0 - 0.3 f1 + 0.2 f2 + noise), in order, split 80/10/10."""
    import datasets

    from expression_perceiver.data.synthetic import generate_promoters

    columns = generate_promoters(num_genes, length=1000, seed=seed).to_dict()
    first_cut, second_cut = num_genes * 8 // 10, num_genes * 9 // 10
    rows = {"train": slice(0, first_cut), "validation": slice(first_cut, second_cut), "test": slice(second_cut, None)}
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({column: values[split] for column, values in columns.items()})
            for name, split in rows.items()
        }
    )


@pytest.fixture(scope="module")
def promoters_with_features():
    return promoter_splits(1000)


@pytest.fixture(scope="module")
def baseline_with_features(promoters_with_features):
    return baseline.baseline_on_splits(promoters_with_features, "dna", [1, 2, 3])


def test_baseline_uses_the_per_gene_features_when_the_data_have_them(baseline_with_features):
    results = baseline_with_features

    assert results["inputs"] == "k-mers + features"
    features_only, kmers_only = results["features_only"]["test"]["r2"], results["kmers_only"]["test"]["r2"]
    assert features_only > 0.1  # the features explain part of the label on their own
    assert results["test"]["r2"] > kmers_only + 0.05
    assert results["test"]["r2"] > features_only + 0.05
    assert set(results["features_only"]) == set(results["kmers_only"]) == {"alpha", "validation", "test"}


def test_baseline_without_features_is_the_kmer_model(promoters_with_features, baseline_with_features):
    splits = promoters_with_features.remove_columns("features")

    results = baseline.baseline_on_splits(splits, "dna", [1, 2, 3])

    assert results["inputs"] == "k-mers" and "features_only" not in results and "kmers_only" not in results
    train, valid, test = splits["train"], splits["validation"], splits["test"]
    model = fit_ridge_baseline(
        list(train["sequence"]), train["label"], list(valid["sequence"]), valid["label"], "dna", [1, 2, 3]
    )
    assert results["alpha"] == model.alpha
    expected = compute_expression_metrics(model.predict(list(test["sequence"])), np.asarray(test["label"]))
    assert results["test"] == expected
    kmers_only = baseline_with_features["kmers_only"]
    assert {key: results[key] for key in ("alpha", "validation", "test")} == kmers_only


def test_a_model_fitted_with_gene_features_standardises_and_needs_them():
    rng = np.random.default_rng(5)
    sequences = [sequence + "ACGT" for sequence in random_sequences(rng, "ACGT", 120)]
    gene_features = rng.normal(3.0, 2.0, size=(120, 2))
    labels = gene_features[:, 0] + rng.normal(0, 0.1, 120)

    model = fit_ridge_baseline(
        sequences[:100],
        labels[:100],
        sequences[100:],
        labels[100:],
        "dna",
        [1],
        train_gene_features=gene_features[:100],
        valid_gene_features=gene_features[100:],
    )

    assert model.num_gene_features == 2
    np.testing.assert_allclose(model.feature_mean[-2:], gene_features[:100].mean(axis=0))
    np.testing.assert_allclose(model.feature_scale[-2:], gene_features[:100].std(axis=0))
    predictions = model.predict(sequences[100:], gene_features[100:])
    assert np.corrcoef(predictions, labels[100:])[0, 1] > 0.95
    with pytest.raises(ValueError, match="2 per-gene features, got 0"):
        model.predict(sequences[100:])
