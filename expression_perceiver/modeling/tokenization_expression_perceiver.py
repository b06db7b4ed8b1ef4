"""One-letter tokenizers for nucleotides and amino acids, with a vectorised lookup-table fast path.

Each letter is one token; no special token is added around a sequence, so position `i` of the ids is base
(or residue) `i` of the input and the TSS of a 20,000-base Xpresso window stays at index 10,000.
"""

import numpy as np
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNK_TOKEN_ID = SPECIAL_TOKENS.index("[UNK]")


class _LetterTokenizer(PreTrainedTokenizerFast):
    """A `tokenizers`-backed tokenizer over one-letter tokens.

    Subclasses set `letters` (the vocabulary after the special tokens), `aliases` (letters folded onto another
    letter before lookup) and `drop_trailing_stop` (whether a trailing `*` is removed).
    """

    letters: str = ""
    aliases: dict[str, str] = {}
    drop_trailing_stop: bool = False
    model_input_names = ["input_ids", "attention_mask"]
    _auto_class = "AutoTokenizer"  # makes `save_pretrained` copy this file and write `auto_map`

    def __init__(self, tokenizer_file: str | None = None, **kwargs):
        # The backend is fully defined by the class; vocab/merges extracted by `transformers` are not needed.
        for key in ("vocab", "merges", "tokenizer_object"):
            kwargs.pop(key, None)
        if tokenizer_file is None:
            kwargs["tokenizer_object"] = self.build_backend()
        kwargs.setdefault("pad_token", "[PAD]")
        kwargs.setdefault("unk_token", "[UNK]")
        kwargs.setdefault("cls_token", "[CLS]")
        kwargs.setdefault("sep_token", "[SEP]")
        kwargs.setdefault("mask_token", "[MASK]")
        # Sequences are letters only: "[MASK]" written inside a sequence is read as letters, like the fast path.
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("model_max_length", int(1e9))
        super().__init__(tokenizer_file=tokenizer_file, **kwargs)
        self._lookup_table = self.build_lookup_table()

    @classmethod
    def vocabulary(cls) -> dict[str, int]:
        return {token: i for i, token in enumerate(SPECIAL_TOKENS + list(cls.letters))}

    @classmethod
    def folding(cls) -> dict[str, str]:
        """Every input character that maps to a letter other than itself (lower case and aliases)."""
        fold = {letter.lower(): letter for letter in cls.letters if letter.lower() != letter}
        for alias, letter in cls.aliases.items():
            fold[alias.upper()] = letter
            fold[alias.lower()] = letter
        return fold

    @classmethod
    def build_backend(cls) -> Tokenizer:
        backend = Tokenizer(models.WordLevel(vocab=cls.vocabulary(), unk_token="[UNK]"))
        steps = [normalizers.Replace(Regex(r"\*\z"), "")] if cls.drop_trailing_stop else []
        steps += [normalizers.Replace(source, target) for source, target in cls.folding().items()]
        backend.normalizer = normalizers.Sequence(steps)
        backend.pre_tokenizer = pre_tokenizers.FixedLength(length=1)
        backend.add_special_tokens(SPECIAL_TOKENS)
        return backend

    @classmethod
    def build_lookup_table(cls) -> np.ndarray:
        """Token id of every byte value: letters, their folds, and [UNK] for everything else."""
        vocab = cls.vocabulary()
        table = np.full(256, UNK_TOKEN_ID, dtype=np.uint8)
        for letter in cls.letters:
            table[ord(letter)] = vocab[letter]
        for source, target in cls.folding().items():
            table[ord(source)] = vocab[target]
        return table

    def encode_fast(self, sequence: str) -> np.ndarray:
        """Token ids of one sequence as `uint8`, exactly those of `self(sequence)["input_ids"]`."""
        if self.drop_trailing_stop and sequence.endswith("*"):
            sequence = sequence[:-1]
        try:
            codes = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:  # any non-ASCII character is unknown, one token per character
            codes = np.frombuffer(sequence.encode("utf-32-le"), dtype=np.uint32)
            return np.where(codes < 256, self._lookup_table[np.minimum(codes, 255)], UNK_TOKEN_ID).astype(np.uint8)
        return np.take(self._lookup_table, codes)  # faster than fancy indexing for byte codes

    def encode_batch_fast(self, sequences: list[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded `uint8` ids (batch, length) and the `bool` attention mask of a list of sequences."""
        encoded = [self.encode_fast(sequence) for sequence in sequences]
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        width = max(int(lengths.max(initial=0)), pad_to or 0)
        input_ids = np.full((len(encoded), width), self.pad_token_id, dtype=np.uint8)
        attention_mask = np.arange(width)[None, :] < lengths[:, None]
        if encoded:
            input_ids[attention_mask] = np.concatenate(encoded)
        return input_ids, attention_mask


class NucleotideTokenizer(_LetterTokenizer):
    """DNA tokenizer: A C G T N; lower case folded (soft-masked genomes); IUPAC ambiguity codes
    R Y S W K M B D H V read as N; anything else is [UNK]."""

    letters = "ACGTN"
    aliases = {code: "N" for code in "RYSWKMBDHV"}


class AminoAcidTokenizer(_LetterTokenizer):
    """Protein tokenizer: the 20 standard amino acids, then X B Z U O; lower case folded; a trailing `*`
    (stop) dropped; anything else is [UNK]."""

    letters = "ACDEFGHIKLMNPQRSTVWYXBZUO"
    drop_trailing_stop = True


__all__ = ["NucleotideTokenizer", "AminoAcidTokenizer"]
