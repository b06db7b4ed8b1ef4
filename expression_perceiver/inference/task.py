"""The one way an inference task runs. `predict`, `embed`, `variant_effects` and `mutagenesis` (and the next task)
each supply what to score (a stream of `Example`s) and what to make of the results (a writer of rows, or a table
in memory); `InferenceRun` does the rest, the same way for all:

- the outputs are checked before any work: an existing file is replaced only with `overwrite`, a folder is no file;
- the models are loaded: one model or an ensemble (`Predictor`), or one base model (`Embedder`);
- per-gene features and proteins are read from a table path, a `FeatureTable` / `ProteinSource` or a mapping
  (`GeneInputs`);
- the examples run in chunks (`stream_chunks`), with a progress bar on stderr when asked for and stderr is a
  terminal;
- rank 0 alone writes, atomically: the output, then the JSON record beside it (models, resolved revisions, weight
  hashes, device, precision, versions, counts: `record`), and returns a `RunSummary`.

Across processes (`accelerate launch`, `torchrun`), through accelerate's `PartialState`: every process reads the
whole input (reading is cheap next to the models) a round of chunks at a time, one chunk per process;
`split_between_processes` gives process i the i-th chunk of the round, and `gather_object` hands every process
every chunk's results in rank order, which is input order. A chunk is run exactly as one process runs it, so the
numbers, and the one file rank 0 writes, are those of a single process.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from ..data.atomic import write_json
from ..data.errors import DataError, ReadReport
from ..data.tables import ProteinRow, ProteinTable
from ..provenance import versions
from .inputs import Example, FeatureTable, ProteinSource, default_feature_columns
from .writers import check_writable, sidecar_path

Item = TypeVar("Item", contravariant=True)
Runner = TypeVar("Runner")
Opened = TypeVar("Opened", bound="Writer")


# --- processes and chunks ----------------------------------------------------------------------------------------


def process_state() -> PartialState:
    """This process's place in a launched run (a single process when none was launched). On a machine without a
    GPU the processes talk over gloo: `accelerate launch --multi_gpu` there sets up processes but no GPU."""
    return PartialState(cpu=not torch.cuda.is_available())


@dataclass
class Chunk:
    """Consecutive examples of a stream, `start` the index of the first, with their results in input order:
    `values[i]` belongs to `examples[i]`."""

    start: int
    examples: list[Example]
    values: np.ndarray


def stream_chunks(
    examples: Iterable[Example],
    run_chunk: Callable[[list[Example]], np.ndarray],
    chunk_size: int,
    state: PartialState,
) -> Iterator[Chunk]:
    """The examples in chunks of `chunk_size`, in input order, each with the results `run_chunk` gives for it; over
    several processes each chunk is run by one of them and every process receives every chunk's results."""
    iterator = iter(examples)
    start = 0
    while chunks := read_round(iterator, chunk_size, state.num_processes):
        for chunk, values in zip(chunks, run_round(chunks, run_chunk, state), strict=True):
            yield Chunk(start, chunk, values)
            start += len(chunk)


def read_round(iterator: Iterator[Example], chunk_size: int, count: int) -> list[list[Example]]:
    """Up to `count` chunks of what is left of the input (none once it is all read)."""
    chunks = []
    while len(chunks) < count and (chunk := list(itertools.islice(iterator, chunk_size))):
        chunks.append(chunk)
    return chunks


def run_round(
    chunks: list[list[Example]], run_chunk: Callable[[list[Example]], np.ndarray], state: PartialState
) -> list[np.ndarray]:
    """Every chunk's results, in order: this process runs its contiguous share (one chunk, or none in a short last
    round) and the shares are gathered in rank order."""
    with state.split_between_processes(chunks) as mine:
        results = [run_chunk(chunk) for chunk in mine]
    return gather_object(results)


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")


# --- features and proteins ---------------------------------------------------------------------------------------


