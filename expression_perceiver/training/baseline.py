"""A k-mer composition baseline: ridge regression on k-mer frequencies plus log sequence length.

Each sequence becomes the frequencies of all k-mers for each k asked for (counts divided by the sequence's number of
k-mer positions, `len - k + 1`) and the log of its length. Features are standardised with the training split's mean
and standard deviation, the intercept is left unpenalised, and the ridge penalty is chosen by mean squared error on
the validation split from a log grid. The test split is scored once, with the package's expression metrics (r2 is the
squared Pearson correlation).

When the data carry per-gene features (the 8 mRNA half-life features of Xpresso-style data), the sequence model sees
them, so the baseline does too: the reported baseline is ridge on k-mers, log length and the features (standardised
on train like the other columns), next to ridge on the features alone and on the k-mers alone, so that a report can
tell what the sequence adds beyond the features.

The baseline reads data only through the data layer: a prepared dataset's own splits (`baseline_on_dataset_dir`), or
a table read and split by `prepare table`'s own code (`baseline_on_table` through `data.prepare.table_dataset`: split
by gene, 80/10/10 with seed 0 by default). On the project's reference tables this gives test r2 0.303 (human
proteome, log10 ppm, amino-acid 1- and 2-mers) and 0.271 (EPD 60 bp promoters, Xpresso human label, DNA 1- to
4-mers).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from ..data import SplitSpec, load_dataset_dir
from ..data.prepare import DEFAULT_SPLIT, TableSource, table_dataset
from .metrics import compute_expression_metrics

ALPHABETS = {"dna": "ACGT", "protein": "ACDEFGHIKLMNPQRSTVWY"}
DEFAULT_ALPHAS = tuple(10.0**exponent for exponent in range(-3, 5))  # 1e-3 .. 1e4
DEFAULT_KMERS = {"dna": [1, 2, 3, 4], "protein": [1, 2]}  # the reference baselines' k-mer sizes

# Sequences are counted in chunks of about this many letters, so memory stays bounded on 20 kb promoters.
CHUNK_LETTERS = 1 << 22
_SEPARATOR = "\0"  # outside every alphabet, so no k-mer spans two sequences


def resolve_alphabet(alphabet: str) -> str:
    """The letters of a named alphabet (`dna`, `protein`) or the given letters themselves, upper case."""
    letters = ALPHABETS.get(alphabet.lower(), alphabet).upper()
    if len(set(letters)) != len(letters) or not letters.isascii() or _SEPARATOR in letters:
        raise ValueError(f"alphabet {alphabet!r} must be 'dna', 'protein' or distinct ASCII letters")
    return letters


def kmer_names(alphabet: str, ks: Iterable[int]) -> list[str]:
    """The k-mer of each column of `kmer_features`, in order (lexicographic in the alphabet's order per k)."""
    letters = resolve_alphabet(alphabet)
    names = []
    for k in ks:
        codes = np.arange(len(letters) ** k)
        digits = (codes[:, None] // len(letters) ** np.arange(k - 1, -1, -1)) % len(letters)
        names.extend("".join(letters[d] for d in row) for row in digits)
    return names


def _letter_codes(letters: str) -> np.ndarray:
    """A byte -> code table: 0..A-1 for the alphabet's letters (either case), -1 for anything else."""
    table = np.full(256, -1, dtype=np.int64)
    for code, letter in enumerate(letters):
        table[ord(letter)] = table[ord(letter.lower())] = code
    return table


def _chunks(lengths: np.ndarray, max_letters: int) -> list[slice]:
    """Consecutive runs of sequences holding about `max_letters` letters each (at least one sequence)."""
    ends = np.cumsum(lengths)
    boundaries = [0]
    while boundaries[-1] < len(lengths):
        start = boundaries[-1]
        limit = (ends[start - 1] if start else 0) + max_letters
        boundaries.append(max(int(np.searchsorted(ends, limit, side="right")), start + 1))
    return [slice(start, stop) for start, stop in itertools.pairwise(boundaries)]


def _count_chunk(
    sequences: Sequence[str], table: np.ndarray, alphabet_size: int, ks: Sequence[int]
) -> list[np.ndarray]:
    """k-mer counts (one (n, A**k) matrix per k) of a few sequences, without a loop over positions.

    The sequences are joined with a separator, mapped to codes, and the code of the k-mer starting at each position
    is built by the rolling recurrence code_k[i] = code_{k-1}[i] * A + letter[i + k - 1]. A k-mer counts when its
    window holds no letter outside the alphabet (N, X, separators), found from a running count of such letters.
    """
    try:
        joined = np.frombuffer((_SEPARATOR.join(sequences) + _SEPARATOR).encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as error:
        raise ValueError(f"sequences must be ASCII letters: {error}") from None
    letters = table[joined]
    sequence_of_position = np.cumsum(joined == ord(_SEPARATOR)) - (joined == ord(_SEPARATOR))
    outside_so_far = np.concatenate([[0], np.cumsum(letters < 0)])
    letters = np.where(letters < 0, 0, letters)

    counts = []
    code = letters
    for k in range(1, max(ks) + 1):
        if k > 1:
            code = code[:-1] * alphabet_size + letters[k - 1 :]
        if k not in ks:
            continue
        starts = len(code)
        counted = outside_so_far[k : k + starts] == outside_so_far[:starts]
        index = sequence_of_position[:starts][counted] * alphabet_size**k + code[counted]
        matrix = np.bincount(index, minlength=len(sequences) * alphabet_size**k)
        counts.append(matrix.reshape(len(sequences), alphabet_size**k))
    return counts


def kmer_features(
    sequences: Sequence[str], alphabet: str, ks: Iterable[int], chunk_letters: int = CHUNK_LETTERS
) -> np.ndarray:
    """k-mer frequencies of each sequence: counts of every k-mer, divided by the sequence's `len - k + 1`.

    Args:
        sequences: strings; letters are matched case-insensitively, and k-mers holding a letter outside the
            alphabet (N in DNA, X or U in proteins) are skipped but still occupy a position in the denominator.
        alphabet: `"dna"` (ACGT), `"protein"` (the 20 standard amino acids) or the letters themselves.
        ks: the k-mer sizes, e.g. `(1, 2, 3, 4)`.
        chunk_letters: sequences are counted in chunks of about this many letters (memory, not results).

    Returns:
        A float64 array (len(sequences), sum over k of A**k); columns named by `kmer_names(alphabet, ks)`.
    """
    letters = resolve_alphabet(alphabet)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"k-mer sizes must be positive integers, got {ks}")
    lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64, count=len(sequences))
    table = _letter_codes(letters)
    width = sum(len(letters) ** k for k in ks)
    features = np.zeros((len(sequences), width), dtype=np.float64)
    for rows in _chunks(lengths, chunk_letters):
        features[rows] = np.hstack(_count_chunk(sequences[rows], table, len(letters), ks))
    first_column = 0
    for k in ks:
        block = slice(first_column, first_column + len(letters) ** k)
        features[:, block] /= np.maximum(lengths - k + 1, 1)[:, None]  # a sequence shorter than k keeps zeros
        first_column = block.stop
    return features


def baseline_features(sequences: Sequence[str], alphabet: str, ks: Iterable[int]) -> np.ndarray:
    """`kmer_features` with the natural log of each sequence's length as a last column."""
    lengths = np.array([max(len(sequence), 1) for sequence in sequences], dtype=np.float64)
    return np.hstack([kmer_features(sequences, alphabet, ks), np.log(lengths)[:, None]])


def ridge_path(features: np.ndarray, targets: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Ridge coefficients for each penalty, in closed form: (X'X + alpha I)^-1 X'y for centred X and y.

    One eigendecomposition of X'X serves every alpha. Returns an array (len(alphas), n_features).
    """
    eigenvalues, eigenvectors = np.linalg.eigh(features.T @ features)
    projected = eigenvectors.T @ (features.T @ targets)
    return np.stack([eigenvectors @ (projected / (eigenvalues + alpha)) for alpha in alphas])


@dataclass
class RidgeFit:
    """Ridge regression on standardised columns with an unpenalised intercept, its penalty chosen on validation."""

    alpha: float
    column_mean: np.ndarray
    column_scale: np.ndarray
    coefficients: np.ndarray
    intercept: float
    validation_mse: dict[float, float] = field(default_factory=dict)

    def predict(self, columns: np.ndarray) -> np.ndarray:
        """Predicted labels of rows of unstandardised `columns`."""
        return (columns - self.column_mean) / self.column_scale @ self.coefficients + self.intercept


def fit_ridge(
    train_columns: np.ndarray,
    train_y: np.ndarray,
    valid_columns: np.ndarray,
    valid_y: np.ndarray,
    alphas: Sequence[float] | None = None,
) -> RidgeFit:
    """Fits ridge regression on any columns, choosing alpha by validation MSE.

    Columns are standardised with the training split's mean and standard deviation (constant columns, such as a
    k-mer absent from training, are left unscaled); the intercept is the training mean of the labels, unpenalised.
    """
    alphas = tuple(float(alpha) for alpha in (alphas if alphas is not None else DEFAULT_ALPHAS))
    train_y, valid_y = np.asarray(train_y, dtype=np.float64), np.asarray(valid_y, dtype=np.float64)
    mean, scale = train_columns.mean(axis=0), train_columns.std(axis=0)
    scale[scale == 0] = 1.0
    intercept = float(train_y.mean())
    path = ridge_path((train_columns - mean) / scale, train_y - intercept, alphas)

    valid_standardised = (valid_columns - mean) / scale
    validation_mse = {
        alpha: float(np.mean((valid_standardised @ coefficients + intercept - valid_y) ** 2))
        for alpha, coefficients in zip(alphas, path, strict=True)
    }
    best = min(range(len(alphas)), key=lambda i: validation_mse[alphas[i]])
    return RidgeFit(alphas[best], mean, scale, path[best], intercept, validation_mse)


def _gene_feature_matrix(gene_features: np.ndarray | Sequence[Sequence[float]] | None, rows: int) -> np.ndarray:
    """Per-gene features as a (rows, n) float array; (rows, 0) when there are none."""
    if gene_features is None:
        return np.empty((rows, 0))
    matrix = np.asarray(gene_features, dtype=np.float64).reshape(rows, -1)
    if not np.isfinite(matrix).all():
        raise ValueError("per-gene features must be finite numbers")
    return matrix


@dataclass
class RidgeBaseline:
    """A fitted k-mer ridge model: standardisation, coefficients, and the validation curve that chose `alpha`.

    Its columns are the k-mer frequencies, the log length and then, when fitted with them, `num_gene_features`
    per-gene features, which `predict` then needs as well.
    """

    alphabet: str
    ks: tuple[int, ...]
    alpha: float
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coefficients: np.ndarray
    intercept: float
    validation_mse: dict[float, float] = field(default_factory=dict)
    num_gene_features: int = 0

    def input_columns(
        self, sequences: Sequence[str], gene_features: np.ndarray | Sequence[Sequence[float]] | None = None
    ) -> np.ndarray:
        """The model's unstandardised columns: k-mer frequencies, log length, then the per-gene features."""
        extra = _gene_feature_matrix(gene_features, len(sequences))
        if extra.shape[1] != self.num_gene_features:
            raise ValueError(
                f"the model was fitted with {self.num_gene_features} per-gene features, got {extra.shape[1]}"
            )
        return np.hstack([baseline_features(sequences, self.alphabet, self.ks), extra])

    def standardized_features(
        self, sequences: Sequence[str], gene_features: np.ndarray | Sequence[Sequence[float]] | None = None
    ) -> np.ndarray:
        return (self.input_columns(sequences, gene_features) - self.feature_mean) / self.feature_scale

    def predict(
        self, sequences: Sequence[str], gene_features: np.ndarray | Sequence[Sequence[float]] | None = None
    ) -> np.ndarray:
        """Predicted labels of `sequences` (with their per-gene features when the model was fitted with them)."""
        return self.standardized_features(sequences, gene_features) @ self.coefficients + self.intercept


def fit_ridge_baseline(
    train_seqs: Sequence[str],
    train_y: np.ndarray,
    valid_seqs: Sequence[str],
    valid_y: np.ndarray,
    alphabet: str,
    ks: Iterable[int],
    alphas: Sequence[float] | None = None,
    train_gene_features: np.ndarray | Sequence[Sequence[float]] | None = None,
    valid_gene_features: np.ndarray | Sequence[Sequence[float]] | None = None,
) -> RidgeBaseline:
    """Fits ridge regression on k-mer frequencies plus log length (plus per-gene features when given for both
    splits), choosing alpha by validation MSE; see `fit_ridge` for the standardisation and the intercept."""
    if (train_gene_features is None) != (valid_gene_features is None):
        raise ValueError("per-gene features must be given for both the train and the validation split, or neither")
    ks = tuple(sorted({int(k) for k in ks}))
    train_extra = _gene_feature_matrix(train_gene_features, len(train_seqs))
    valid_extra = _gene_feature_matrix(valid_gene_features, len(valid_seqs))
    fit = fit_ridge(
        np.hstack([baseline_features(train_seqs, alphabet, ks), train_extra]),
        train_y,
        np.hstack([baseline_features(valid_seqs, alphabet, ks), valid_extra]),
        valid_y,
        alphas,
    )
    return RidgeBaseline(
        alphabet=resolve_alphabet(alphabet),
        ks=ks,
        alpha=fit.alpha,
        feature_mean=fit.column_mean,
        feature_scale=fit.column_scale,
        coefficients=fit.coefficients,
        intercept=fit.intercept,
        validation_mse=fit.validation_mse,
        num_gene_features=train_extra.shape[1],
    )


SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class SplitColumns:
    """What the baseline reads of one split: sequences, the first label, and per-gene features if any."""

    sequences: list[str]
    labels: np.ndarray
    gene_features: np.ndarray | None


def _split_columns(split) -> SplitColumns:
    labels = np.asarray(split["label"], dtype=np.float64)
    has_features = "features" in getattr(split, "column_names", split)
    return SplitColumns(
        sequences=list(split["sequence"]),
        labels=labels.reshape(len(labels), -1)[:, 0],
        gene_features=_gene_feature_matrix(list(split["features"]), len(labels)) if has_features else None,
    )


def _scores(alpha: float, predict, columns: dict[str, SplitColumns]) -> dict:
    """The chosen alpha and the validation and test metrics of one fitted model (`predict` takes a split)."""
    return {
        "alpha": alpha,
        "validation": compute_expression_metrics(predict(columns["validation"]), columns["validation"].labels),
        "test": compute_expression_metrics(predict(columns["test"]), columns["test"].labels),
    }


def baseline_on_splits(splits, alphabet: str, ks: Sequence[int] | None = None, alphas=None) -> dict:
    """The baseline on given train/validation/test splits (e.g. a prepared `DatasetDict`: `sequence` and `label`
    columns; the first output when labels have several), so that it sits next to a model on the same split.

    With a `features` column (per-gene features, which the sequence model also gets) the top-level `alpha`,
    `validation` and `test` are those of ridge on k-mers + log length + features, and `features_only` and
    `kmers_only` hold the same scores of ridge on each part alone; `inputs` names what the top-level model saw.
    """
    ks = list(ks or DEFAULT_KMERS[alphabet])
    columns = {name: _split_columns(splits[name]) for name in SPLIT_NAMES}
    train, valid = columns["train"], columns["validation"]
    kmers = fit_ridge_baseline(train.sequences, train.labels, valid.sequences, valid.labels, alphabet, ks, alphas)
    kmers_only = _scores(kmers.alpha, lambda split: kmers.predict(split.sequences), columns)
    results = {
        "alphabet": alphabet,
        "k": ks,
        "split_sizes": {name: len(split.labels) for name, split in columns.items()},
    }
    if train.gene_features is None:
        return {**results, "inputs": "k-mers", **kmers_only}

    combined = fit_ridge_baseline(
        train.sequences,
        train.labels,
        valid.sequences,
        valid.labels,
        alphabet,
        ks,
        alphas,
        train_gene_features=train.gene_features,
        valid_gene_features=valid.gene_features,
    )
    features = fit_ridge(train.gene_features, train.labels, valid.gene_features, valid.labels, alphas)
    return {
        **results,
        "inputs": "k-mers + features",
        **_scores(combined.alpha, lambda split: combined.predict(split.sequences, split.gene_features), columns),
        "features_only": _scores(features.alpha, lambda split: features.predict(split.gene_features), columns),
        "kmers_only": kmers_only,
    }


def baseline_on_dataset_dir(
    dataset_dir: str | PathLike, ks: Sequence[int] | None = None, alphas: Sequence[float] | None = None
) -> dict:
    """The baseline on a dataset folder written by `data.prepare`: its own splits, labels and alphabet."""
    splits, metadata = load_dataset_dir(dataset_dir)
    results = {"dataset_dir": str(dataset_dir), "label": metadata.label_names[0]}
    results.update(baseline_on_splits(splits, metadata.alphabet, ks, alphas))
    return results


def baseline_on_table(
    source: TableSource,
    split: SplitSpec = DEFAULT_SPLIT,
    ks: Sequence[int] | None = None,
    alphas: Sequence[float] | None = None,
) -> dict:
    """The baseline on a table read and split exactly as `data.prepare.prepare_table` reads and splits it."""
    with tempfile.TemporaryDirectory(prefix="baseline-") as cache_dir:
        splits, metadata, reports = table_dataset(source, Path(cache_dir), split=split)
        label = metadata.label_names[0]
        return {
            "table": str(source.path),
            "label": f"log10({label})" if metadata.label_transform.startswith("log10") else label,
            "split": {"method": split.method, "seed": split.seed, "fractions": list(split.fractions)},
            "read": [line for report in reports for line in report.summary_lines()],
            **baseline_on_splits(splits, metadata.alphabet, ks, alphas),
        }


def summary_lines(results: dict) -> list[str]:
    """The test scores of `baseline_on_splits`' results, one line (and the parts' alone, with per-gene features)."""
    test = results["test"]
    lines = [
        f"k-mer ridge baseline ({results.get('inputs', 'k-mers')}, k={' '.join(map(str, results['k']))}, "
        f"alpha={results['alpha']:g}) on "
        f"{test['n']} test rows: r2={test['r2']:.3f} pearson={test['pearson']:.3f} spearman={test['spearman']:.3f} "
        f"coefficient_of_determination={test['coefficient_of_determination']:.3f} mse={test['mse']:.4f}"
    ]
    if "features_only" in results:  # what each part explains alone, so the sequence's share can be read off
        lines.append(
            f"  features only: r2={results['features_only']['test']['r2']:.3f}  "
            f"k-mers only: r2={results['kmers_only']['test']['r2']:.3f}"
        )
    return lines
