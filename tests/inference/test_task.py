"""The skeleton every inference task runs in (`inference.task`): chunks shared out between processes and back in
input order, and outputs checked before any model loads. (The four tasks over two launched processes:
`test_distributed.py`.)"""

import threading
from pathlib import Path

import numpy as np
import pytest
from accelerate import PartialState

from expression_perceiver import embed, mutagenesis, predict, variant_effects
from expression_perceiver.inference import Example, task
from expression_perceiver.inference.task import process_state, stream_chunks
from tests.inference.helpers import random_dna
from tests.inference.variant_helpers import CROP, write_genome_and_bed


def lengths(chunk: list[Example]) -> np.ndarray:
    return np.array([len(example.sequence) for example in chunk])


class ThreadState:
    """One of `count` processes simulated by threads: accelerate's own `split_between_processes`, and a gather that
    hands every thread every thread's share, in rank order, as `gather_object` does across processes."""

    split_between_processes = PartialState.split_between_processes

    def __init__(self, rank: int, count: int):
        self.process_index, self.num_processes = rank, count


class ThreadGather:
    def __init__(self, count: int):
        self.shares: list = [None] * count
        self.barrier = threading.Barrier(count, timeout=30)
        self.rank = threading.local()

    def __call__(self, share: list) -> list:
        self.shares[self.rank.value] = share
        self.barrier.wait()
        gathered = [item for each in self.shares for item in each]
        self.barrier.wait()  # every thread has read this round before the next one is written
        return gathered


def test_chunks_are_run_once_by_one_process_and_come_back_in_input_order(monkeypatch):
    examples = [Example(f"e{index}", "A" * (1 + index * 7 % 11)) for index in range(19)]
    single = [(chunk.start, [example.id for example in chunk.examples], chunk.values.tolist())
              for chunk in stream_chunks(examples, lengths, 4, process_state())]  # fmt: skip
    assert [start for start, _, _ in single] == [0, 4, 8, 12, 16]  # 5 chunks: the last round has one

    gather = ThreadGather(2)
    monkeypatch.setattr(task, "gather_object", gather)
    ran: dict[int, list[list[str]]] = {0: [], 1: []}
    streamed: dict[int, list] = {}

    def process(rank: int) -> None:
        gather.rank.value = rank

        def run_chunk(chunk: list[Example]) -> np.ndarray:
            ran[rank].append([example.id for example in chunk])
            return lengths(chunk)

        chunks = stream_chunks(iter(examples), run_chunk, 4, ThreadState(rank, 2))
        streamed[rank] = [(chunk.start, [example.id for example in chunk.examples], chunk.values.tolist())
                          for chunk in chunks]  # fmt: skip

    threads = [threading.Thread(target=process, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert streamed[0] == streamed[1] == single  # every process, every chunk, the single process's boundaries
    ids = [chunk_ids for _, chunk_ids, _ in single]
    assert ran[0] == [ids[0], ids[2], ids[4]] and ran[1] == [ids[1], ids[3]]  # each chunk run once


def test_a_scan_over_many_chunks_places_every_result_where_one_chunk_does(models):
    rng = np.random.default_rng(3)
    sequence = random_dna(rng, 60)  # with a few N, not mutated
    one_chunk = mutagenesis(models["zscore"], sequence=sequence, batch_size=256, device="cpu")
    many_chunks = mutagenesis(models["zscore"], sequence=sequence, batch_size=2, device="cpu")  # chunks of 64
    assert many_chunks.sequences_scored == one_chunk.sequences_scored > 128
    np.testing.assert_array_equal(np.isnan(many_chunks.alt_pred), np.isnan(one_chunk.alt_pred))
    np.testing.assert_allclose(many_chunks.alt_pred, one_chunk.alt_pred, rtol=0, atol=1e-6)
    np.testing.assert_allclose(many_chunks.ref_pred, one_chunk.ref_pred, rtol=0, atol=1e-6)
    skipped = sum(letter not in "ACGT" for letter in sequence)
    assert one_chunk.record["positions_skipped"] == skipped
    assert np.isnan(one_chunk.alt_pred).all(axis=(1, 2, 3)).sum() == skipped


def write_variant_inputs(folder: Path) -> dict:
    write_genome_and_bed(folder)
    (folder / "variants.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    return {"vcf": folder / "variants.vcf", "genome": folder / "genome.fa", "bed": folder / "promoters.bed"}


TASKS = {
    "predict": lambda model, output, files, **options: predict(["ACGT" * 20], model, output=output, **options),
    "embed": lambda model, output, files, **options: embed(["ACGT" * 20], model, output=output, **options),
    "variant_effects": lambda model, output, files, **options: variant_effects(
        files["vcf"], model, genome=files["genome"], bed=files["bed"], window=CROP, output=output, **options
    ),
    "mutagenesis": lambda model, output, files, **options: mutagenesis(
        model, sequence="ACGT" * 20, output=output, **options
    ),
}
SUFFIXES = {"predict": ".tsv", "embed": ".npy", "variant_effects": ".tsv", "mutagenesis": ".npz"}


@pytest.mark.parametrize("name", TASKS)
def test_outputs_and_the_batch_size_are_checked_before_any_model_loads(tmp_path, name):
    files = write_variant_inputs(tmp_path)
    missing_model = str(tmp_path / "no_such_model")  # loading it would fail: the checks must come first
    existing = tmp_path / f"out{SUFFIXES[name]}"
    existing.write_text("kept")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        TASKS[name](missing_model, existing, files)
    assert existing.read_text() == "kept"
    folder = tmp_path / f"folder{SUFFIXES[name]}"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        TASKS[name](missing_model, folder, files, overwrite=True)
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        TASKS[name](missing_model, tmp_path / f"new{SUFFIXES[name]}", files, batch_size=0)
