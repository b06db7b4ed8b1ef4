import random
import string

import numpy as np
import pytest
from transformers import AutoTokenizer

from expression_perceiver import AminoAcidTokenizer, DNAPerceiverConfig, NucleotideTokenizer, ProteinPerceiverConfig

ADVERSARIAL = [
    "",
    "A",
    "acgtn",
    "ACGT*",
    "**",
    "MKV*",
    "mkv**",
    "M*K",
    "MK*\n",
    "[MASK]ACG[PAD]",
    "[UNK]",
    "A C\tG\nT\r",
    "éàü€😀ACGT",
    "\x00\x01\x7f\xff",
    "RYSWKMBDHVryswkmbdhv",
    "UuOoBbZzXxJj",
    "-.0123456789",
]


def random_strings(count: int, seed: int) -> list[str]:
    generator = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \n\t*éß"
    return ["".join(generator.choices(alphabet, k=generator.randint(0, 300))) for _ in range(count)]


@pytest.mark.parametrize("tokenizer_class", [NucleotideTokenizer, AminoAcidTokenizer])
def test_fast_path_returns_exactly_the_tokenizer_ids(tokenizer_class):
    tokenizer = tokenizer_class()
    for text in ADVERSARIAL + random_strings(300, seed=1):
        expected = tokenizer(text)["input_ids"]
        assert tokenizer.encode_fast(text).tolist() == expected, repr(text)


def test_nucleotide_vocabulary_folding_and_ambiguity_codes():
    tokenizer = NucleotideTokenizer()
    vocab = tokenizer.get_vocab()
    assert [vocab[t] for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T", "N"]] == list(
        range(10)
    )
    assert len(tokenizer) == DNAPerceiverConfig().vocab_size
    assert tokenizer("acgtN")["input_ids"] == [5, 6, 7, 8, 9]
    assert set(tokenizer("RYSWKMBDHV")["input_ids"]) == {vocab["N"]}
    assert tokenizer("U-")["input_ids"] == [vocab["[UNK]"]] * 2
    assert tokenizer.decode([5, 6, 7, 8, 9]).replace(" ", "") == "ACGTN"


def test_amino_acid_vocabulary_and_trailing_stop():
    tokenizer = AminoAcidTokenizer()
    assert len(tokenizer) == ProteinPerceiverConfig().vocab_size
    letters = "ACDEFGHIKLMNPQRSTVWYXBZUO"
    assert tokenizer(letters)["input_ids"] == list(range(5, 30))
    assert tokenizer("mkv*")["input_ids"] == tokenizer("MKV")["input_ids"]
    assert tokenizer("M*K")["input_ids"][1] == tokenizer.unk_token_id  # only a trailing stop is dropped


def test_batch_fast_path_pads_right_with_mask():
    tokenizer = NucleotideTokenizer()
    input_ids, attention_mask = tokenizer.encode_batch_fast(["ACG", "", "T"], pad_to=5)
    assert input_ids.dtype == np.uint8 and input_ids.shape == (3, 5)
    assert input_ids.tolist() == [[5, 6, 7, 0, 0], [0, 0, 0, 0, 0], [8, 0, 0, 0, 0]]
    assert attention_mask.tolist() == [[1, 1, 1, 0, 0], [0] * 5, [1, 0, 0, 0, 0]]


@pytest.mark.parametrize("tokenizer_class", [NucleotideTokenizer, AminoAcidTokenizer])
def test_saved_tokenizer_loads_through_auto_tokenizer(tmp_path, tokenizer_class):
    tokenizer_class().save_pretrained(tmp_path)
    assert (tmp_path / "tokenization_expression_perceiver.py").exists()
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is tokenizer_class
    text = "ACGTNRYmkv*"
    assert loaded(text)["input_ids"] == tokenizer_class()(text)["input_ids"]
    assert loaded.encode_fast(text).tolist() == loaded(text)["input_ids"]