def resolve_features(
    features: Any, num_features: int, feature_names: Sequence[str] | None
) -> tuple[Mapping[str, Sequence[float]] | None, str]:
    """Features by id from a `FeatureTable`, a path (columns: the checkpoint's feature names when the table has
    them, else every column but `gene_id` when they are as many as the model reads), or a mapping."""
    if features is None:
        return None, ""
    if not num_features:
        raise DataError("features were given, but the model reads none (its config has num_features 0)")
    if isinstance(features, Mapping):
        return features, "the features given"
    if isinstance(features, str | os.PathLike):
        features = FeatureTable(features)
    if not isinstance(features, FeatureTable):
        raise DataError(f"features must be a table path, a FeatureTable or a mapping, not {type(features).__name__}")
    if not features.columns:
        columns = default_feature_columns(features.path, features.id_column, num_features, feature_names)
        features = FeatureTable(features.path, features.id_column, columns)
    return features.read(), Path(features.path).name


def resolve_proteins(proteins: Any) -> ProteinTable | None:
    """Proteins by gene id from a `ProteinSource`, a table path, a `ProteinTable` or a mapping of sequences."""
    if proteins is None or isinstance(proteins, ProteinTable):
        return proteins
    if isinstance(proteins, Mapping):
        return mapping_as_protein_table(proteins)
    if isinstance(proteins, str | os.PathLike):
        proteins = ProteinSource(proteins)
    if not isinstance(proteins, ProteinSource):
        raise DataError(f"proteins must be a table path, a ProteinSource or a mapping, not {type(proteins).__name__}")
    return proteins.read()


def mapping_as_protein_table(proteins: Mapping[str, str]) -> ProteinTable:
    rows = {gene_id: ProteinRow(sequence, None, 0) for gene_id, sequence in proteins.items()}
    return ProteinTable("the proteins given", rows, ReadReport("the proteins given"))


@dataclass
class GeneInputs:
    """Per-gene features and proteins given beside the sequences, by gene id (None: not given)."""

    features: Mapping[str, Sequence[float]] | None = None
    feature_source: str = ""
    proteins: ProteinTable | None = None

    def features_of(self, gene_id: str) -> tuple[float, ...] | None:
        if self.features is None or gene_id not in self.features:
            return None
        return tuple(float(value) for value in self.features[gene_id])

    def protein_sequences(self) -> dict[str, str] | None:
        if self.proteins is None:
            return None
        return {gene_id: row.sequence for gene_id, row in self.proteins.proteins.items()}


# --- progress, records and summaries -----------------------------------------------------------------------------


class Progress:
    """A tqdm bar on stderr, shown only when asked for and stderr is a terminal."""

    def __init__(self, enabled: bool, total: int | None, unit: str):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def report_lines(*reports: ReadReport) -> list[str]:
    """What the read reports say, without their headings, for the record."""
    return [line.strip() for report in reports for line in report.summary_lines()[1:]]


# How a summary names the counts whose key does not read as words.
COUNT_NAMES = {"all_n": "all-N sequences", "repeated_ids": "repeated ids"}


@dataclass
class RunSummary:
    """What a file-writing task did: the files written, the counts, and the sidecar's content."""

    output: Path
    sidecar: Path
    rows: int
    counts: dict[str, Any]
    record: dict[str, Any] = field(repr=False)

    def summary_lines(self) -> list[str]:
        counts = self.counts
        note = f" ({self.record['units_note']})" if self.record.get("units_note") else ""
        lines = [f"wrote {self.output}: {self.rows:,} rows{note}"]
        changed = ", ".join(
            f"{COUNT_NAMES.get(key, key.replace('_', ' '))} {value:,}"
            for key, value in counts.items()
            if key not in ("records", "read") and isinstance(value, int) and value
        )
        if changed:
            lines.append(f"  {changed}")
        for line in self.record.get("read_report", []):
            lines.append(f"  {line}")
        lines.append(f"  details: {self.sidecar}")
        return lines


class Writer(Protocol[Item]):
    """Where a task's results go, an item (a chunk, a block of rows) at a time; nothing is left behind unless
    committed."""

    def add(self, item: Item) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


# --- the run -----------------------------------------------------------------------------------------------------


