"""The malformed-input corpus: every reader and command, given a broken or meaningless input, stops with exit code 2
and one line naming the file, record or field and what is wrong, no traceback, and nothing left behind.

Each case builds its inputs in a fresh folder and returns the command line; the expected text is part of that one
line. Cases run in this process through `expression_perceiver.cli.main`, as the console script does.
"""

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from expression_perceiver.cli import main as cli
from expression_perceiver.data.xpresso import write_xpresso_h5
from tests.data.helpers import random_dna, write_fasta, write_table, xpresso_records
from tests.inference.helpers import save_dna_model
from tests.inference.variant_helpers import CROP, write_genome_and_bed
from tests.small_models import SMALL_OVERRIDES

RNG = np.random.default_rng(0)
GOOD_ROWS = [[f"G{i}", random_dna(RNG, 40), float(i % 7) + 0.5] for i in range(40)]
TABLE_HEADER = ["gene_id", "sequence", "label"]


def table(tmp: Path, rows=GOOD_ROWS, header=TABLE_HEADER, name="t.tsv", delimiter="\t") -> Path:
    return write_table(tmp / name, header, rows, delimiter)


def prepare_table(tmp: Path, path: Path, *extra: str) -> list[str]:
    return ["prepare", "table", str(path), "--alphabet", "dna", *extra, "-o", str(tmp / "out")]


def prepare_fasta(tmp: Path, fasta: Path, labels: Path, *extra: str) -> list[str]:
    return [
        "prepare",
        "fasta",
        str(fasta),
        "--labels",
        str(labels),
        "--alphabet",
        "dna",
        *extra,
        "-o",
        str(tmp / "out"),
    ]


def labels_for(tmp: Path, ids, name="labels.tsv") -> Path:
    return write_table(tmp / name, ["gene_id", "label"], [[i, float(n % 5)] for n, i in enumerate(ids)])


def good_fasta(tmp: Path, records=None) -> Path:
    records = records or {f"G{i}": random_dna(RNG, 30) for i in range(30)}
    return write_fasta(tmp / "s.fa", records)


def xpresso_folder(tmp: Path, spoil: Callable[[Path], None] | None = None) -> list[str]:
    folder = tmp / "xpresso"
    folder.mkdir()
    for offset, name in enumerate(("train.h5", "valid.h5", "test.h5")):
        write_xpresso_h5(folder / name, xpresso_records(4 if name == "train.h5" else 2, offset, id_prefix=f"E{offset}"))
    if spoil:
        spoil(folder)
    return ["prepare", "xpresso", str(folder), "-o", str(tmp / "out")]


def rewrite_h5(folder: Path, key: str, value) -> None:
    with h5py.File(folder / "train.h5", "r+") as handle:
        del handle[key]
        handle.create_dataset(key, data=value)


def genome_inputs(tmp: Path, bed_text: str | None = None, fasta_text: str | None = None) -> list[str]:
    fasta = tmp / "genome.fa"
    fasta.write_text(fasta_text if fasta_text is not None else ">chr1\n" + random_dna(RNG, 30_000) + "\n")
    bed = tmp / "promoters.bed"
    bed.write_text(bed_text if bed_text is not None else "chr1\t1000\t21000\tG1\t0\t+\n")
    labels = labels_for(tmp, ["G1", "G2"])
    return [
        "prepare",
        "genome",
        "--genome",
        str(fasta),
        "--bed",
        str(bed),
        "--labels",
        str(labels),
        "-o",
        str(tmp / "out"),
    ]


def train(tmp: Path, *flags: str) -> list[str]:
    return [
        "train", "--config_overrides", SMALL_OVERRIDES, "--synthetic_num_genes", "60", "--num_train_epochs", "1",
        "--use_cpu", "true", "--output_dir", str(tmp / "out"), *flags,
    ]  # fmt: skip


def study_file(tmp: Path, **fields) -> list[str]:
    values = {"name": "s", "output_dir": str(tmp / "out"), "seeds": 2, "table": [{"name": "none"}], **fields}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["study", "plan", str(path)]


