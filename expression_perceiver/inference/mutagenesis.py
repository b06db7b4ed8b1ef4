"""In-silico saturation mutagenesis: every position of a scanned range replaced by each other letter of the model's
alphabet (3 bases for DNA, 19 amino acids for proteins), the change in predicted expression (`delta = mutant -
reference`) for each, with one model or an ensemble. `expression-perceiver mutagenesis` calls `mutagenesis`.

What is scanned:

- a gene (`gene` with `genome` and `bed` or `tss_table`): the gene's model window, cut as `prepare genome` and
  `predict --bed` cut it (`window`, default 3000..13500 of a 20,000-base window, -7,000..+3,500 around the TSS), on the
  gene's strand; by default the 2,000 positions around the TSS (offsets -1000..+999, `scan`);
- a region (`region="chr1:1000-2000"`, 1-based and inclusive, `:-` for the minus strand) of `genome`;
- a sequence (a string, or a FASTA record: `fasta` with `record`, default its first).

`scan` is (start, end) offsets from the TSS (0 at the TSS, negative upstream, end excluded) when the TSS is known (a
gene, or `tss_index` given for a region or a sequence), else (start, end) 0-based indices of the sequence; by default
the 2,000 positions around the TSS, or the whole sequence when there is no TSS. Positions whose letter is not one of
the alphabet's (N, X) are not mutated (their deltas are NaN). The reference is scored once and each mutant once, in
batches: exactly `1 + 3 * positions` sequences for DNA (`1 + 19 * positions` for proteins) per model.

The sequence is the model's whole input, so it must fit the model (`max_sequence_length`). A region must lie inside
its chromosome: one that runs past the chromosome's end is refused (it is not padded with N).

Coordinates: the TSV's `position` is 1-based (the first base of the scanned sequence is 1), the `.npz`'s `positions`
0-based indices of the same sequence (`positions_base` 0 says so; TSV position = positions + 1); `genome_position(s)`
are 1-based on the + strand in both (`genome_positions_base` 1); `tss_offset(s)` count from the TSS (0) on the
gene's strand. The sidecar's `coordinates` says the same.

Motifs (`motifs`, DNA models only): the scanned sequence is searched with a motif database's motifs (FIMO, both
strands; a MEME file, or JASPAR CORE vertebrates), and the matches overlapping the scanned positions are kept
(`MutagenesisResult.motif_hits`), listed in the sidecar (`motif_hits`, with `motifs`: the database, its licence, the
threshold and the mean |delta| inside and outside the matches) and drawn on the heatmap as labelled bars on a track
above it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import AtomicFile
from ..data.errors import DataError, ReadReport, file_label
from ..data.genome import Genome, select_genome_windows
from ..data.motifs import MotifDatabase, MotifHit, annotate_sequence, motif_database, package_version
from ..data.tables import read_fasta
from ..data.xpresso import XPRESSO_BEST_WINDOW
from .inputs import Example, InputPreparer, ModelInputs
from .predictor import DEFAULT_BATCH_SIZE, Predictor
from .substitutions import INCREMENTAL, incremental_scan, scan_path
from .task import Chunk, GeneInputs, InferenceRun, report_lines
from .variants import read_windows
from .windows import gene_windows, substitutions
from .writers import sidecar_path

LETTERS = {"dna": "ACGT", "protein": "ACDEFGHIKLMNPQRSTVWY"}
COORDINATES = {
    "tsv position": "1-based index in the scanned sequence (its first base is 1)",
    "npz positions": "0-based index in the scanned sequence (positions_base 0): the TSV's position is positions + 1",
    "genome_position": "1-based position on the chromosome's + strand (npz genome_positions, genome_positions_base 1)",
    "tss_offset": "offset from the TSS (0) on the gene's strand, negative upstream",
}
DEFAULT_SCAN = (-1_000, 1_000)
DEFAULT_MOTIF_P_VALUE = 1e-5
MOTIF_LABELS = 20  # the heatmap labels this many motif matches, the most significant
MOTIF_ROWS = 10  # at most this many rows of stacked motif bars on the heatmap's track
REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)(?::(?P<strand>[+-]))?$")


@dataclass
class ScanTarget:
    """The sequence to scan and where it comes from: `tss_index` its TSS's index (None: unknown), `strand` and
    `genome_start` (0-based + strand position of index 0 on `+`, of the last index on `-`) when from a genome."""

    id: str
    sequence: str
    source: str
    tss_index: int | None = None
    strand: str | None = None
    chrom: str | None = None
    genome_start: int | None = None

    def genome_positions(self) -> np.ndarray | None:
        """1-based genome positions of every index (on the + strand), or None."""
        if self.genome_start is None:
            return None
        indices = np.arange(len(self.sequence))
        if self.strand == "-":
            return self.genome_start + len(self.sequence) - indices
        return self.genome_start + 1 + indices


@dataclass
class MutagenesisResult:
    """The scan: `positions` (0-based indices of the sequence), `alt_pred` (positions, letters, models, outputs),
    NaN where the letter is the reference's or the position was skipped, `ref_pred` (models, outputs)."""

    target: ScanTarget
    letters: str
    positions: np.ndarray
    ref_pred: np.ndarray
    alt_pred: np.ndarray
    output_names: list[str]
    units: str
    sequences_scored: int
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    motif_hits: list[MotifHit] = field(default_factory=list)  # matches overlapping the scanned positions
    motif_source: str | None = None  # the motif database searched (None: motifs were not asked for)
    motif_p_value: float | None = None

    @property
    def ref_letters(self) -> list[str]:
        return [self.target.sequence[position] for position in self.positions]

    @property
    def tss_offsets(self) -> np.ndarray | None:
        if self.target.tss_index is None:
            return None
        return self.positions - self.target.tss_index

    @property
    def deltas(self) -> np.ndarray:
        """(positions, letters, models, outputs): each model's mutant minus reference prediction."""
        return self.alt_pred - self.ref_pred[None, None]

    @property
    def delta(self) -> np.ndarray:
        """(positions, letters, outputs): mean over the models."""
        return self.deltas.mean(axis=2)

    @property
    def delta_std(self) -> np.ndarray | None:
        """(positions, letters, outputs): sample standard deviation over the models (ddof=1), for an ensemble."""
        return self.deltas.std(axis=2, ddof=1) if self.deltas.shape[2] > 1 else None

    @property
    def importance(self) -> np.ndarray:
        """(positions, outputs): mean |delta| over the substitutions of each position (NaN where none were made)."""
        magnitude = np.abs(self.delta)
        made = ~np.isnan(magnitude)
        total = np.where(made, magnitude, 0.0).sum(axis=1)
        count = made.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def table_rows(self) -> tuple[list[str], list[list[Any]]]:
        """The TSV's columns and rows: one per substitution made; `position` is 1-based (`positions` + 1),
        `genome_position` 1-based on the + strand."""
        suffixes = [""] if len(self.output_names) == 1 else [f"_{name}" for name in self.output_names]
        genome = self.target.genome_positions()
        columns = ["position", "tss_offset"] + (["chrom", "genome_position"] if genome is not None else [])
        columns += ["ref", "alt"]
        ensemble = self.delta_std is not None
        for suffix in suffixes:
            columns += [f"alt_pred{suffix}", f"delta{suffix}"] + ([f"delta_std{suffix}"] if ensemble else [])
        delta, std, alt_mean = self.delta, self.delta_std, self.alt_pred.mean(axis=2)
        offsets = self.tss_offsets
        rows = []
        for row, position in enumerate(self.positions):
            reference = self.target.sequence[position]
            for column, letter in enumerate(self.letters):
                if np.isnan(delta[row, column, 0]):
                    continue
                fields: list[Any] = [int(position) + 1, int(offsets[row]) if offsets is not None else None]
                if genome is not None:
                    fields += [self.target.chrom, int(genome[position])]
                fields += [reference, letter]
                for output in range(len(self.output_names)):
                    fields += [float(alt_mean[row, column, output]), float(delta[row, column, output])]
                    if ensemble:
                        fields.append(float(std[row, column, output]))
                rows.append(fields)
        return columns, rows

    def motif_mask(self) -> np.ndarray:
        """(positions,): True where a scanned position lies inside a motif match."""
        inside = np.zeros(len(self.positions), dtype=bool)
        for hit in self.motif_hits:
            inside |= (self.positions >= hit.start) & (self.positions < hit.end)
        return inside

    def to_frame(self):
        import pandas

        columns, rows = self.table_rows()
        frame = pandas.DataFrame(rows, columns=columns)
        frame["tss_offset"] = frame["tss_offset"].astype("Int64")
        return frame


