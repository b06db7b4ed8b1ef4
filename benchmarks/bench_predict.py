"""End-to-end `predict` against the bare model's forward pass, on this machine's CPU.

`predict` reads a FASTA file (gzip), tokenises, batches, runs the model and writes the TSV and its JSON record; the
bare model runs the same batches of already-tokenised tensors, nothing else. Both use the same loaded model, batch
size, sequence length and precision, and are timed in turn (interleaved medians). The target: end to end at least
90% of the bare throughput (reading, tokenising and writing cost under 10%).

    python benchmarks/bench_predict.py --num 256 --length 10500 --batch 16
"""

import argparse
import gzip
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_utils import interleaved_medians, machine_line, markdown_table

from expression_perceiver import DNAPerceiverConfig, DNAPerceiverForSequenceClassification, NucleotideTokenizer
from expression_perceiver.inference import Predictor, predict

TARGET = 0.90


def write_fasta(path: Path, num: int, length: int, seed: int = 0) -> list[str]:
    """`num` random promoters of `length` bases, gzip-compressed as users' files often are."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    sequences = [letters[rng.integers(0, 4, length)].tobytes().decode() for _ in range(num)]
    with gzip.open(path, "wt") as handle:
        handle.writelines(f">gene{index}\n{sequence}\n" for index, sequence in enumerate(sequences))
    return sequences


def save_default_model(folder: Path, length: int) -> Path:
    """The default DNAPerceiver (conv branch on, no per-gene features) with a label standardisation, as training
    saves it."""
    torch.manual_seed(0)
    config = DNAPerceiverConfig(max_sequence_length=max(length, 20_000), label_mean=[1.0], label_std=[0.5])
    DNAPerceiverForSequenceClassification(config).save_pretrained(folder)
    NucleotideTokenizer().save_pretrained(folder)
    return folder


def predict_comparison(num: int = 256, length: int = 10_500, batch: int = 16, repeats: int = 3) -> dict:
    """Sequences/s of `predict` (FASTA in, TSV out) and of the bare model over the same sequences and batches."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        fasta = folder / "promoters.fa.gz"
        sequences = write_fasta(fasta, num, length)
        predictor = Predictor.from_pretrained(str(save_default_model(folder / "model", length)), device="cpu")
        model = predictor.first.model
        input_ids, _ = NucleotideTokenizer().encode_batch_fast(sequences)
        batches = [torch.from_numpy(input_ids[start : start + batch]) for start in range(0, num, batch)]

        def bare() -> None:
            with torch.inference_mode():
                for ids in batches:
                    model(input_ids=ids)

        def end_to_end() -> None:
            predict(fasta, predictor, output=folder / "predictions.tsv", batch_size=batch, overwrite=True)

        seconds = interleaved_medians({"bare": bare, "end to end": end_to_end}, repeats)
        rows = len((folder / "predictions.tsv").read_text().splitlines()) - 1
        assert rows == num, f"predict wrote {rows} rows of {num}"
    return {name: num / value for name, value in seconds.items()}


def print_predict(results: dict, num: int, length: int, batch: int) -> None:
    threads = torch.get_num_threads()
    shape = f"{num} x {length:,} bases, batch {batch}, {threads} thread(s)"
    print(f"\n### predict end to end against the bare model, {shape}\n")
    ratio = results["end to end"] / results["bare"]
    rows = [[name, f"{value:.2f}", f"{value / results['bare']:.0%}"] for name, value in results.items()]
    print(markdown_table(["path", "sequences/s", "of bare"], rows))
    print(f"\nend to end / bare: {ratio:.0%} (target >= {TARGET:.0%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=256, help="promoters in the FASTA file")
    parser.add_argument("--length", type=int, default=10_500, help="bases per promoter (Xpresso's window)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    results = predict_comparison(args.num, args.length, args.batch, args.repeats)
    print_predict(results, args.num, args.length, args.batch)


if __name__ == "__main__":
    main()
