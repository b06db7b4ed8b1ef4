"""Every kind of input, read through the data layer by `expression-perceiver predict`, predicts what the model
predicts on the same sequences taken by hand."""

import gzip
import json
import shutil

import numpy as np
import pytest
from Bio import bgzf

from expression_perceiver.cli import main
from expression_perceiver.data import SplitSpec, build_dataset_dict, save_dataset
from expression_perceiver.data.xpresso import write_xpresso_h5
from tests.inference.helpers import (
    DNA_WINDOW,
    NUM_FEATURES,
    direct_predictions,
    random_dna,
    random_protein,
    read_tsv,
    tsv_column,
)

RNG = np.random.default_rng(11)
IDS = [f"ENSG{index:04d}" for index in range(5)]
SEQUENCES = [random_dna(RNG, length) for length in (250, 300, 90, 340, 200)]
FEATURES = RNG.normal(size=(5, NUM_FEATURES)).round(5).tolist()
PROTEINS = [random_protein(RNG, length) for length in (80, 150, 40, 120, 60)]


def predictions(path, columns=("predicted_output_0", "predicted_output_1")) -> np.ndarray:
    return np.stack([tsv_column(path, column) for column in columns], axis=1)


def run(*arguments: str) -> None:
    assert main(["predict", *arguments, "--quiet"]) == 0


def fasta_text(ids, sequences) -> str:
    return "".join(
        f">{record_id} description\n{s[:70]}\n{s[70:]}\n" for record_id, s in zip(ids, sequences, strict=True)
    )


@pytest.mark.parametrize("compression", ["plain", "gzip", "bgzip"])
def test_fasta(tmp_path, models, compression):
    text = fasta_text(IDS, SEQUENCES)
    path = tmp_path / ("in.fa" if compression == "plain" else "in.fa.gz")
    if compression == "plain":
        path.write_text(text)
    elif compression == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        with bgzf.BgzfWriter(str(path), "wb") as handle:
            handle.write(text.encode())
    run(str(path), "-m", str(models["zscore"]), "-o", str(tmp_path / "out.tsv"))
    header, rows = read_tsv(tmp_path / "out.tsv")
    assert header == ["id", "predicted_output_zscore"] and [row[0] for row in rows] == IDS
    expected = direct_predictions(models["zscore"], [s[:DNA_WINDOW] for s in SEQUENCES])
    np.testing.assert_allclose(tsv_column(tmp_path / "out.tsv", "predicted_output_zscore"), expected[:, 0], atol=2e-6)
    record = json.loads((tmp_path / "out.tsv.json").read_text())
    assert record["input"]["kind"] == "fasta" and record["units"] == "z-score"
    assert record["counts"] == {
        "records": 5, "cropped": 1, "padded": 3, "features_filled": 0, "features_ignored": 0, "all_n": 0,
        "repeated_ids": 0,
    }  # fmt: skip


def test_table_with_feature_columns_and_a_feature_table_with_filling(tmp_path, models):
    rows = [f"{i}\t{s}\t" + "\t".join(map(str, f)) for i, s, f in zip(IDS, SEQUENCES, FEATURES, strict=True)]
    (tmp_path / "in.tsv").write_text("name\tpromoter\ta\tb\tc\n" + "\n".join(rows) + "\n")
    common = ["-m", str(models["dna"]), "--id-column", "name", "--sequence-column", "promoter"]
    run(
        str(tmp_path / "in.tsv"),
        *common,
        *[x for c in "abc" for x in ("--feature-column", c)],
        "-o",
        str(tmp_path / "a.tsv"),
    )
    expected = direct_predictions(models["dna"], [s[:DNA_WINDOW] for s in SEQUENCES], FEATURES)
    np.testing.assert_allclose(predictions(tmp_path / "a.tsv"), expected, atol=2e-6)

    # The same features from a CSV table matched by id, one gene missing: filled with zeros and marked.
    csv_rows = [f"{i},{','.join(map(str, f))}" for i, f in zip(IDS[1:], FEATURES[1:], strict=True)]
    (tmp_path / "features.csv").write_text("gene_id,a,b,c\n" + "\n".join(csv_rows) + "\n")
    features = ["--features", str(tmp_path / "features.csv"), "--fill-missing-features"]
    run(str(tmp_path / "in.tsv"), *common, *features, "-o", str(tmp_path / "b.tsv"))
    expected = direct_predictions(models["dna"], [s[:DNA_WINDOW] for s in SEQUENCES], [[0.0] * 3, *FEATURES[1:]])
    np.testing.assert_allclose(predictions(tmp_path / "b.tsv"), expected, atol=2e-6)
    assert tsv_column(tmp_path / "b.tsv", "features_filled").tolist() == [1, 0, 0, 0, 0]
    record = json.loads((tmp_path / "b.tsv.json").read_text())
    assert record["counts"]["features_filled"] == 1 and record["features"]["fill"].startswith("zeros")