# --- what to scan ------------------------------------------------------------------------------------------------


def parse_region(text: str) -> tuple[str, int, int, str]:
    """`chrom:start-end[:strand]`, 1-based and inclusive, as (chrom, 0-based start, end, strand)."""
    match = REGION.match(text.strip())
    if not match:
        raise DataError(f"region {text!r}: expected chrom:start-end or chrom:start-end:- (1-based, inclusive)")
    start, end = int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
    if start < 1 or end < start:
        raise DataError(f"region {text!r}: start must be at least 1 and not past the end")
    return match["chrom"], start - 1, end, match["strand"] or "+"


def resolve_target(
    *,
    sequence: str | None,
    fasta: Any,
    record: str | None,
    gene: str | None,
    region: str | None,
    genome: Any,
    bed: Any,
    tss_table: Any,
    window: tuple[int, int] | None,
    tss_index: int | None,
) -> tuple[ScanTarget, ReadReport | None]:
    given = [
        name for name, value in (("sequence", sequence), ("fasta", fasta), ("gene", gene), ("region", region)) if value
    ]
    if len(given) != 1:
        raise DataError("give one thing to scan: a gene (--gene), a region (--region), a sequence or a FASTA record")
    if gene is not None:
        if genome is None:
            raise DataError("a gene's window is cut from a genome: give --genome with --bed or --tss-table")
        windows, windows_name = read_windows(bed, tss_table)
        matching = [item for item in windows if item.gene_id == gene]
        if not matching:
            raise DataError(f"{windows_name}: no promoter window for gene {gene!r}")
        report = ReadReport(windows_name)
        if len(matching) > 1:
            report.note(
                f"gene has {len(matching)} promoter windows; the first (line {matching[0].line}) is scanned", gene
            )
        with Genome(genome) as reference:
            selected = select_genome_windows(matching[:1], reference, report)
            (found,) = gene_windows(selected, reference, tuple(window) if window else None, tss_index)
            text = found.reference(reference)
        start = found.start
        return ScanTarget(
            gene, text, f"gene {gene} ({windows_name})", found.tss_index, found.strand, found.chrom, start
        ), report
    if region is not None:
        if genome is None:
            raise DataError("a region is cut from a genome: give --genome")
        chrom, start, end, strand = parse_region(region)
        with Genome(genome) as reference:
            name = reference.resolve(chrom)
            if name is None:
                raise DataError(f"region {region}: chromosome {chrom!r} is not in {reference.name}")
            length = reference.length(name)
            if end > length:
                raise DataError(
                    f"region {region}: ends at {end:,}, past the end of {name} ({length:,} bases in {reference.name})"
                )
            text, _ = reference.window(name, start, end, strand, region)
        return ScanTarget(
            region.strip(), text, f"region {region} of {file_label(genome)}", tss_index, strand, name, start
        ), None
    if fasta is not None:
        records = read_fasta(fasta)
        chosen = next((item for item in records if record is None or item.id == record), None)
        if chosen is None:
            what = f"no record {record!r}" if record is not None else "no records"
            raise DataError(f"{file_label(fasta)}: {what}")
        return ScanTarget(
            chosen.id, chosen.sequence.strip(), f"{file_label(fasta)} record {chosen.id}", tss_index
        ), None
    return ScanTarget(record or "sequence", sequence.strip(), "a sequence given", tss_index), None