def foreign_index(tmp: Path) -> list[str]:
    """A genome whose `.fai` (newer than it, so it is kept) belongs to a longer FASTA."""
    argv = genome_inputs(tmp)
    (tmp / "genome.fa.fai").write_text("chr1\t90000\t6\t90000\t90001\n")
    return argv


def checkpoint(tmp: Path, spoil: Callable[[Path], None] | None = None, **config) -> Path:
    """A tiny saved DNAPerceiver (no features, one output, a 300-base window), its config.json fields replaced by
    `config` (None removes one) and then `spoil`ed."""
    folder = save_dna_model(tmp / "model", seed=0, num_features=0, num_labels=1)
    saved = json.loads((folder / "config.json").read_text())
    saved.update(config)
    (folder / "config.json").write_text(json.dumps({key: value for key, value in saved.items() if value is not None}))
    if spoil:
        spoil(folder)
    return folder


def pickle_weights_only(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")  # a pickle; it is never opened


def predict_with(tmp: Path, model: Path) -> list[str]:
    (tmp / "in.fa").write_text(">a\nACGTACGT\n")
    return ["predict", str(tmp / "in.fa"), "-m", str(model), "-o", str(tmp / "o.tsv")]


VCF_HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def variant_effect(tmp: Path, records: str, **model_fields) -> list[str]:
    write_genome_and_bed(tmp)
    (tmp / "calls.vcf").write_text(VCF_HEADER + records)
    model = checkpoint(tmp) if not model_fields else save_dna_model(tmp / "model", seed=0, **model_fields)
    return ["variant-effect", "--vcf", str(tmp / "calls.vcf"), "--genome", str(tmp / "genome.fa"),
            "--bed", str(tmp / "promoters.bed"), "--window", *map(str, CROP), "-m", str(model),
            "-o", str(tmp / "e.tsv")]  # fmt: skip


def mutagenesis_region(tmp: Path, region: str) -> list[str]:
    write_genome_and_bed(tmp)
    model = checkpoint(tmp)
    return ["mutagenesis", "--region", region, "--genome", str(tmp / "genome.fa"), "-m", str(model), "-o",
            str(tmp / "m.npz")]  # fmt: skip


CASES = {
    "genome: a foreign .fai newer than the FASTA": (foreign_index, "does not describe it"),
    # Tables
    "table: no such file": (lambda t: prepare_table(t, t / "missing.tsv"), "missing.tsv"),
    "table: missing label column": (lambda t: prepare_table(t, table(t), "--label-column", "tpm"), "tpm"),
    "table: missing sequence column": (
        lambda t: prepare_table(t, table(t, header=["gene_id", "seq", "label"])),
        "sequence",
    ),
    "table: missing id column": (lambda t: prepare_table(t, table(t, header=["id", "sequence", "label"])), "gene_id"),
    "table: unknown letter": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["bad", "ACJT", 1]])), "'J'"),
    "table: non-numeric label": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["X1", "ACGT", "high"]])), "high"),
    "table: NaN label": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["X1", "ACGT", "NaN"]])), "X1"),
    "table: infinite label": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["X1", "ACGT", "inf"]])), "X1"),
    "table: log10 of zero": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["X1", "ACGT", 0]]), "--log10"), "X1"),
    "table: empty sequence": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["X1", "", 1]])), "X1"),
    "table: header only": (lambda t: prepare_table(t, table(t, rows=[])), "no records"),
    "table: empty file": (lambda t: prepare_table(t, (t / "e.tsv", (t / "e.tsv").write_text(""))[0]), "e.tsv"),
    "table: three rows leave a split empty": (lambda t: prepare_table(t, table(t, GOOD_ROWS[:3])), "would be empty"),
    "table: all labels equal": (
        lambda t: prepare_table(t, table(t, [[r[0], r[1], 1.0] for r in GOOD_ROWS])),
        "all equal",
    ),
    "table: negative max length": (lambda t: prepare_table(t, table(t), "--max-length", "-5"), "--max-length -5"),
    "table: corrupt gzip": (
        lambda t: prepare_table(t, (t / "c.tsv.gz", (t / "c.tsv.gz").write_bytes(b"\x1f\x8b" + b"junk" * 20))[0]),
        "c.tsv.gz",
    ),
    "table: binary garbage": (
        lambda t: prepare_table(t, (t / "b.tsv", (t / "b.tsv").write_bytes(bytes(range(256)) * 4))[0]),
        "b.tsv",
    ),
    "table: protein letters as DNA": (lambda t: prepare_table(t, table(t, GOOD_ROWS + [["P1", "MKWLLE", 1]])), "P1"),
    "table: ragged row": (
        lambda t: prepare_table(
            t,
            (
                t / "r.tsv",
                (t / "r.tsv").write_text(
                    "gene_id\tsequence\tlabel\n" + "".join(f"G{i}\tACGT\t{i}\n" for i in range(30)) + "G99\tACGT\n"
                ),
            )[0],
        ),
        "line 32",
    ),
    # FASTA
    "fasta: no such file": (lambda t: prepare_fasta(t, t / "none.fa", labels_for(t, ["G1"])), "none.fa"),
    "fasta: sequence before any header": (
        lambda t: prepare_fasta(
            t, (t / "n.fa", (t / "n.fa").write_text("ACGT\n>G1\nACGT\n"))[0], labels_for(t, ["G1"])
        ),
        "n.fa",
    ),
    "fasta: empty file": (
        lambda t: prepare_fasta(t, (t / "e.fa", (t / "e.fa").write_text(""))[0], labels_for(t, ["G1"])),
        "no records",
    ),
    "fasta: no id matches a label": (
        lambda t: prepare_fasta(t, good_fasta(t), labels_for(t, ["Z1", "Z2"])),
        "labels.tsv",
    ),
    "fasta: unknown letter": (
        lambda t: prepare_fasta(
            t,
            good_fasta(t, {**{f"G{i}": "ACGT" * 5 for i in range(30)}, "G7": "ACG?T"}),
            labels_for(t, [f"G{i}" for i in range(30)]),
        ),
        "G7",
    ),
    "fasta: empty record": (
        lambda t: prepare_fasta(
            t, (t / "x.fa", (t / "x.fa").write_text(">G1\n>G2\nACGT\n"))[0], labels_for(t, ["G1", "G2"])
        ),
        "G1",
    ),
    "fasta: label table lacks its id column": (
        lambda t: prepare_fasta(t, good_fasta(t), write_table(t / "l.tsv", ["name", "label"], [["G1", 1]])),
        "gene_id",
    ),
    # Xpresso HDF5
    "xpresso: folder without files": (
        lambda t: ["prepare", "xpresso", str((t / "empty", (t / "empty").mkdir())[0]), "-o", str(t / "out")],
        "train.h5",
    ),
    "xpresso: missing key": (lambda t: xpresso_folder(t, lambda f: _delete_key(f, "label")), "label"),
    "xpresso: promoter of the wrong shape": (
        lambda t: xpresso_folder(t, lambda f: rewrite_h5(f, "promoter", np.zeros((4, 100, 4), bool))),
        "promoter",
    ),
    "xpresso: NaN label": (
        lambda t: xpresso_folder(t, lambda f: rewrite_h5(f, "label", np.array([0.1, np.nan, 0.2, 0.3]))),
        "label",
    ),
    "xpresso: rows that disagree": (
        lambda t: xpresso_folder(t, lambda f: rewrite_h5(f, "label", np.zeros(3))),
        "label",
    ),
    "xpresso: not an HDF5 file": (
        lambda t: xpresso_folder(t, lambda f: (f / "valid.h5").write_bytes(b"not hdf5" * 10)),
        "valid.h5",
    ),
    "xpresso: splits share a gene": (
        lambda t: xpresso_folder(t, lambda f: write_xpresso_h5(f / "test.h5", xpresso_records(2, 0, id_prefix="E0"))),
        "in both",
    ),
    # BED and genome
    "genome: BED with too few columns": (lambda t: genome_inputs(t, bed_text="chr1\t1000\n"), "promoters.bed"),
    "genome: BED end before start": (
        lambda t: genome_inputs(t, bed_text="chr1\t5000\t1000\tG1\t0\t+\n"),
        "promoters.bed",
    ),
    "genome: BED bad strand": (lambda t: genome_inputs(t, bed_text="chr1\t1000\t21000\tG1\t0\t*\n"), "strand"),
    "genome: BED non-numeric start": (
        lambda t: genome_inputs(t, bed_text="chr1\tten\t21000\tG1\t0\t+\n"),
        "promoters.bed",
    ),
    "genome: no BED chromosome in the genome": (
        lambda t: genome_inputs(t, bed_text="chrZ\t1000\t21000\tG1\t0\t+\n"),
        "wrong genome",
    ),
    "genome: genome is not FASTA": (lambda t: genome_inputs(t, fasta_text="hello\n"), "genome.fa"),
    "genome: window of another length with the default crop": (
        lambda t: genome_inputs(t, bed_text="chr1\t1000\t21000\tG1\t0\t+\nchr1\t0\t15000\tG2\t0\t+\n"),
        "15,000-base window",
    ),
    # Training arguments and recipes
    "train: unknown argument": (lambda t: train(t, "--learning_rat", "0.1"), "--learning_rat"),
    "train: unknown config field": (lambda t: train(t, "--config_overrides", "num_latent=8"), "num_latent"),
    "train: malformed config override": (lambda t: train(t, "--config_overrides", "num_latents"), "num_latents"),
    "train: negative epochs": (lambda t: train(t, "--num_train_epochs", "-1"), "--num_train_epochs"),
    "train: unknown masking strategy": (lambda t: train(t, "--mask_strategy", "sideways"), "sideways"),
    "train: unknown model type": (lambda t: train(t, "--model_type", "bert"), "--model_type"),
    "train: mask covering every sequence": (
        lambda t: train(t, "--mask_strategy", "first", "--mask_length", "100000"),
        "whole of every training",
    ),
    "train: mask fraction above 1": (
        lambda t: train(t, "--mask_strategy", "first", "--mask_fraction", "1.5"),
        "mask_fraction",
    ),
    "train: negative eval samples": (lambda t: train(t, "--max_eval_samples", "-1"), "--max_eval_samples"),
    "train: no synthetic genes": (lambda t: train(t, "--synthetic_num_genes", "0"), "--synthetic_num_genes"),
    "train: folder that is not a dataset": (lambda t: train(t, "--dataset_dir", str(t)), "not a prepared dataset"),
    "train: missing checkpoint": (
        lambda t: train(t, "--model_name_or_path", str(t / "nothing")),
        "no such checkpoint folder",
    ),
    "train: recipe that is not a mapping": (
        lambda t: ["train", str((t / "r.yaml", (t / "r.yaml").write_text("- a\n- b\n"))[0])],
        "r.yaml",
    ),
    "train: recipe with broken YAML": (
        lambda t: ["train", str((t / "r.yaml", (t / "r.yaml").write_text("a: [1, 2\n"))[0])],
        "r.yaml",
    ),
    # Other commands
    "generate: no sequences": (lambda t: ["generate", "promoters", str(t / "g.tsv"), "--num", "0"], "--num"),
    "generate: negative count": (lambda t: ["generate", "promoters", str(t / "g.tsv"), "--num", "-5"], "--num"),
    "baseline: no alphabet for a table": (lambda t: ["baseline", "--table", str(table(t))], "--alphabet"),
    "baseline: missing label column": (
        lambda t: ["baseline", "--table", str(table(t)), "--alphabet", "dna", "--label-column", "level"],
        "'level'",
    ),
    "baseline: a word for a label": (
        lambda t: ["baseline", "--table", str(table(t, GOOD_ROWS + [["X1", "ACGT", "high"]])), "--alphabet", "dna"],
        "'high', not a number",
    ),
    "baseline: a protein table read as DNA": (
        lambda t: ["baseline", "--table", str(table(t, GOOD_ROWS + [["P1", "MEEPQSDPSV", 1]])), "--alphabet", "dna"],
        "letter 'E'",
    ),
    "study: unknown field": (lambda t: study_file(t, colour="red"), "colour"),
    "study: bad seeds": (lambda t: study_file(t, seeds=0), "seeds"),
    "study: bad mask size": (
        lambda t: study_file(t, table=[{"name": "none"}, {"name": "x", "strategy": "first", "mask_length": -3}]),
        "mask_length",
    ),
    "study: report of a folder that is no study": (lambda t: ["study", "report", str(t)], "study.yaml"),
    "study: no cells at a time": (lambda t: ["study", "run", study_file(t)[2], "--jobs", "0"], "--jobs"),
    "study: SLURM without a scheduler": (
        lambda t: ["study", "run", study_file(t)[2], "--executor", "slurm"],
        "no `sbatch`/`srun`",
    ),
    # Checkpoints
    "predict: config num_latents that no longer fits the weights": (
        lambda t: predict_with(t, checkpoint(t, num_latents=16)),
        "num_latents is 16 in config.json, 8 in the weights: perceiver.latents is [8, 16] in the weights, [16, 16]",
    ),
    "predict: config max_sequence_length that no longer fits the weights": (
        lambda t: predict_with(t, checkpoint(t, max_sequence_length=20_000)),
        "max_sequence_length is 20000 in config.json, 300 in the weights",
    ),
    "predict: DNA weights relabelled protein_perceiver": (
        lambda t: predict_with(t, checkpoint(t, model_type="protein_perceiver")),
        "model_type 'protein_perceiver' but architectures DNAPerceiverForSequenceClassification",
    ),
    "predict: DNA weights relabelled, architectures removed": (
        lambda t: predict_with(t, checkpoint(t, model_type="protein_perceiver", architectures=None)),
        "vocab_size is 10, but a protein_perceiver reads 30 token ids",
    ),
    "predict: unknown model_type": (lambda t: predict_with(t, checkpoint(t, model_type="foo")), "a 'foo' checkpoint"),
    "predict: pickle weights only": (
        lambda t: predict_with(t, checkpoint(t, pickle_weights_only)),
        "safetensors weights (model.safetensors), never a pickle",
    ),
    "train: fine-tuning a checkpoint whose config no longer fits": (
        lambda t: train(t, "--model_name_or_path", str(checkpoint(t, num_latents=16))),
        "cannot load its weights: config.json does not match model.safetensors: num_latents is 16 in config.json",
    ),
    # Variant effects and mutagenesis
    "variant-effect: header-only VCF": (lambda t: variant_effect(t, ""), "calls.vcf: no variant records"),
    "variant-effect: no variant scored": (
        lambda t: variant_effect(t, "chr1\t11\t.\tA\tG\t.\t.\t.\n"),
        "calls.vcf: none of its 1 records was scored (status",
    ),
    "variant-effect: POS not a number": (
        lambda t: variant_effect(t, "chr1\t12x\t.\tA\tG\t.\t.\t.\n"),
        "calls.vcf: record 1 (line 3, after the header) has POS '12x', not a whole number",
    ),
    "variant-effect: a model reading features, given none": (
        lambda t: variant_effect(t, "chr1\t1081\t.\tA\tG\t.\t.\t.\n", num_features=3, num_labels=1),
        "the model reads 3 per-gene features and none were given",
    ),
    "mutagenesis: region past the chromosome's end": (
        lambda t: mutagenesis_region(t, "chr2:1101-1250"),
        "region chr2:1101-1250: ends at 1,250, past the end of chr2 (1,200 bases in genome.fa)",
    ),
}


def _delete_key(folder: Path, key: str) -> None:
    with h5py.File(folder / "train.h5", "r+") as handle:
        del handle[key]


def inputs_and_outputs(folder: Path) -> list[Path]:
    """Every path under `folder` but a genome's `.fai` index, which the FASTA library writes beside its input."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.suffix != ".fai")


def test_the_corpus_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys, name):
    build, expected = CASES[name]
    argv = build(tmp_path)
    before = inputs_and_outputs(tmp_path)
    code = cli(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if line.strip()]
    assert code == 2, f"exit code {code}; stderr: {captured.err[-1500:]}"
    assert lines and "error" in lines[-1] and expected in lines[-1], captured.err[-1500:]
    assert "Traceback" not in captured.err
    after = inputs_and_outputs(tmp_path)
    assert after == before, f"left behind: {sorted(set(after) - set(before))}"