def test_missing_features_are_filled_with_the_training_means_the_checkpoint_stores(tmp_path, models):
    folder = tmp_path / "with_means"
    shutil.copytree(models["dna"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "feature_mean": [0.5, -1.0, 2.0]}))
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{i}\n{s}\n" for i, s in zip(IDS, SEQUENCES, strict=True)))
    run(str(fasta), "-m", str(folder), "--fill-missing-features", "-o", str(tmp_path / "out.tsv"))
    expected = direct_predictions(folder, [s[:DNA_WINDOW] for s in SEQUENCES], [[0.5, -1.0, 2.0]] * len(SEQUENCES))
    np.testing.assert_allclose(predictions(tmp_path / "out.tsv"), expected, atol=2e-6)
    record = json.loads((tmp_path / "out.tsv.json").read_text())
    assert record["features"]["fill"].startswith("the training feature means stored in the checkpoint")


def test_xpresso_hdf5_cut_to_a_window(tmp_path, models):
    genes = [random_dna(RNG, 20_000) for _ in range(3)]
    write_xpresso_h5(
        tmp_path / "test.h5",
        [{"gene_id": IDS[i], "sequence": genes[i], "label": 0.0, "features": FEATURES[i]} for i in range(3)],
    )
    run(str(tmp_path / "test.h5"), "-m", str(models["dna"]), "--window", "9850", "10150", "-o", str(tmp_path / "o.tsv"))
    expected = direct_predictions(models["dna"], [gene[9850:10150] for gene in genes], FEATURES[:3])
    np.testing.assert_allclose(predictions(tmp_path / "o.tsv"), expected, atol=2e-6)
    assert [row[0] for row in read_tsv(tmp_path / "o.tsv")[1]] == IDS[:3]


def save_records_as_dataset(tmp_path, records, **options):
    dataset_dict, metadata = build_dataset_dict(
        lambda: records, cache_dir=tmp_path / "cache", alphabet="dna", source="test records",
        split=SplitSpec(method="random", seed=0, fractions=(0.4, 0.2, 0.4)), **options,
    )  # fmt: skip
    save_dataset(dataset_dict, metadata, tmp_path / "dataset")
    return dataset_dict


def test_dataset_folder_one_split_or_all(tmp_path, models):
    records = [
        {"gene_id": i, "sequence": s, "label": 1.0 + n, "features": f}
        for n, (i, s, f) in enumerate(zip(IDS, SEQUENCES, FEATURES, strict=True))
    ]
    splits = save_records_as_dataset(tmp_path, records, feature_names=["a", "b", "c"])
    run(str(tmp_path / "dataset"), "-m", str(models["dna"]), "-o", str(tmp_path / "test.tsv"))
    test = splits["test"].to_dict()
    assert [row[0] for row in read_tsv(tmp_path / "test.tsv")[1]] == test["gene_id"]
    expected = direct_predictions(models["dna"], [s[:DNA_WINDOW] for s in test["sequence"]], test["features"])
    np.testing.assert_allclose(predictions(tmp_path / "test.tsv"), expected, atol=2e-6)
    run(str(tmp_path / "dataset"), "-m", str(models["dna"]), "--split", "all", "-o", str(tmp_path / "all.tsv"))
    order = [gene for name in ("train", "validation", "test") for gene in splits[name].to_dict()["gene_id"]]
    assert [row[0] for row in read_tsv(tmp_path / "all.tsv")[1]] == order