def scan_positions(target: ScanTarget, scan: tuple[int, int] | None) -> tuple[np.ndarray, str]:
    """The 0-based indices to scan and how they were chosen."""
    length = len(target.sequence)
    if target.tss_index is not None and not 0 <= target.tss_index < length:
        raise DataError(f"TSS index {target.tss_index} is outside the {length:,}-position sequence")
    if target.tss_index is None:
        start, end = scan if scan is not None else (0, length)
        described = f"indices {start}..{end} of the sequence"
    else:
        offsets = scan if scan is not None else DEFAULT_SCAN
        start, end = target.tss_index + offsets[0], target.tss_index + offsets[1]
        described = f"offsets {offsets[0]}..{offsets[1]} from the TSS (index {target.tss_index})"
    if start >= end:
        raise DataError(f"scan {scan[0]} {scan[1]}: the start must come before the end")
    clipped_start, clipped_end = max(start, 0), min(end, length)
    if clipped_start >= clipped_end:
        raise DataError(f"the scan ({described}) misses the {length:,}-position sequence")
    if (clipped_start, clipped_end) != (start, end):
        described += f", clipped to the sequence: indices {clipped_start}..{clipped_end}"
    return np.arange(clipped_start, clipped_end), described


# --- the scan ----------------------------------------------------------------------------------------------------


