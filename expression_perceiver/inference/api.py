"""`predict` and `embed`: strings, records or files in; a table (or arrays) back, or files written atomically with
a JSON record of how they were made. `expression-perceiver predict|embed` call these. Both run in the one skeleton
of every inference task (`task.InferenceRun`); what is theirs is the inputs (`prepare_inputs`) and the rows."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.errors import DataError
from .inputs import CropRule, Example, InputFile, InputPreparer, examples_from, join_inputs
from .predictor import DEFAULT_BATCH_SIZE, Embedder, Predictor
from .task import Chunk, GeneInputs, InferenceRun, RunSummary, report_lines
from .writers import (
    EmbeddingFile,
    PredictionFile,
    embedding_outputs,
    prediction_columns,
    prediction_matrix,
    sidecar_path,
)

if TYPE_CHECKING:
    import pandas

PATH_HINTS = ("/", "\\", ".")


def looks_like_path(text: str) -> bool:
    """Whether a string given as input names a file rather than holding a sequence: it exists, or it has a path
    separator or a dot (no sequence letter is either)."""
    return os.path.exists(text) or any(hint in text for hint in PATH_HINTS)


@dataclass
class ResolvedInputs:
    """Examples to run and where they come from: `file` when read from a file (its report counts what it read)."""

    examples: Iterable[Example]
    source: str
    file: InputFile | None = None
    total: int | None = None

    def describe(self) -> dict[str, Any]:
        return self.file.describe() if self.file is not None else {"kind": "python objects", "source": self.source}


def resolve_inputs(inputs: Any) -> ResolvedInputs:
    """An `InputFile`, a path (str naming a file, or `os.PathLike`), one sequence string, one record, or an iterable
    of sequence strings, `(id, sequence)` pairs, mappings and `Example`s."""
    if isinstance(inputs, InputFile):
        return ResolvedInputs(inputs.examples(), inputs.name, inputs, inputs.count())
    if isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and looks_like_path(inputs)):
        input_file = InputFile(inputs)
        return ResolvedInputs(input_file.examples(), input_file.name, input_file, input_file.count())
    if isinstance(inputs, str | Example | Mapping) or (isinstance(inputs, tuple) and len(inputs) == 2):
        inputs = [inputs]
    if isinstance(inputs, Iterable):
        total = len(inputs) if isinstance(inputs, Sequence) else None
        return ResolvedInputs(examples_from(inputs), "input", None, total)
    raise DataError(f"cannot read inputs of type {type(inputs).__name__}")


@dataclass
class PreparedInputs:
    """The inputs of a `predict` or `embed`: where they come from, and their examples fitted to the models."""

    resolved: ResolvedInputs
    preparer: InputPreparer
    examples: Iterator[Example]
    feature_source: str


def prepare_inputs(
    run: InferenceRun, inputs: Any, features: Any, proteins: Any, fill_missing_features: bool, crop: CropRule
) -> PreparedInputs:
    resolved = resolve_inputs(inputs)
    given = run.gene_inputs(features, proteins)
    preparer = InputPreparer(
        run.runner.model_inputs, crop, fill_missing_features, resolved.source, count_repeated_ids=True
    )
    return PreparedInputs(resolved, preparer, _prepared(resolved, preparer, given), given.feature_source)


def _prepared(resolved: ResolvedInputs, preparer: InputPreparer, given: GeneInputs) -> Iterator[Example]:
    report = resolved.file.report if resolved.file is not None else preparer.report
    joined = join_inputs(resolved.examples, report, given.features, proteins=given.proteins)
    empty = True
    for example in joined:
        empty = False
        yield preparer(example)
    if empty:
        raise DataError(f"{resolved.source}: no records to read (an empty file, or none left after joining)")


def _record(run: InferenceRun, inputs: PreparedInputs, rows: int, **fields: Any) -> dict[str, Any]:
    """The record of a `predict` or `embed`: what was read and how it was fitted to the models, then the task's
    `fields`."""
    model_inputs = run.runner.model_inputs
    resolved, preparer = inputs.resolved, inputs.preparer
    counts: dict[str, Any] = preparer.counts_dict()
    reports = [resolved.file.report, preparer.report] if resolved.file is not None else [preparer.report]
    dropped = {reason: tally.count for each in reports for reason, tally in each.dropped.items()}
    if dropped:
        counts["dropped"] = dropped
    crop = {
        "rule": preparer.crop,
        "max_sequence_length": model_inputs.max_length,
        "protein_max_sequence_length": model_inputs.protein_max_length,
        "description": "sequences longer than the model's max_sequence_length are cropped to it (start: their "
        "first positions, as prepare --max-length and the 6,000-residue protein limit do; center; end); shorter "
        "ones are read at their own length, right-padded with [PAD] and masked out, as the training collator "
        "pads (counted as padded)",
    }
    record = run.record(
        {"input": resolved.describe(), "counts": counts, "read_report": report_lines(*reports), "crop": crop},
        after={
            **fields,
            "features_source": inputs.feature_source or None,
            "batch_size": run.batch_size,
            "processes": run.processes,
            "rows": rows,
            "wall_time_s": run.wall_time_s(),
        },
    )
    if model_inputs.num_features:
        record["features"] = {
            "num_features": model_inputs.num_features,
            "feature_names": run.runner.first.feature_names,
            "fill_missing_features": preparer.fill_missing_features,
            "fill": model_inputs.feature_fill_source if preparer.fill_missing_features else None,
        }
    return record


def predict(
    inputs: Any,
    models: str | Sequence[str] | Predictor,
    *,
    output: str | os.PathLike | None = None,
    features: Any = None,
    proteins: Any = None,
    fill_missing_features: bool = False,
    crop: CropRule = "start",
    batch_size: int = DEFAULT_BATCH_SIZE,
    members: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> RunSummary | pandas.DataFrame | None:
    """Predicts expression for every input with one model or an ensemble.

    Args:
        inputs: a sequence string, a record (`(id, sequence)`, a mapping with `sequence` and `id`/`gene_id`, an
            `Example`), an iterable of those, a path (FASTA, sequence table, Xpresso HDF5, dataset folder), or an
            `InputFile` (which names columns, the dataset split, BED + genome, the window).
        models: a model folder or Hub id (`org/name@revision`), a list of them (an ensemble), or a `Predictor`.
        output: a TSV to write (with `<output>.json` beside it); None returns a `pandas.DataFrame` instead.
        features: per-gene features by id: a table path, a `FeatureTable` or a mapping (replaces the inputs' own).
        proteins: proteins by gene id for the Protein&DNAPerceiver: a table path, a `ProteinSource` or a mapping.
        fill_missing_features: fill missing features (training means when the checkpoint stores them, else zeros)
            and mark those rows in `features_filled`, instead of stopping.
        crop: how a sequence longer than the model reads is cropped: `start` (keep its first positions), `center`
            or `end`.
        batch_size: examples per forward pass (predictions do not depend on it).
        members: add each member's prediction beside the ensemble's mean and standard deviation.
        device, dtype: where and in what precision to run (default: CUDA if available, bf16 autocast on a GPU that
            supports it, else float32 on the CPU).
        overwrite: replace existing output files.
        progress: show a progress bar on stderr (when it is a terminal).

    Returns:
        with `output`, a `RunSummary` (files, counts, the sidecar's record); else a DataFrame with an `id` column and
        the TSV's columns, in input order. Launched on several processes (`accelerate launch -m
        expression_perceiver.cli predict ...`), each runs a share of the input and rank 0 writes the one output (the
        others return None).
    """
    output = Path(output) if output is not None else None
    files = [output, sidecar_path(output)] if output is not None else []
    with InferenceRun("predict", files, batch_size=batch_size, overwrite=overwrite, progress=progress) as run:
        predictor = run.load(Predictor, models, device, dtype)
        prepared = prepare_inputs(run, inputs, features, proteins, fill_missing_features, crop)
        reads_features = predictor.model_inputs.num_features > 0
        columns = prediction_columns(
            predictor.output_names, predictor.units, len(predictor.members), members, reads_features
        )
        chunks = run.chunks(prepared.examples, total=prepared.resolved.total)
        if output is None:
            return _prediction_frame(chunks, columns, members, reads_features)
        table = run.write(chunks, lambda: PredictionFile(output, columns, members, reads_features))
        if table is None:
            return None
        record = _record(
            run,
            prepared,
            table.rows,
            output=str(output),
            columns=["id", *columns],
            outputs=predictor.describe_outputs(),
            units=predictor.units,
            units_note="in the training labels' units"
            if predictor.units == "original"
            else "z-scores: the checkpoint stores no label standardisation",
            ensemble={
                "n": len(predictor.members),
                "mean": "mean over the models",
                "std": "sample standard deviation over the models (ddof=1)",
            }
            if len(predictor.members) > 1
            else None,
        )
        return run.finish(output, record, table.rows)


def _prediction_frame(
    chunks: Iterable[Chunk], columns: list[str], member_columns: bool, reads_features: bool
) -> pandas.DataFrame:
    import pandas

    ids, tables, filled = [], [], []
    for chunk in chunks:
        ids += [example.id for example in chunk.examples]
        tables.append(prediction_matrix(chunk.values, member_columns))
        filled += [example.features_filled for example in chunk.examples]
    frame = pandas.DataFrame(np.concatenate(tables), columns=columns[: len(columns) - reads_features])
    if "n_models" in frame:
        frame["n_models"] = frame["n_models"].astype(np.int64)
    if reads_features:
        frame["features_filled"] = np.asarray(filled, dtype=np.int64)
    frame.insert(0, "id", ids)
    return frame


def embed(
    inputs: Any,
    model: str | Embedder,
    *,
    output: str | os.PathLike | None = None,
    latents: bool = False,
    features: Any = None,
    proteins: Any = None,
    fill_missing_features: bool = False,
    crop: CropRule = "start",
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> RunSummary | tuple[list[str], np.ndarray] | None:
    """The encoder's summary vector (`pooler_output` of the base model, `AutoModel`) of every input, or with
    `latents` its latents (`last_hidden_state`), from one model. Inputs and options as for `predict`.

    Returns:
        with `output` (`.npy`, with `<name>.ids.txt`, or `.parquet`), a `RunSummary`; else `(ids, array)`, the array
        float32 (N, width) or (N, latents, width), in input order.
    """
    output = Path(output) if output is not None else None
    if output is not None:
        embedding_writer_check(output)
    files = embedding_outputs(output) if output is not None else []
    with InferenceRun("embed", files, batch_size=batch_size, overwrite=overwrite, progress=progress) as run:
        embedder = run.load(Embedder, model, device, dtype)
        prepared = prepare_inputs(run, inputs, features, proteins, fill_missing_features, crop)
        chunks = run.chunks(
            prepared.examples,
            run_batch=lambda batch: embedder.embed_batch(batch, latents),
            total=prepared.resolved.total,
        )
        if output is None:
            ids, arrays = [], []
            for chunk in chunks:
                ids += [example.id for example in chunk.examples]
                arrays.append(chunk.values)
            return ids, np.concatenate(arrays)
        written = run.write(chunks, lambda: EmbeddingFile(output))
        if written is None:
            return None
        shape = [written.rows, *written.row_shape] if written.row_shape else [written.rows]
        record = _record(
            run,
            prepared,
            written.rows,
            output=str(output),
            ids_file=str(output.with_name(output.stem + ".ids.txt")) if output.suffix.lower() == ".npy" else None,
            embedding="last_hidden_state (latents)" if latents else "pooler_output (summary vector)",
            shape=shape,
        )
        return run.finish(output, record, written.rows)


def embedding_writer_check(output: Path) -> None:
    if output.suffix.lower() not in (".npy", ".parquet"):
        raise ValueError(f"{output.name}: write embeddings to a .npy or .parquet file")


__all__ = ["PreparedInputs", "ResolvedInputs", "RunSummary", "embed", "predict", "prepare_inputs", "resolve_inputs"]
