"""`attribute` against the passes it cannot avoid, on this machine's CPU.

A gradient attribution needs at least one forward and one backward pass (to the one-hot input) of the model per
sequence; integrated gradients with n steps need n of them, DeepLIFT/SHAP with k references 2k sequences through
one forward+backward (the inputs and their references). The baseline is those passes of the bare model, through
`torch.autograd.grad` to the input, over the same batches; ours is `attribute` end to end (batching, references,
Captum, combining, units), returning arrays. Both run the same loaded model in turn (interleaved medians). The
target: ours at >= 80% of the baseline's throughput.

    python benchmarks/bench_attribution.py --num 16 --length 2000 --batch 8
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_utils import interleaved_medians, machine_line, markdown_table

from expression_perceiver.inference.attribution import attribute, one_hot_of
from expression_perceiver.inference.inputs import Example
from expression_perceiver.inference.predictor import Predictor

TARGET = 0.80


def save_model(folder: Path, length: int) -> Path:
    from bench_predict import save_default_model

    return save_default_model(folder, length)


def bare_passes(predictor: Predictor, examples: list[Example], batch: int, passes: int, copies: int) -> None:
    """For each batch, `passes` forward and backward passes to the one-hot input of `copies` x the batch: one pass
    of the inputs for gradient x input, one per integration point for integrated gradients, one of the inputs and
    their references together for DeepLIFT."""
    member = predictor.first
    for start in range(0, len(examples), batch):
        tensors = predictor._batch(member, examples[start : start + batch])
        one_hot = one_hot_of(tensors["input_ids"], member).repeat(copies, 1, 1)
        mask = tensors["attention_mask"].repeat(copies, 1)
        for _ in range(passes):
            point = one_hot.clone().requires_grad_(True)
            with torch.enable_grad():
                logits = member.model(inputs_one_hot=point, attention_mask=mask).logits
                torch.autograd.grad(logits[:, 0].sum(), point)


def attribution_comparison(num: int, length: int, batch: int, steps: int, references: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        predictor = Predictor.from_pretrained(str(save_model(Path(folder), length)), device="cpu")
        rng = np.random.default_rng(0)
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)
        examples = [Example(f"g{i}", letters[rng.integers(0, 4, length)].tobytes().decode()) for i in range(num)]
        # method options, then the bare passes per batch and the copies of the batch in each
        cases = {
            "gradient_x_input": (dict(method="gradient_x_input"), 1, 1),
            f"integrated_gradients ({steps} steps)": (
                dict(method="integrated_gradients", steps=steps, references="uniform"),
                steps,
                1,
            ),
            f"deeplift_shap ({references} references)": (
                dict(method="deeplift_shap", num_references=references),
                1,
                2 * references,
            ),
        }
        results = {}
        for name, (options, passes, copies) in cases.items():
            timed = interleaved_medians(
                {
                    "ours": lambda o=options: attribute(examples, predictor, batch_size=batch, **o),
                    "bare": lambda p=passes, c=copies: bare_passes(predictor, examples, batch, p, c),
                },
                repeats=repeats,
            )
            results[name] = {"ours_s": timed["ours"], "bare_s": timed["bare"], "ratio": timed["bare"] / timed["ours"]}
        return results


def print_attribution(results: dict, num: int, length: int) -> None:
    print(f"\n### attribute against the bare passes, {num} sequences x {length:,} bases (default DNAPerceiver)\n")
    rows = [
        [name, f"{r['ours_s']:.2f}", f"{r['bare_s']:.2f}", f"{r['ratio']:.0%}", ">= 80%"] for name, r in results.items()
    ]
    print(markdown_table(["method", "attribute s", "bare passes s", "throughput ours / bare", "target"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=16)
    parser.add_argument("--length", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    results = attribution_comparison(args.num, args.length, args.batch, args.steps, args.references, args.repeats)
    print_attribution(results, args.num, args.length)


if __name__ == "__main__":
    main()