def mutagenesis(
    models: str | Sequence[str] | Predictor,
    *,
    sequence: str | None = None,
    fasta: str | os.PathLike | None = None,
    record: str | None = None,
    gene: str | None = None,
    region: str | None = None,
    genome: str | os.PathLike | None = None,
    bed: str | os.PathLike | None = None,
    tss_table: str | os.PathLike | None = None,
    window: tuple[int, int] | None = XPRESSO_BEST_WINDOW,
    tss_index: int | None = None,
    scan: tuple[int, int] | None = None,
    features: Any = None,
    proteins: Any = None,
    fill_missing_features: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    output: str | os.PathLike | None = None,
    tsv: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    motifs: str | os.PathLike | bool | MotifDatabase | None = None,
    motif_p_value: float = DEFAULT_MOTIF_P_VALUE,
    incremental: bool = True,
) -> MutagenesisResult:
    """Saturation mutagenesis of one gene's window, a genome region or a sequence (see the module docstring).

    Args:
        models: a model folder or Hub id, a list of them (an ensemble), or a `Predictor`.
        sequence, fasta (+ record), gene, region: what to scan, exactly one of them; `genome` with `bed` or
            `tss_table` for a gene, `genome` for a region.
        window, tss_index: the model window of a gene's promoter window and the TSS's index in it, as for
            `variant_effects`; `tss_index` also places the TSS in a region or sequence.
        scan: (start, end) offsets from the TSS (default -1000..1000), or indices when there is no TSS (default: all).
        features: the gene's per-gene features (a table path, a `FeatureTable` or a mapping by id) for models that
            read them; fill_missing_features fills them instead of stopping.
        proteins: the gene's protein for a Protein&DNAPerceiver (a table path, `ProteinSource` or mapping by id).
        output: `.npz` (arrays) or `.tsv` (one row per substitution) to write, with `<output>.json`; tsv: also a TSV;
            plot: a heatmap PNG (positions x letters, TSS and strand marked, with the importance track: mean |delta|
            per position). None of them: the result is returned.
        incremental: score the substitutions at the cost of what each changes (`model.score_substitutions`, the
            same numbers to float32 rounding) where that is exact (every model one Perceiver layer, float32, no
            positions removed at evaluation); False runs every mutant through the full forward pass.
        batch_size, device, dtype, overwrite, progress: as for `predict`.
        motifs: annotate the scan with known motifs' matches (DNA models): True or "jaspar" for JASPAR CORE
            vertebrates (`pyjaspar`, offline), a MEME file's path, or a `MotifDatabase`; the matches with FIMO p-value
            below `motif_p_value` that overlap the scanned positions are kept in `motif_hits`, listed in the record
            and drawn on the heatmap.

    Returns:
        a `MutagenesisResult` (with files written, its `record` is the sidecar's content).
    """
    output = Path(output) if output is not None else None
    tsv = Path(tsv) if tsv is not None else None
    plot = Path(plot) if plot is not None else None
    if output is not None and output.suffix.lower() not in (".npz", ".tsv"):
        raise ValueError(f"{output.name}: write the scan to a .npz or .tsv file")
    files = [path for path in (output, tsv, plot) if path is not None]
    if output is not None:
        files.append(sidecar_path(output))
    with InferenceRun("mutagenesis", files, batch_size=batch_size, overwrite=overwrite, progress=progress) as run:
        if scan is not None and (len(scan) != 2 or scan[0] >= scan[1]):
            raise ValueError(f"scan {tuple(scan)}: give a start before the end")
        database = load_motifs(motifs, motif_p_value)
        target, report = resolve_target(
            sequence=sequence, fasta=fasta, record=record, gene=gene, region=region, genome=genome, bed=bed,
            tss_table=tss_table, window=window, tss_index=tss_index,
        )  # fmt: skip
        predictor = run.load(Predictor, models, device, dtype)
        letters = fit_target(target, predictor.model_inputs)
        if database is not None and predictor.model_inputs.alphabet != "dna":
            raise ValueError(
                f"motifs are DNA motifs, and this {predictor.model_type} model reads proteins: give no motifs"
            )
        positions, scan_description = scan_positions(target, scan)
        hits = motif_hits(target.sequence, positions, database, motif_p_value) if database is not None else []
        threshold = motif_p_value if database is not None else None
        given = run.gene_inputs(features, proteins)
        preparer = InputPreparer(predictor.model_inputs, "start", fill_missing_features, target.source)
        reference = preparer(
            Example(target.id, target.sequence, given.features_of(target.id), gene_protein(given, target))
        )
        made = substitution_mask(target.sequence, positions, letters)
        rows, columns = np.nonzero(made)  # by position, then letter: the order `substitutions` makes them in
        scored = len(rows) + 1  # the reference, then every substitution
        shape = (len(positions), len(letters), len(predictor.members), predictor.num_outputs)
        path = scan_path(predictor, incremental)
        if path == INCREMENTAL:
            ref_pred, alt_pred = incremental_scan(predictor, reference, positions, letters, rows, columns, shape)
        else:
            chunks = run.chunks(scan_examples(reference, target.sequence, positions, letters), total=scored)
            ref_pred, alt_pred = place_results(chunks, rows, columns, shape)
        result = MutagenesisResult(
            target, letters, positions, ref_pred, alt_pred, predictor.output_names, predictor.units, scored,
            motif_hits=hits, motif_source=motif_name(database), motif_p_value=threshold,
        )  # fmt: skip
        result.record = run.record(
            {
                "target": {
                    "id": target.id,
                    "source": target.source,
                    "length": len(target.sequence),
                    "tss_index": target.tss_index,
                    "strand": target.strand,
                    "chrom": target.chrom,
                    "window": list(window) if (gene is not None and window) else None,
                },
                "scan": scan_description,
                "positions": len(positions),
                "positions_skipped": int(np.sum(~made.any(axis=1))),
                "letters": letters,
                "sequences_scored_per_model": scored,
                "path": path,
                "units": predictor.units,
                "outputs": predictor.describe_outputs(),
                "reference_prediction": ref_pred.mean(axis=0).tolist(),
                "coordinates": COORDINATES,
                "read_report": report_lines(report) if report is not None else [],
                **(motif_fields(result, database) if database is not None else {}),
            },
            run_fields={"batch_size": batch_size},
            after={"wall_time_s": run.wall_time_s()},
        )
        if run.writes:  # rank 0 of a launched run, or the only process
            write_files(run, result, output, tsv, plot)
    return result