class InferenceRun:
    """One call of an inference task (see the module docstring); a context manager, whose progress bars close on
    leaving it.

    >>> with InferenceRun("predict", [output, sidecar_path(output)], batch_size=32) as run:
    ...     predictor = run.load(Predictor, ["runs/seed0", "runs/seed1"], device=None, dtype=None)
    ...     table = run.write(run.chunks(examples), lambda: PredictionFile(output, columns, False, False))
    """

    def __init__(
        self,
        command: str,
        outputs: Sequence[Path] = (),
        *,
        batch_size: int,
        overwrite: bool = False,
        progress: bool = False,
    ):
        self.started = time.time()
        self.command = command
        check_batch_size(batch_size)
        check_writable(outputs, overwrite)  # before any model is loaded or input read
        self.batch_size = batch_size
        self.show_progress = progress
        self.bars: list[Progress] = []
        self.runner: Any = None

    def __enter__(self) -> InferenceRun:
        return self

    def __exit__(self, *exception: object) -> None:
        for bar in self.bars:
            bar.close()

    def load(self, runner: type[Runner], models: Any, device: Any = None, dtype: Any = None) -> Runner:
        """`models` when already loaded (a `Predictor`, an `Embedder`), else `runner.from_pretrained`: a folder or Hub
        id, or a list of them for an ensemble."""
        self.runner = models if isinstance(models, runner) else runner.from_pretrained(models, device, dtype)
        return self.runner

    def gene_inputs(self, features: Any = None, proteins: Any = None) -> GeneInputs:
        """Per-gene features and proteins for the loaded models; given to models that cannot read them, an error."""
        model_inputs = self.runner.model_inputs
        rows, source = resolve_features(features, model_inputs.num_features, self.runner.first.feature_names)
        table = resolve_proteins(proteins)
        if table is not None and model_inputs.protein_max_length is None:
            raise DataError(f"proteins were given, but a {self.runner.model_type} reads no protein")
        return GeneInputs(rows, source, table)

    def progress(self, total: int | None, unit: str) -> Progress:
        bar = Progress(self.show_progress, total, unit)
        self.bars.append(bar)
        return bar

    def chunks(
        self,
        examples: Iterable[Example],
        *,
        run_batch: Callable[[Sequence[Example]], np.ndarray] | None = None,
        total: int | None = None,
        unit: str = "seq",
    ) -> Iterator[Chunk]:
        """The results of `run_batch` (by default the predictor's predictions) for every example, in chunks in input
        order, shared out between the processes, with a progress bar of `total` examples."""
        run_batch = run_batch or self.runner.predict_batch
        bar = self.progress(total, unit)
        return self.runner.stream(examples, run_batch, self.batch_size, on_batch=bar.update)

    @property
    def writes(self) -> bool:
        """Whether this process writes the outputs: rank 0 of a launched run, or the only process."""
        return self.runner.state.is_main_process

    @property
    def processes(self) -> int:
        return self.runner.state.num_processes

    def write(self, items: Iterable[Any], open_writer: Callable[[], Opened]) -> Opened | None:
        """On rank 0 (or the only process): every item into the writer `open_writer` opens, committed once all are
        in. The other processes run their share of the items (drawing them scores them) and write nothing: None."""
        if not self.writes:
            for _ in items:
                pass
            return None
        return self.collect(items, open_writer())

    def collect(self, items: Iterable[Any], writer: Opened) -> Opened:
        """Every item into `writer` on this process, committed once all are in, discarded on any error."""
        try:
            for item in items:
                writer.add(item)
            writer.commit()
        except BaseException:
            writer.discard()
            raise
        return writer

    def record(
        self,
        fields: Mapping[str, Any],
        *,
        run_fields: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The sidecar's content: the command and when, the models (paths, resolved revisions, weight hashes), the
        task's `fields`, the device and precision, `run_fields`, the versions, then `after`. (Two places for a task's
        own keys keep each record's key order as it has always been: variant effects and mutagenesis put the batch
        size beside the device, predict and embed after the versions.)"""
        return {
            "command": self.command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "models": [member.describe() for member in self.runner.members],
            **fields,
            **self.runner.describe_device(),
            **(run_fields or {}),
            "versions": versions(),
            **(after or {}),
        }

    def wall_time_s(self) -> float:
        return round(time.time() - self.started, 3)

    def write_record(self, output: Path, record: dict[str, Any]) -> Path:
        """The record as `<output>.json`, written after the output it describes."""
        path = sidecar_path(output)
        write_json(path, record)
        return path

    def finish(self, output: Path, record: dict[str, Any], rows: int) -> RunSummary:
        return RunSummary(output, self.write_record(output, record), rows, record["counts"], record)


__all__ = [
    "Chunk",
    "GeneInputs",
    "InferenceRun",
    "Progress",
    "RunSummary",
    "Writer",
    "process_state",
    "report_lines",
    "resolve_features",
    "resolve_proteins",
    "stream_chunks",
]