def test_bed_windows_cut_from_a_genome_like_prepare_genome(tmp_path, models):
    chromosomes = {"chr1": random_dna(RNG, 2_000), "chr2": random_dna(RNG, 1_200)}
    (tmp_path / "genome.fa").write_text("".join(f">{name}\n{seq}\n" for name, seq in chromosomes.items()))
    bed = [
        ("1", 100, 600, "plus_on_alias", "+"),  # `1` is the genome's chr1
        ("chr2", 300, 800, "minus", "-"),
        ("chr2", 1_000, 1_500, "off_the_end", "+"),  # 300 bases past chr2's end: N
        ("chr9", 0, 500, "missing_chromosome", "+"),
    ]
    (tmp_path / "promoters.bed").write_text("".join(f"{c}\t{s}\t{e}\t{g}\t0\t{st}\n" for c, s, e, g, st in bed))
    run(
        "--bed", str(tmp_path / "promoters.bed"), "--genome", str(tmp_path / "genome.fa"), "--window", "100", "400",
        "-m", str(models["zscore"]), "-o", str(tmp_path / "out.tsv"),
    )  # fmt: skip
    complement = str.maketrans("ACGTN", "TGCAN")
    windows = [
        chromosomes["chr1"][100:600],
        chromosomes["chr2"][300:800].translate(complement)[::-1],
        chromosomes["chr2"][1_000:] + "N" * 300,
    ]
    expected = direct_predictions(models["zscore"], [window[100:400] for window in windows])
    header, rows = read_tsv(tmp_path / "out.tsv")
    assert [row[0] for row in rows] == ["plus_on_alias", "minus", "off_the_end"]
    np.testing.assert_allclose(tsv_column(tmp_path / "out.tsv", "predicted_output_zscore"), expected[:, 0], atol=2e-6)
    record = json.loads((tmp_path / "out.tsv.json").read_text())
    assert record["counts"]["dropped"] == {"chromosome not in genome.fa": 1}
    assert record["input"]["window"] == [100, 400]


def test_protein_dna_model_from_a_dataset_and_from_fasta_with_protein_and_feature_tables(tmp_path, models):
    folder = models["protein_dna"]
    features = [f[:2] for f in FEATURES]
    records = [
        {"gene_id": i, "sequence": s, "protein_sequence": p, "label": [0.1 * n, 1.0 + n], "features": f}
        for n, (i, s, p, f) in enumerate(zip(IDS, SEQUENCES, PROTEINS, features, strict=True))
    ]
    save_records_as_dataset(
        tmp_path, records, label_names=["mrna", "protein"], feature_names=["a", "b"], with_protein=True
    )
    run(str(tmp_path / "dataset"), "-m", str(folder), "--split", "all", "-o", str(tmp_path / "a.tsv"))
    order = [row[0] for row in read_tsv(tmp_path / "a.tsv")[1]]
    position = [IDS.index(gene) for gene in order]
    expected = direct_predictions(
        folder,
        [SEQUENCES[i][:DNA_WINDOW] for i in position],
        [features[i] for i in position],
        [PROTEINS[i][:120] for i in position],
    )
    np.testing.assert_allclose(predictions(tmp_path / "a.tsv"), expected, atol=2e-6)

    # Promoters from FASTA, proteins and features from tables by gene id; a gene without protein is dropped.
    (tmp_path / "promoters.fa").write_text(fasta_text(IDS, SEQUENCES))
    (tmp_path / "proteins.tsv").write_text(
        "gene_id\tsequence\n" + "".join(f"{i}\t{p}*\n" for i, p in zip(IDS[:4], PROTEINS[:4], strict=True))
    )
    (tmp_path / "features.tsv").write_text(
        "gene_id\ta\tb\n" + "".join(f"{i}\t{f[0]}\t{f[1]}\n" for i, f in zip(IDS, features, strict=True))
    )
    run(
        str(tmp_path / "promoters.fa"), "-m", str(folder), "--proteins", str(tmp_path / "proteins.tsv"),
        "--features", str(tmp_path / "features.tsv"), "-o", str(tmp_path / "b.tsv"),
    )  # fmt: skip
    assert [row[0] for row in read_tsv(tmp_path / "b.tsv")[1]] == IDS[:4]
    expected = direct_predictions(
        folder, [s[:DNA_WINDOW] for s in SEQUENCES[:4]], features[:4], [p[:120] for p in PROTEINS[:4]]
    )
    np.testing.assert_allclose(predictions(tmp_path / "b.tsv"), expected, atol=2e-6)
    record = json.loads((tmp_path / "b.tsv.json").read_text())
    assert record["counts"]["dropped"] == {"no protein in proteins.tsv": 1}
    assert record["counts"]["protein_cropped"] == 1