def load_motifs(motifs: str | os.PathLike | bool | MotifDatabase | None, p_value: float) -> MotifDatabase | None:
    """The motif database asked for (None: none): JASPAR CORE vertebrates for True or "jaspar", else a MEME file."""
    if motifs is None or motifs is False:
        return None
    if not 0 < p_value <= 1:
        raise ValueError(f"motif p-value {p_value:g}: give a threshold in (0, 1]")
    if isinstance(motifs, MotifDatabase):
        return motifs
    if motifs is True or (isinstance(motifs, str) and motifs.lower() == "jaspar"):
        return motif_database(None)
    return motif_database(motifs)


def motif_name(database: MotifDatabase | None) -> str | None:
    """A short name of the database for the heatmap: its description up to any parenthesis (`JASPAR2024 CORE
    vertebrates non-redundant`, `MEME file motifs.meme`), else its file's name."""
    if database is None:
        return None
    return database.description.split(" (")[0].strip() or database.path.name


def motif_hits(sequence: str, positions: np.ndarray, database: MotifDatabase, p_value: float) -> list[MotifHit]:
    """The database's matches (FIMO p-value below `p_value`, both strands) overlapping the scanned positions, in
    0-based indices of `sequence`. Only the scanned range and a motif's width either side of it are searched
    (FIMO's p-values do not depend on the rest of the sequence)."""
    first, last = int(positions[0]), int(positions[-1]) + 1
    reach = max((motif.pwm.shape[1] for motif in database), default=1) - 1
    begin, end = max(first - reach, 0), min(last + reach, len(sequence))
    hits = annotate_sequence(sequence[begin:end], database, threshold_p=p_value)
    moved = [replace(hit, start=hit.start + begin, end=hit.end + begin) for hit in hits]
    return [hit for hit in moved if hit.end > first and hit.start < last]


def labelled_hits(hits: list[MotifHit], limit: int = MOTIF_LABELS) -> set[int]:
    """The indices of the `limit` most significant hits (smallest p-value, then highest score): those the heatmap
    labels."""
    order = sorted(range(len(hits)), key=lambda index: (hits[index].p_value, -hits[index].score, index))
    return set(order[:limit])


def motif_fields(result: MutagenesisResult, database: MotifDatabase) -> dict[str, Any]:
    """The record's `motifs` (the database, the threshold, how many matches, the mean |delta| inside and outside
    them) and `motif_hits` (each match: 0-based [start, end) in the sequence, offsets from the TSS when known)."""
    hits, tss = result.motif_hits, result.target.tss_index
    labelled = labelled_hits(hits)
    inside = result.motif_mask()
    magnitude = np.abs(result.delta)  # (positions, letters, outputs)
    summary: dict[str, Any] = {
        "database": database.description or database.path.name,
        "path": str(database.path),
        "release": database.release,
        "licence": database.licence,
        "motifs_searched": len(database),
        "method": f"FIMO (memelite {package_version('memelite')}), both strands, uniform background; the matches "
        "overlapping the scanned positions; strand relative to the scanned sequence (the gene's strand for a gene)",
        "p_value_threshold": result.motif_p_value,
        "coordinates": "start, end: 0-based indices of the scanned sequence, end excluded (the npz's positions); "
        "tss_offset_start, tss_offset_end: the same as offsets from the TSS (null when it is unknown)",
        "hits": len(hits),
        "hits_labelled": len(labelled),
        "positions_inside_hits": int(inside.sum()),
        "mean_abs_delta_inside_hits": mean_magnitude(magnitude[inside]),
        "mean_abs_delta_outside_hits": mean_magnitude(magnitude[~inside]),
    }
    if len(labelled) < len(hits):
        summary["labels"] = (
            f"the heatmap labels the {len(labelled)} most significant of {len(hits)} matches (smallest p-value); "
            "the others are drawn unlabelled (`labelled` false)"
        )
    listed = []
    for index, hit in enumerate(hits):
        listed.append({
            "name": hit.motif_name, "id": hit.motif_id, "start": hit.start, "end": hit.end,
            "tss_offset_start": hit.start - tss if tss is not None else None,
            "tss_offset_end": hit.end - tss if tss is not None else None,
            "strand": hit.strand, "score": hit.score, "p_value": hit.p_value, "labelled": index in labelled,
        })  # fmt: skip
    return {"motifs": summary, "motif_hits": listed}


