"""Tokenisation of promoter batches: our lookup-table path against a character-level `PreTrainedTokenizer`.

The reference is written the way HyenaDNA and Caduceus ship their DNA tokenizers (a Python `_tokenize` returning
`list(text)` and `_convert_token_to_id` through a dict), with our vocabulary so that the ids can be compared. Ours:
`NucleotideTokenizer.encode_fast` per sequence, `encode_batch_fast` for a padded batch, and the `MaskingCollator`
(strategy none) from strings to int64 tensors. Every path is checked to give the reference's ids.

    python benchmarks/bench_tokenizer.py --batch 64 --length 20000
"""

import argparse

import numpy as np
import torch
from bench_utils import interleaved_medians, machine_line, markdown_table
from transformers import PreTrainedTokenizer

from expression_perceiver.data_collators import MaskingCollator, MaskingSettings
from expression_perceiver.modeling import NucleotideTokenizer


class CharacterTokenizer(PreTrainedTokenizer):
    """One token per character, in pure Python, as the HyenaDNA and Caduceus repositories implement theirs."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocabulary: dict[str, int], **kwargs):
        self.vocabulary = dict(vocabulary)
        self.by_id = {index: token for token, index in self.vocabulary.items()}
        kwargs.setdefault("model_max_length", 10**9)
        super().__init__(pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]", **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocabulary)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocabulary.get(token, self.vocabulary["[UNK]"])

    def _convert_id_to_token(self, index: int) -> str:
        return self.by_id.get(index, "[UNK]")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)


def random_promoters(batch: int, length: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    return [letters[rng.integers(0, 4, length)].tobytes().decode("ascii") for _ in range(batch)]


def tokenizer_comparison(batch: int = 64, length: int = 20_000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Median seconds per batch of each path (all in one interleaved loop), after checking that they agree.

    Each of ours is compared with the reference producing the same kind of output: ids alone (lists), or a padded
    batch with its attention mask (numpy arrays, or torch tensors for the collator)."""
    sequences = random_promoters(batch, length)
    ours = NucleotideTokenizer()
    reference = CharacterTokenizer(ours.get_vocab())
    collator = MaskingCollator(ours, MaskingSettings(strategy="none"))
    examples = [{"sequence": sequence} for sequence in sequences]
    padded = dict(add_special_tokens=False, padding=True)
    references = {
        "ids": lambda: reference(sequences, add_special_tokens=False)["input_ids"],
        "padded numpy": lambda: reference(sequences, **padded, return_tensors="np")["input_ids"],
        "padded torch": lambda: reference(sequences, **padded, return_tensors="pt")["input_ids"],
    }
    cases = {
        "encode_fast per sequence": ("ids", lambda: [ours.encode_fast(sequence) for sequence in sequences]),
        "encode_batch_fast (padded + mask)": ("padded numpy", lambda: ours.encode_batch_fast(sequences)[0]),
        "MaskingCollator, strategy none (torch)": ("padded torch", lambda: collator(examples)["input_ids"]),
        "NucleotideTokenizer.__call__ (tokenizers)": (
            "ids",
            lambda: ours(sequences, add_special_tokens=False)["input_ids"],
        ),
    }
    expected = np.array(references["ids"]())
    for name, (_, run) in cases.items():
        check_agreement(name, run(), expected)
    runs = {f"reference, {kind}": run for kind, run in references.items()}
    runs.update({name: run for name, (_, run) in cases.items()})
    seconds = interleaved_medians(runs, repeats, warmup=0)
    return {
        name: {"seconds": seconds[name], "reference_seconds": seconds[f"reference, {kind}"], "reference": kind}
        for name, (kind, _) in cases.items()
    }


def check_agreement(name: str, result, expected: np.ndarray) -> None:
    """A path must produce the reference's ids."""
    ids = result.numpy() if isinstance(result, torch.Tensor) else np.array([np.asarray(row) for row in result])
    if not np.array_equal(ids.astype(np.int64), expected):
        raise AssertionError(f"{name} gives ids different from the reference")


def print_tokenizer(results: dict[str, dict[str, float]], batch: int, length: int) -> None:
    print(f"\n### Tokenisation of {batch} x {length:,} bases (ids checked equal across paths)\n")
    rows = [
        [
            name,
            f"{entry['seconds'] * 1e3:.1f}",
            f"reference, {entry['reference']}: {entry['reference_seconds'] * 1e3:.0f}",
            f"{entry['reference_seconds'] / entry['seconds']:,.0f}x",
        ]
        for name, entry in results.items()
    ]
    print(markdown_table(["ours", "ms/batch", "same output from the reference, ms/batch", "speed-up"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds (medians are reported)")
    args = parser.parse_args()
    print(machine_line())
    print_tokenizer(tokenizer_comparison(args.batch, args.length, args.repeats), args.batch, args.length)


if __name__ == "__main__":
    main()
