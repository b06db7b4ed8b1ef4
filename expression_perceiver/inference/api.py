"""`predict` and `embed`: strings, records or files in; a table (or arrays) back, or files written atomically with
a JSON record of how they were made. `expression-perceiver predict|embed` call these."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import AtomicFile, write_json
from ..data.errors import DataError, ReadReport
from ..data.tables import ProteinTable
from ..provenance import versions
from .inputs import (
    CropRule,
    Example,
    FeatureTable,
    InputFile,
    InputPreparer,
    ProteinSource,
    default_feature_columns,
    examples_from,
    join_inputs,
)
from .predictor import DEFAULT_BATCH_SIZE, Embedder, Predictor
from .writers import (
    check_id,
    check_writable,
    embedding_outputs,
    embedding_writer,
    prediction_columns,
    prediction_matrix,
    prediction_rows,
    sidecar_path,
)

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


def resolve_proteins(proteins: Any) -> ProteinTable | Mapping[str, str] | None:
    if proteins is None or isinstance(proteins, Mapping | ProteinTable):
        return proteins
    if isinstance(proteins, str | os.PathLike):
        proteins = ProteinSource(proteins)
    if not isinstance(proteins, ProteinSource):
        raise DataError(f"proteins must be a table path, a ProteinSource or a mapping, not {type(proteins).__name__}")
    return proteins.read()


def mapping_as_protein_table(proteins: Mapping[str, str]) -> ProteinTable:
    from ..data.tables import ProteinRow

    rows = {gene_id: ProteinRow(sequence, None, 0) for gene_id, sequence in proteins.items()}
    return ProteinTable("the proteins given", rows, ReadReport("the proteins given"))


@dataclass
class RunSummary:
    """What a file-writing `predict` or `embed` did: the files written, the counts, and the sidecar's content."""

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
            f"{key.replace('_', ' ')} {value:,}"
            for key, value in counts.items()
            if key not in ("records", "read") and isinstance(value, int) and value
        )
        if changed:
            lines.append(f"  {changed}")
        for line in self.record.get("read_report", []):
            lines.append(f"  {line}")
        lines.append(f"  details: {self.sidecar}")
        return lines


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


def _prepared(
    resolved: ResolvedInputs,
    preparer: InputPreparer,
    features: Mapping[str, Sequence[float]] | None,
    proteins: ProteinTable | None,
) -> Iterator[Example]:
    report = resolved.file.report if resolved.file is not None else preparer.report
    joined = join_inputs(resolved.examples, report, features, proteins=proteins)
    empty = True
    for example in joined:
        empty = False
        yield preparer(example)
    if empty:
        raise DataError(f"{resolved.source}: no records to read (an empty file, or none left after joining)")


def _setup(runner, inputs, features, proteins, fill_missing_features, crop):
    model_inputs = runner.model_inputs
    resolved = resolve_inputs(inputs)
    feature_rows, feature_source = resolve_features(features, model_inputs.num_features, runner.first.feature_names)
    protein_rows = resolve_proteins(proteins)
    if isinstance(protein_rows, Mapping):
        protein_rows = mapping_as_protein_table(protein_rows)
    if protein_rows is not None and model_inputs.protein_max_length is None:
        raise DataError(f"proteins were given, but a {runner.model_type} reads no protein")
    preparer = InputPreparer(model_inputs, crop, fill_missing_features, resolved.source)
    examples = _prepared(resolved, preparer, feature_rows, protein_rows)
    return resolved, preparer, examples, feature_source