def mean_magnitude(values: np.ndarray) -> list[float | None]:
    """Per output, the mean of (substitutions, letters, outputs) |delta| values over the substitutions made (None
    when none were)."""
    means = []
    for output in range(values.shape[-1]):
        made = values[..., output][~np.isnan(values[..., output])]
        means.append(float(made.mean()) if made.size else None)
    return means


def fit_target(target: ScanTarget, model_inputs: ModelInputs) -> str:
    """The target's sequence as the model reads it (upper case, a protein's stop `*` dropped), which must fit the
    model; the letters each position is mutated to."""
    target.sequence = target.sequence.upper()
    if model_inputs.alphabet == "protein" and target.sequence.endswith("*"):
        target.sequence = target.sequence[:-1]
    if len(target.sequence) > model_inputs.max_length:
        raise DataError(
            f"{target.source}: {len(target.sequence):,} positions, the model reads at most "
            f"{model_inputs.max_length:,}: scan a shorter sequence (or window)"
        )
    return LETTERS[model_inputs.alphabet]


def gene_protein(given: GeneInputs, target: ScanTarget) -> str | None:
    """The target's protein from the proteins given (None when none were); a gene without one is an error."""
    if given.proteins is None:
        return None
    found = given.proteins.proteins.get(target.id)
    if found is None:
        raise DataError(f"{given.proteins.source}: no protein for {target.id!r}")
    return found.sequence


def substitution_mask(sequence: str, positions: np.ndarray, letters: str) -> np.ndarray:
    """(positions, letters): True where a substitution is made, that is, every letter but the reference's at a
    position whose letter is one of `letters` (none at N or X)."""
    here = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)[positions]
    alphabet = np.frombuffer(letters.encode("ascii"), dtype=np.uint8)
    return np.isin(here, alphabet)[:, None] & (here[:, None] != alphabet[None, :])


def scan_examples(reference: Example, sequence: str, positions: np.ndarray, letters: str) -> Iterator[Example]:
    """The reference, then each substitution of `sequence` (its id `<id>:<1-based position><letter>`), with the
    reference's features and protein."""
    yield reference
    for position, letter, mutant in substitutions(sequence, positions, letters):
        yield Example(f"{reference.id}:{position + 1}{letter}", mutant, reference.features, reference.protein_sequence)


def place_results(
    chunks: Iterable[Chunk], rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """`ref_pred` (models, outputs) and `alt_pred` (positions, letters, models, outputs; NaN where nothing was made)
    from the chunks of `scan_examples`: example 0 is the reference, example i the substitution at rows[i - 1],
    columns[i - 1]."""
    alt_pred = np.full(shape, np.nan)
    ref_pred = None
    for chunk in chunks:
        values, first = chunk.values, chunk.start - 1
        if chunk.start == 0:
            ref_pred, values, first = values[0], values[1:], 0
        alt_pred[rows[first : first + len(values)], columns[first : first + len(values)]] = values
    return ref_pred, alt_pred


def write_files(
    run: InferenceRun, result: MutagenesisResult, output: Path | None, tsv: Path | None, plot: Path | None
) -> None:
    """The scan as `output` (.npz or .tsv), `tsv` and the heatmap `plot`, whichever are given, then the record beside
    `output` with the files it describes."""
    writers = [
        (output, write_npz if output is not None and output.suffix.lower() == ".npz" else write_tsv),
        (tsv, write_tsv),
        (plot, plot_mutagenesis),
    ]
    written = []
    for path, write in writers:
        if path is not None:
            write(result, path)
            written.append(str(path))
    if output is not None:
        result.record["files"] = written
        run.write_record(output, result.record)


# --- files -------------------------------------------------------------------------------------------------------


def write_npz(result: MutagenesisResult, path: Path) -> None:
    """Arrays: positions (0-based indices; `positions_base` 0, where the TSV's `position` is 1-based), ref (their
    letters), letters, delta (positions, letters, outputs; NaN for the reference letter), importance (positions,
    outputs), alt_pred (positions, letters, models, outputs), ref_pred (models, outputs), output_names, sequence_id;
    tss_offsets when the TSS is known; delta_std for an ensemble; chrom and genome_positions (1-based, + strand;
    `genome_positions_base` 1) when the sequence comes from a genome."""
    arrays: dict[str, Any] = {
        "positions": result.positions,
        "positions_base": np.array(0),
        "ref": np.array(result.ref_letters),
        "letters": np.array(list(result.letters)),
        "delta": result.delta,
        "importance": result.importance,
        "alt_pred": result.alt_pred,
        "ref_pred": result.ref_pred,
        "output_names": np.array(result.output_names),
        "sequence_id": np.array(result.target.id),
    }
    if result.tss_offsets is not None:
        arrays["tss_offsets"] = result.tss_offsets
    if result.delta_std is not None:
        arrays["delta_std"] = result.delta_std
    genome = result.target.genome_positions()
    if genome is not None:
        arrays["genome_positions"] = genome[result.positions]
        arrays["genome_positions_base"] = np.array(1)
        arrays["chrom"] = np.array(result.target.chrom)
    with AtomicFile(path, "wb") as target:
        np.savez_compressed(target.handle, **arrays)
        target.commit()


def write_tsv(result: MutagenesisResult, path: Path) -> None:
    columns, rows = result.table_rows()
    with AtomicFile(path) as target:
        target.handle.write("\t".join(columns) + "\n")
        for row in rows:
            fields = [
                "NA" if value is None else f"{value:.8g}" if isinstance(value, float) else str(value) for value in row
            ]
            target.handle.write("\t".join(fields) + "\n")
        target.commit()


def plot_mutagenesis(result: MutagenesisResult, path: Path, output: int = 0) -> None:
    """A heatmap of the deltas (letters x positions, one output), the reference letters blank, with the importance
    track above it; the TSS and the gene's strand marked when known; with motifs, their matches as bars (labelled
    with the motif's name and strand, overlapping ones stacked) on a track between the two."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    delta = result.delta[:, :, output].T  # (letters, positions)
    importance = result.importance[:, output]
    offsets = result.tss_offsets
    x = offsets if offsets is not None else result.positions + 1
    limit = float(np.nanmax(np.abs(delta))) if np.isfinite(delta).any() else 1.0
    limit = limit or 1.0
    width = min(max(8.0, len(x) / 120), 24.0)
    height = 2.0 + 0.28 * len(result.letters)
    extent = (x[0] - 0.5, x[-1] + 0.5)
    ratios = [1, max(1.5, len(result.letters) / 4)]
    track = motif_track(result, extent, width) if result.motif_source is not None else None
    if track is not None:  # rows of 0.2 inch, between the importance track and the heatmap
        height += 0.2 * track.rows + 0.25
        ratios.insert(1, (0.2 * track.rows + 0.1) / 0.8)
    figure, axes = plt.subplots(
        len(ratios), 1, figsize=(width, height), sharex=True, layout="constrained",
        gridspec_kw={"height_ratios": ratios},
    )  # fmt: skip
    top, bottom = axes[0], axes[-1]
    top.fill_between(x, np.nan_to_num(importance), step="mid", color="#444444", linewidth=0)
    top.set_ylabel("mean |delta|")
    top.set_xlim(*extent)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")  # reference letters and unmutated positions
    image = bottom.imshow(
        np.ma.masked_invalid(delta), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest",
        extent=(extent[0], extent[1], len(result.letters) - 0.5, -0.5),
    )  # fmt: skip
    bottom.set_yticks(range(len(result.letters)), list(result.letters), fontsize=7 if len(result.letters) > 4 else 9)
    bottom.set_ylabel("mutant")
    units = "z-score" if result.units == "z-score" else "label units"
    colorbar = figure.colorbar(image, ax=list(axes), fraction=0.025, pad=0.01)
    if track is not None:
        track.draw(axes[1], result)
    top.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4))
    colorbar.set_label(f"delta {result.output_names[output]} ({units})")
    target = result.target
    if offsets is not None:
        bottom.set_xlabel("position relative to the TSS (gene's strand)")
        for axis in axes:
            axis.axvline(0, color="black", linewidth=0.8, linestyle="--")
        strand = target.strand or "+"
        top.annotate(
            f"TSS ({strand} strand gene; transcription →)", xy=(0, 0.97), xycoords=("data", "axes fraction"),
            xytext=(4, 0), textcoords="offset points", fontsize=8, va="top",
            bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )  # fmt: skip
    else:
        bottom.set_xlabel("position in the sequence")
    where = f"  {target.chrom}, {target.strand} strand" if target.chrom else ""
    figure.suptitle(f"saturation mutagenesis of {target.id}{where}: delta {result.output_names[output]}", fontsize=10)
    with AtomicFile(path, "wb") as handle:
        figure.savefig(handle.handle, format="png", dpi=110)
        handle.commit()
    plt.close(figure)


MOTIF_COLOURS = {"+": "#1f4e79", "-": "#b35806"}
MOTIF_FONT = 6  # points


def motif_label(hit: MotifHit) -> str:
    return f"{hit.motif_name or hit.motif_id} ({hit.strand})"


@dataclass
class MotifTrack:
    """Where the motif matches go on the heatmap's track: each one's bar (in the heatmap's x coordinates), its row
    (0 next to the heatmap), and the x of its label when it is labelled."""

    spans: list[tuple[float, float]]
    rows_of: list[int]
    label_x: dict[int, float]
    rows: int

    def draw(self, axis, result: MutagenesisResult) -> None:
        from matplotlib.patches import Rectangle

        hits = result.motif_hits
        for index, hit in enumerate(hits):
            (low, high), row = self.spans[index], self.rows_of[index]
            colour = MOTIF_COLOURS.get(hit.strand, "#444444")
            labelled = index in self.label_x
            bar = Rectangle((low, row + 0.1), high - low, 0.3, facecolor=colour, edgecolor="none")
            bar.set_alpha(1.0 if labelled else 0.4)
            axis.add_patch(bar)
            if labelled:
                axis.text(self.label_x[index], row + 0.45, motif_label(hit), ha="center", va="bottom",
                          fontsize=MOTIF_FONT, color=colour, clip_on=True)  # fmt: skip
        if not hits:
            axis.text(0.5, 0.5, f"no motif match at p < {result.motif_p_value:g}", transform=axis.transAxes,
                      ha="center", va="center", fontsize=7, color="#666666", backgroundcolor="white")  # fmt: skip
        axis.set_ylim(0, self.rows)
        axis.set_yticks([])
        axis.set_ylabel("motifs", fontsize=8, rotation=0, ha="right", va="center")
        for side in ("top", "right", "left"):
            axis.spines[side].set_visible(False)
        unlabelled = len(hits) - len(self.label_x)
        note = f"{result.motif_source}: {len(hits)} matches at p < {result.motif_p_value:g}"
        note += f", the {len(self.label_x)} most significant labelled" if unlabelled else ""
        axis.set_title(note + "; + strand blue, - strand orange", fontsize=7, loc="right", pad=2)


def motif_track(result: MutagenesisResult, extent: tuple[float, float], width: float) -> MotifTrack:
    """Bars for the matches, aligned with the heatmap's positions (x: offsets from the TSS, else 1-based positions),
    stacked greedily on rows so that neither bars nor labels overlap: the labelled matches (the most significant)
    first, then the others; past `MOTIF_ROWS` rows a match goes on the least crowded row."""
    hits, tss = result.motif_hits, result.target.tss_index

    def x_of(index: int) -> float:
        return index - tss if tss is not None else index + 1

    spans = [(max(x_of(hit.start) - 0.5, extent[0]), min(x_of(hit.end - 1) + 0.5, extent[1])) for hit in hits]
    labelled = labelled_hits(hits)
    letter = 0.62 * MOTIF_FONT / 72 * (extent[1] - extent[0]) / (0.85 * width)  # a label letter, in positions
    label_x: dict[int, float] = {}
    rows_of = [0] * len(hits)
    occupied: list[list[tuple[float, float]]] = []
    by_start = sorted(range(len(hits)), key=lambda index: spans[index])
    for index in [i for i in by_start if i in labelled] + [i for i in by_start if i not in labelled]:
        low, high = spans[index]
        if index in labelled:
            half = len(motif_label(hits[index])) * letter / 2
            centre = min(max((low + high) / 2, extent[0] + half), extent[1] - half)
            label_x[index] = centre
            low, high = min(low, centre - half), max(high, centre + half)
        low, high = low - letter / 2, high + letter / 2

        def overlaps(row: int, low: float = low, high: float = high) -> int:
            return sum(not (high <= start or low >= end) for start, end in occupied[row])

        row = next((row for row in range(len(occupied)) if not overlaps(row)), None)
        if row is None and len(occupied) < MOTIF_ROWS:
            occupied.append([])
            row = len(occupied) - 1
        elif row is None:
            row = min(range(len(occupied)), key=overlaps)
        occupied[row].append((low, high))
        rows_of[index] = row
    return MotifTrack(spans, rows_of, label_x, max(len(occupied), 1))


def summary_lines(result: MutagenesisResult, output: Path | None) -> list[str]:
    record = result.record
    lines = [
        f"scanned {record['positions']:,} positions of {result.target.id} ({record['scan']}): "
        f"{result.sequences_scored:,} sequences per model in {record['wall_time_s']:.1f} s"
    ]
    if record.get("positions_skipped"):
        lines.append(f"  {record['positions_skipped']:,} positions not mutated (letter not in {result.letters})")
    for line in record.get("read_report", []):
        lines.append(f"  {line}")
    if "motifs" in record:
        motifs = record["motifs"]
        inside, outside = motifs["mean_abs_delta_inside_hits"][0], motifs["mean_abs_delta_outside_hits"][0]
        line = f"  {motifs['hits']:,} motif matches at p < {motifs['p_value_threshold']:g} ({result.motif_source})"
        if inside is not None and outside is not None:
            line += f"; mean |delta| inside them {inside:.4g}, outside {outside:.4g}"
        lines.append(line)
    for name in record.get("files", []):
        lines.append(f"  wrote {name}")
    if output is not None:
        lines.append(f"  details: {sidecar_path(output)}")
    return lines


__all__ = ["LETTERS", "MutagenesisResult", "ScanTarget", "mutagenesis", "parse_region", "plot_mutagenesis"]