def _record(runner, resolved: ResolvedInputs, preparer: InputPreparer, command: str, **extra) -> dict[str, Any]:
    model_inputs = runner.model_inputs
    counts: dict[str, Any] = preparer.counts_dict()
    reports = [resolved.file.report, preparer.report] if resolved.file is not None else [preparer.report]
    dropped = {reason: tally.count for each in reports for reason, tally in each.dropped.items()}
    if dropped:
        counts["dropped"] = dropped
    record = {
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": [member.describe() for member in runner.members],
        "input": resolved.describe(),
        "counts": counts,
        "read_report": [line.strip() for each in reports for line in each.summary_lines()[1:]],
        "crop": {
            "rule": preparer.crop,
            "max_sequence_length": model_inputs.max_length,
            "protein_max_sequence_length": model_inputs.protein_max_length,
            "description": "sequences longer than the model's max_sequence_length are cropped to it (start: their "
            "first positions, as prepare --max-length and the 6,000-residue protein limit do; center; end); shorter "
            "ones are read at their own length, right-padded with [PAD] and masked out, as the training collator "
            "pads (counted as padded)",
        },
        **runner.describe_device(),
        "versions": versions(),
        **extra,
    }
    if model_inputs.num_features:
        record["features"] = {
            "num_features": model_inputs.num_features,
            "feature_names": runner.first.feature_names,
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
):
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
    started = time.time()
    output = Path(output) if output is not None else None
    if output is not None:
        check_writable([output, sidecar_path(output)], overwrite)
    predictor = models if isinstance(models, Predictor) else Predictor.from_pretrained(models, device, dtype)
    resolved, preparer, examples, feature_source = _setup(
        predictor, inputs, features, proteins, fill_missing_features, crop
    )
    reads_features = predictor.model_inputs.num_features > 0
    columns = prediction_columns(
        predictor.output_names, predictor.units, len(predictor.members), members, reads_features
    )
    bar = Progress(progress, resolved.total, "seq")
    chunks = predictor.predict_chunks(examples, batch_size, on_batch=bar.update)
    try:
        if output is None:
            return _prediction_frame(chunks, columns, members, reads_features)
        if not writes_outputs(predictor, chunks):
            return None
        rows = 0
        with AtomicFile(output) as target:
            target.handle.write("\t".join(["id", *columns]) + "\n")
            for chunk in chunks:
                ids = [check_id(example.id) for example in chunk.examples]
                filled = [example.features_filled for example in chunk.examples] if reads_features else None
                target.handle.writelines(prediction_rows(ids, chunk.values, members, filled))
                rows += len(ids)
            record = _record(
                predictor,
                resolved,
                preparer,
                "predict",
                output=str(output),
                columns=["id", *columns],
                outputs=[
                    {"name": name, "units": units}
                    for name, units in zip(predictor.output_names, predictor.output_units, strict=True)
                ],
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
                features_source=feature_source or None,
                batch_size=batch_size,
                processes=predictor.shard.world_size if predictor.shard else 1,
                rows=rows,
                wall_time_s=round(time.time() - started, 3),
            )
            target.commit()
        write_json(sidecar_path(output), record)
        return RunSummary(output, sidecar_path(output), rows, record["counts"], record)
    finally:
        bar.close()


def writes_outputs(runner, chunks: Iterator) -> bool:
    """In a multi-process run only rank 0 writes; the other processes run their share of the chunks here."""
    if runner.shard is None or runner.shard.writes:
        return True
    for _ in chunks:
        pass
    return False


def _prediction_frame(chunks, columns: list[str], member_columns: bool, reads_features: bool):
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
):
    """The encoder's summary vector (`pooler_output` of the base model, `AutoModel`) of every input, or with
    `latents` its latents (`last_hidden_state`), from one model. Inputs and options as for `predict`.

    Returns:
        with `output` (`.npy`, with `<name>.ids.txt`, or `.parquet`), a `RunSummary`; else `(ids, array)`, the array
        float32 (N, width) or (N, latents, width), in input order.
    """
    started = time.time()
    output = Path(output) if output is not None else None
    if output is not None:
        embedding_writer_check(output)
        check_writable(embedding_outputs(output), overwrite)
    embedder = model if isinstance(model, Embedder) else Embedder.from_pretrained(model, device, dtype)
    resolved, preparer, examples, feature_source = _setup(
        embedder, inputs, features, proteins, fill_missing_features, crop
    )
    bar = Progress(progress, resolved.total, "seq")
    chunks = embedder.embed_chunks(examples, latents, batch_size, on_batch=bar.update)
    try:
        if output is None:
            ids, arrays = [], []
            for chunk in chunks:
                ids += [example.id for example in chunk.examples]
                arrays.append(chunk.values)
            return ids, np.concatenate(arrays)
        if not writes_outputs(embedder, chunks):
            return None
        writer = embedding_writer(output)
        shape = None
        try:
            for chunk in chunks:
                writer.add([example.id for example in chunk.examples], chunk.values)
                shape = chunk.values.shape[1:]
            writer.commit()
        except BaseException:
            writer.discard()
            raise
        record = _record(
            embedder,
            resolved,
            preparer,
            "embed",
            output=str(output),
            ids_file=str(output.with_name(output.stem + ".ids.txt")) if output.suffix.lower() == ".npy" else None,
            embedding="last_hidden_state (latents)" if latents else "pooler_output (summary vector)",
            shape=[writer.rows, *shape] if shape else [writer.rows],
            features_source=feature_source or None,
            batch_size=batch_size,
            processes=embedder.shard.world_size if embedder.shard else 1,
            rows=writer.rows,
            wall_time_s=round(time.time() - started, 3),
        )
        write_json(sidecar_path(output), record)
        return RunSummary(output, sidecar_path(output), writer.rows, record["counts"], record)
    finally:
        bar.close()


def embedding_writer_check(output: Path) -> None:
    if output.suffix.lower() not in (".npy", ".parquet"):
        raise ValueError(f"{output.name}: write embeddings to a .npy or .parquet file")


__all__ = ["ResolvedInputs", "RunSummary", "embed", "predict", "resolve_inputs"]
