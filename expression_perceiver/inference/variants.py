"""Variant effects: for each VCF variant inside a gene's promoter window, the expression predicted for the reference
window and for the window carrying the ALT allele, and their difference (`delta = alt - ref`), with one model or an
ensemble. `expression-perceiver variant-effect` calls `variant_effects`.

- Windows come from a promoter BED (chrom, start, end, gene_id, score, strand) or a TSS table (gene_id, chrom, tss,
  strand; `read_tss_table`) and are cut to the model's window exactly as `prepare genome` and `predict --bed` cut them
  (`window`, default 3000..13500 of Xpresso's 20,000-base windows, -7,000..+3,500 around the TSS), the TSS at
  `tss_index` of each BED window (default: its centre). Minus-strand windows are reverse-complemented; the ALT allele
  is applied on the + strand before that.
- SNVs, MNVs, insertions, deletions and complex changes are scored. **Indels keep the window anchored at the TSS**:
  the sequence between the TSS and the variant stays in place and the window is trimmed or padded on its far side,
  away from the TSS, so its length stays the window's length; padding is the genome's own sequence beyond the window
  (N only past a chromosome's end). When the TSS base itself is deleted, the next remaining base downstream on the
  gene's strand takes its index. See `windows.py` for the full rule.
- Multi-allelic records give one row per ALT; a variant inside several genes' windows one row per gene (in the
  promoter file's order). Every row has a `status`: `ok`, or why it was not scored (`STATUSES`). A bad record never
  stops the run; a file that cannot be read as VCF (or a line that cannot be parsed) is one error line.
- A run that scores no variant at all (a header-only VCF, or every row unscored) is an error naming the file and the
  rows' statuses, and writes nothing. A model that reads per-gene features (or proteins) is refused before any record
  is read when none are given (unless `fill_missing_features`), as `predict` refuses it.
- Each gene's reference window is scored once; ALT windows are scored in batches, and the same allele in the same
  gene (duplicate records) is scored once, so duplicates get identical numbers. An ALT window identical to the
  reference (a change the window does not see) gets the reference's prediction and a delta of exactly 0.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.atomic import AtomicFile
from ..data.errors import DataError, ReadReport, file_label
from ..data.genome import Genome, read_promoter_bed, read_tss_table, select_genome_windows
from ..data.vcf import AnnotatedVcfWriter, VcfReader, VcfRecord
from ..data.xpresso import XPRESSO_BEST_WINDOW
from .inputs import Example, InputPreparer
from .predictor import DEFAULT_BATCH_SIZE, Predictor
from .substitutions import INCREMENTAL, scan_path, substituted_values
from .task import GeneInputs, InferenceRun, Progress, RunSummary, report_lines
from .windows import (
    DNA_LETTERS,
    Change,
    GeneWindow,
    WindowIndex,
    alt_window,
    change_offset,
    gene_windows,
    minimal_change,
)
from .writers import check_id, sidecar_path

if TYPE_CHECKING:
    import pandas

STATUSES = {
    "ok": "scored",
    "invalid_position": "POS is 0, or REF at POS reaches past the end of the chromosome in the genome",
    "outside_windows": "the variant lies outside every promoter window",
    "chromosome_not_in_genome": "the variant's chromosome is not in the genome (under any chr-prefix alias)",
    "no_alt_allele": "ALT is '.' (no alternative allele)",
    "symbolic_allele": "a symbolic ALT (<DEL>, <*>, '*', a breakend): no sequence to apply",
    "unsupported_allele": "REF or ALT holds letters other than A C G T N, or ALT equals REF",
    "ref_mismatch": "REF differs from the genome at POS",
    "no_features": "the model reads per-gene features and the gene has none (see --fill-missing-features)",
    "no_protein": "the model reads the gene's protein and the protein table has none for it",
}
INDEL_RULE = (
    "windows stay anchored at the TSS: an indel moves only the sequence on its side of the TSS, which is trimmed or "
    "padded at the window's far end (away from the TSS) to keep the window's length; padding is the genome's own "
    "sequence beyond the window (N only past a chromosome's end); a deleted TSS passes its index to the next "
    "remaining base downstream on the gene's strand; alleles are trimmed to their minimal form first; minus-strand "
    "windows are reverse-complemented after the ALT is applied on the + strand"
)
INFO_ID = "EP_EFFECT"
RECORDS_PER_BLOCK = 2_048
ALT_CACHE_SIZE = 200_000
# Prepared reference windows kept for the incremental path (VCF records come sorted: the windows in use are recent).
REFERENCE_CACHE_SIZE = 256
# ALT windows differing from the reference in at most this many positions are scored incrementally.
MAX_SUBSTITUTED_POSITIONS = 16


@dataclass
class EffectRow:
    """One output row: a record's ALT in one gene's window (`window` None when it is in none)."""

    record: VcfRecord
    alt: str
    window: GeneWindow | None
    status: str
    change: Change | None = None
    tss_offset: int | None = None
    ref_values: np.ndarray | None = None  # (models, outputs)
    alt_values: np.ndarray | None = None


def digest(sequence: str) -> bytes:
    return hashlib.blake2b(sequence.encode("ascii"), digest_size=16).digest()


def is_symbolic(alt: str) -> bool:
    return alt.startswith("<") or alt in ("*", "<*>") or "[" in alt or "]" in alt or alt.startswith(".")


def read_windows(bed: Any = None, tss_table: Any = None) -> tuple[list, str]:
    """The promoter windows of a BED file or a TSS table, and the file's name."""
    if (bed is None) == (tss_table is None):
        raise DataError("give the promoter windows as a BED file (--bed) or a TSS table (--tss-table), one of them")
    if bed is not None:
        return read_promoter_bed(bed), file_label(bed)
    return read_tss_table(tss_table), file_label(tss_table)


class VariantScorer:
    """Rows of VCF records and their predictions (see the module docstring)."""

    def __init__(
        self,
        predictor: Predictor,
        genome: Genome,
        windows: Sequence[GeneWindow],
        features: Mapping[str, Sequence[float]] | None,
        proteins: Mapping[str, str] | None,
        fill_missing_features: bool,
        batch_size: int,
        incremental: bool = True,
    ):
        self.predictor = predictor
        self.path = scan_path(predictor, incremental)
        self.genome = genome
        self.windows = list(windows)
        self.index = WindowIndex(windows)
        self.features = features
        self.proteins = proteins
        self.fill_missing_features = fill_missing_features
        self.batch_size = batch_size
        self.preparer = InputPreparer(predictor.model_inputs, "start", fill_missing_features, "variant windows")
        self.reads_features = predictor.model_inputs.num_features > 0
        self.reads_protein = predictor.model_inputs.protein_max_length is not None
        self.ref_values: dict[int, np.ndarray] = {}
        self.ref_sequences: dict[int, bytes] = {}  # digests: an ALT window equal to its reference reuses it
        self.alt_values: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.ref_examples: OrderedDict[int, Example] = OrderedDict()  # the latest windows' prepared references
        self.counts: Counter[str] = Counter()
        self.scored = {"reference_windows": 0, "alt_windows": 0, "alt_windows_incremental": 0}
        self._ref_checks: dict[tuple[int, str], bool] = {}
        self._lengths: dict[str, int] = {}

    # --- rows -----------------------------------------------------------------------------------------------------

    def _gene_problem(self, window: GeneWindow) -> str | None:
        if self.reads_features and not self.fill_missing_features:
            if self.features is None or window.gene_id not in self.features:
                return "no_features"
        if self.reads_protein and (self.proteins is None or window.gene_id not in self.proteins):
            return "no_protein"
        return None

    def _position_valid(self, record: VcfRecord, chrom: str) -> bool:
        """POS is a base of the chromosome (1-based) and REF from there ends inside it."""
        if chrom not in self._lengths:
            self._lengths[chrom] = self.genome.length(chrom)
        return 1 <= record.pos and record.pos - 1 + max(len(record.ref), 1) <= self._lengths[chrom]

    def _ref_matches(self, record: VcfRecord, chrom: str) -> bool:
        key = (record.index, record.ref)
        if key not in self._ref_checks:
            found, _ = self.genome.window(chrom, record.pos - 1, record.pos - 1 + len(record.ref), "+")
            self._ref_checks = {key: found == record.ref.upper()}  # only the current record's result is kept
        return self._ref_checks[key]

    def rows(self, record: VcfRecord) -> list[EffectRow]:
        """The rows of one record: one per ALT and gene whose window holds it, or one per ALT when none does."""
        if not record.alts:
            return [EffectRow(record, ".", None, "no_alt_allele")]
        chrom = self.genome.resolve(record.chrom)
        inside = chrom is not None and self._position_valid(record, chrom)
        rows = []
        for alt in record.alts:
            if chrom is None:
                rows.append(EffectRow(record, alt, None, "chromosome_not_in_genome"))
                continue
            if not inside:
                rows.append(EffectRow(record, alt, None, "invalid_position"))
                continue
            symbolic = is_symbolic(alt)
            letters_ok = set(record.ref.upper()) <= DNA_LETTERS and (symbolic or set(alt.upper()) <= DNA_LETTERS)
            if symbolic or not letters_ok or not record.ref:
                change = Change(record.pos - 1, record.ref.upper(), "")
            else:
                change = minimal_change(record.pos, record.ref, alt)
            windows = self.index.overlapping(chrom, change.start, len(change.ref))
            if not windows and not change.ref and not change.alt:  # ALT equals REF: the windows of REF itself
                windows = self.index.overlapping(chrom, record.pos - 1, len(record.ref))
            if not windows:
                rows.append(EffectRow(record, alt, None, "outside_windows"))
                continue
            for window in windows:
                if symbolic:
                    status = "symbolic_allele"
                elif not letters_ok or not record.ref or change.key[1:] == ("", ""):
                    status = "unsupported_allele"
                elif not self._ref_matches(record, chrom):
                    status = "ref_mismatch"
                else:
                    status = self._gene_problem(window) or "ok"
                rows.append(EffectRow(record, alt, window, status, change, change_offset(window, change)))
        return rows

    # --- predictions ----------------------------------------------------------------------------------------------

    def _example(self, window: GeneWindow, sequence: str, name: str) -> Example:
        features = None
        if self.reads_features and self.features is not None and window.gene_id in self.features:
            features = tuple(float(value) for value in self.features[window.gene_id])
        protein = self.proteins.get(window.gene_id) if self.reads_protein and self.proteins is not None else None
        return self.preparer(Example(name, sequence, features, protein))

    def _predict(self, examples: list[Example]) -> np.ndarray:
        values = np.empty((len(examples), len(self.predictor.members), self.predictor.num_outputs))
        for chunk in self.predictor.predict_chunks(examples, self.batch_size):
            values[chunk.start : chunk.start + len(chunk.examples)] = chunk.values
        return values

    def _predict_substitutions(self, pending: dict[tuple, Example]) -> dict[tuple, np.ndarray]:
        """Values of the pending ALT windows that differ from their reference window by substitutions only (SNVs,
        equal-length MNVs: the same length, a few positions changed), scored incrementally, one reference per
        window and one call per number of changed positions; indels are left to the full forward pass."""
        by_window: dict[int, list[tuple[tuple, Example]]] = {}
        for key, example in pending.items():
            by_window.setdefault(key[0], []).append((key, example))
        found: dict[tuple, np.ndarray] = {}
        for index, items in by_window.items():
            window = self.windows[index]
            reference = self.ref_examples.get(index) or self._example(
                window, window.reference(self.genome), f"{window.gene_id}|ref"
            )
            codes = np.frombuffer(reference.sequence.encode("ascii"), dtype=np.uint8)
            groups: dict[int, list[tuple[tuple, np.ndarray, np.ndarray]]] = {}
            for key, example in items:
                if len(example.sequence) != len(codes) or example.features != reference.features:
                    continue
                alt = np.frombuffer(example.sequence.encode("ascii"), dtype=np.uint8)
                changed = np.flatnonzero(alt != codes)
                if 0 < len(changed) <= MAX_SUBSTITUTED_POSITIONS:
                    groups.setdefault(len(changed), []).append((key, changed, alt[changed]))
            for group in groups.values():
                positions = np.stack([changed for _, changed, _ in group])
                letters = np.stack([letters.view("S1").astype(str) for _, _, letters in group])
                values = substituted_values(self.predictor, reference, positions, letters)
                found.update({key: value for (key, _, _), value in zip(group, values, strict=True)})
        return found

    def score(self, rows: Sequence[EffectRow]) -> None:
        """Fills `ref_values` and `alt_values` of the rows with status `ok`, scoring what is not cached yet."""
        scored = [row for row in rows if row.status == "ok"]
        new_windows = list({row.window.index: row.window for row in scored if row.window.index not in self.ref_values})
        if new_windows:
            windows = [self.windows[index] for index in new_windows]
            sequences = [window.reference(self.genome) for window in windows]
            examples = [self._example(w, s, f"{w.gene_id}|ref") for w, s in zip(windows, sequences, strict=True)]
            for window, example in zip(windows, examples, strict=True):  # the incremental path starts from them
                self.ref_examples[window.index] = example
            while len(self.ref_examples) > REFERENCE_CACHE_SIZE:
                self.ref_examples.popitem(last=False)
            values = self._predict(examples)
            for window, sequence, value in zip(windows, sequences, values, strict=True):
                self.ref_values[window.index] = value
                self.ref_sequences[window.index] = digest(sequence)
            self.scored["reference_windows"] += len(windows)

        pending: dict[tuple, Example] = {}
        for row in scored:
            key = (row.window.index, row.change.key)
            if key in self.alt_values or key in pending:
                if key in self.alt_values:
                    self.alt_values.move_to_end(key)
                continue
            sequence = alt_window(self.genome, row.window, row.change)
            if digest(sequence) == self.ref_sequences[row.window.index]:
                self.alt_values[key] = self.ref_values[row.window.index]
                continue
            name = f"{row.window.gene_id}|{row.record.chrom}:{row.record.pos}:{row.record.ref}>{row.alt}"
            pending[key] = self._example(row.window, sequence, name)
        if pending and self.path == INCREMENTAL:
            for key, value in self._predict_substitutions(pending).items():
                self.alt_values[key] = value
                del pending[key]
                self.scored["alt_windows"] += 1
                self.scored["alt_windows_incremental"] += 1
        if pending:
            values = self._predict(list(pending.values()))
            for key, value in zip(pending, values, strict=True):
                self.alt_values[key] = value
            self.scored["alt_windows"] += len(pending)
        for row in scored:
            row.ref_values = self.ref_values[row.window.index]
            row.alt_values = self.alt_values[(row.window.index, row.change.key)]
        while len(self.alt_values) > ALT_CACHE_SIZE:
            self.alt_values.popitem(last=False)
        self.counts.update(row.status for row in rows)


# --- the table ---------------------------------------------------------------------------------------------------


def effect_columns(output_names: Sequence[str], members: int, member_columns: bool) -> list[str]:
    """Columns of the effects table. With several outputs every prediction column ends in `_<output>`; for an
    ensemble `ref_pred`, `alt_pred` and `delta` are means over the models, with `delta_std` (ddof=1) and `n_models`."""
    suffixes = [""] if len(output_names) == 1 else [f"_{name}" for name in output_names]
    columns = ["chrom", "pos", "id", "ref", "alt", "gene", "strand", "tss_offset"]
    for suffix in suffixes:
        columns += [f"ref_pred{suffix}", f"alt_pred{suffix}", f"delta{suffix}"]
        if members > 1:
            columns.append(f"delta_std{suffix}")
            if member_columns:
                columns += [f"delta{suffix}_model{index + 1}" for index in range(members)]
    if members > 1:
        columns.append("n_models")
    columns.append("status")
    return columns


def effect_values(row: EffectRow, members: int, member_columns: bool) -> list[float | None]:
    """The prediction fields of a row in `effect_columns` order (None where it was not scored)."""
    outputs = None if row.ref_values is None else row.ref_values.shape[1]
    if outputs is None:
        return []
    delta = row.alt_values - row.ref_values  # (models, outputs)
    values: list[float | None] = []
    for output in range(outputs):
        values += [
            float(row.ref_values[:, output].mean()),
            float(row.alt_values[:, output].mean()),
            float(delta[:, output].mean()),
        ]
        if members > 1:
            values.append(float(delta[:, output].std(ddof=1)))
            if member_columns:
                values += [float(value) for value in delta[:, output]]
    if members > 1:
        values.append(float(members))
    return values


def row_fields(row: EffectRow, members: int, member_columns: bool, width: int) -> list[Any]:
    """Every field of a row in `effect_columns` order (None: not available)."""
    record = row.record
    window = row.window
    head = [
        record.chrom,
        record.pos,
        record.id,
        record.ref,
        row.alt,
        window.gene_id if window else ".",
        window.strand if window else ".",
        row.tss_offset,
    ]
    values = effect_values(row, members, member_columns)
    return [*head, *(values or [None] * width), row.status]


def format_field(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)


def annotation(row: EffectRow, members: int, outputs: int) -> str:
    """The row as one value of the VCF INFO field: Allele|Gene|Strand|TSS_offset|Delta(s)|[Delta_std(s)|]Status."""
    window = row.window
    if row.ref_values is not None:
        delta = row.alt_values - row.ref_values
        deltas = [f"{value:.6g}" for value in delta.mean(axis=0)]
        stds = [f"{value:.6g}" for value in delta.std(axis=0, ddof=1)] if members > 1 else []
    else:
        deltas, stds = ["."] * outputs, (["."] * outputs if members > 1 else [])
    fields = [
        row.alt,
        window.gene_id if window else ".",
        window.strand if window else ".",
        "." if row.tss_offset is None else str(row.tss_offset),
        ":".join(deltas),
        *([":".join(stds)] if members > 1 else []),
        row.status,
    ]
    return "|".join(fields)


def annotation_description(output_names: Sequence[str], members: int, units: str) -> str:
    std = "|Delta_std" if members > 1 else ""
    ensemble = f"; means over {members} models, Delta_std their sample std" if members > 1 else ""
    return (
        "Predicted expression effect per ALT and gene (expression-perceiver variant-effect). "
        f"Format: Allele|Gene|Strand|TSS_offset|Delta{std}|Status. Delta = alt - ref prediction ({units}; outputs "
        f"{':'.join(output_names)}, ':'-separated{ensemble})"
    )


Block = list[tuple[VcfRecord, list[EffectRow]]]


def scored_blocks(reader: VcfReader, scorer: VariantScorer, bar: Progress) -> Iterator[Block]:
    """The VCF's records a block at a time, each with its rows scored (the models' work, shared out between the
    processes of a launched run). Once every record is read, a run that scored none of them is a `DataError` (the
    writer then discards what it holds: nothing is written)."""
    records = reader.records()
    while block := list(itertools.islice(records, RECORDS_PER_BLOCK)):
        rows_by_record = [scorer.rows(record) for record in block]
        scorer.score([row for rows in rows_by_record for row in rows])
        yield list(zip(block, rows_by_record, strict=True))
        bar.update(len(block))
    check_scored(reader, scorer)


def check_scored(reader: VcfReader, scorer: VariantScorer) -> None:
    """A run must score at least one variant: a header-only VCF, or one whose every row is unscored, is refused in
    one line naming the file and the rows' statuses."""
    if scorer.counts["ok"]:
        return
    if not reader.records_read:
        raise DataError(f"{reader.name}: no variant records (a header only): nothing to score, nothing written")
    statuses = ", ".join(f"{status} {count:,}" for status, count in scorer.counts.most_common())
    first = scorer.counts.most_common(1)[0][0]
    raise DataError(
        f"{reader.name}: none of its {reader.records_read:,} records was scored (status {statuses}; {first}: "
        f"{STATUSES[first]}): nothing written"
    )


def check_gene_inputs(predictor: Predictor, given: GeneInputs, fill_missing_features: bool) -> None:
    """A model that reads per-gene features or proteins, given none, is refused before any record is read (every
    row would be `no_features` or `no_protein`), as `predict` refuses it."""
    model_inputs = predictor.model_inputs
    if model_inputs.num_features and given.features is None and not fill_missing_features:
        raise DataError(
            f"the model reads {model_inputs.num_features} per-gene features and none were given: give a feature table "
            "(--features), or pass --fill-missing-features to fill them"
        )
    if model_inputs.protein_max_length is not None and given.proteins is None:
        raise DataError(
            f"a {predictor.model_type} reads each gene's protein beside its promoter and none were given: give a "
            "protein table (--proteins)"
        )


class EffectsWriter:
    """Scored blocks into the effects TSV (`table`) or, without one, rows kept in memory (`kept`, for a DataFrame),
    and into the annotated VCF (`annotated`): each row once, in VCF order."""

    def __init__(
        self,
        columns: list[str],
        members: int,
        member_columns: bool,
        outputs: int,
        table: AtomicFile | None = None,
        annotated: AnnotatedVcfWriter | None = None,
    ):
        self.members = members
        self.member_columns = member_columns
        self.outputs = outputs
        self.width = len(columns) - 9  # the prediction fields
        self.table = table
        self.annotated = annotated
        self.kept: list[list[Any]] | None = [] if table is None else None
        self.records = 0
        self.rows = 0
        if table is not None:
            table.handle.write("\t".join(columns) + "\n")

    def add(self, block: Block) -> None:
        for record, rows in block:
            fields = [row_fields(row, self.members, self.member_columns, self.width) for row in rows]
            if self.table is not None:
                self.table.handle.writelines(
                    "\t".join(check_id(format_field(value)) for value in line) + "\n" for line in fields
                )
            else:
                self.kept += fields
            if self.annotated is not None:
                self.annotated.write(record, [annotation(row, self.members, self.outputs) for row in rows])
            self.rows += len(rows)
        self.records += len(block)

    def commit(self) -> None:
        if self.annotated is not None:
            self.annotated.commit()
        if self.table is not None:
            self.table.commit()

    def discard(self) -> None:
        if self.table is not None:
            self.table.discard()
        if self.annotated is not None:
            self.annotated.discard()


def variant_effects(
    vcf: str | os.PathLike,
    models: str | Sequence[str] | Predictor,
    *,
    genome: str | os.PathLike,
    bed: str | os.PathLike | None = None,
    tss_table: str | os.PathLike | None = None,
    window: tuple[int, int] | None = XPRESSO_BEST_WINDOW,
    tss_index: int | None = None,
    output: str | os.PathLike | None = None,
    annotate_vcf: str | os.PathLike | None = None,
    features: Any = None,
    proteins: Any = None,
    fill_missing_features: bool = False,
    members: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    incremental: bool = True,
) -> RunSummary | pandas.DataFrame | None:
    """Predicted effects of the variants of a VCF on the expression of the genes whose promoter windows hold them.

    Args:
        vcf: a VCF file, plain or bgzip-compressed (a tabix index is not needed), or BCF.
        models: a model folder or Hub id (`org/name@revision`), a list of them (an ensemble), or a `Predictor`; the
            models read DNA (a DNAPerceiver, or a Protein&DNAPerceiver with `proteins`).
        genome: the reference genome FASTA (plain or bgzip) the VCF was called against.
        bed: promoter windows (chrom, start, end, gene_id, score, strand), e.g. Xpresso's 20 kb windows; or
        tss_table: a TSS table (gene_id, chrom, tss 1-based, strand), laid out as 20,000-base windows centred on it.
        window: (start, end) indices of each promoter window the model reads, as `predict --bed` (default 3000..13500,
            -7,000..+3,500 around Xpresso's TSS); None for the whole window.
        tss_index: the TSS's index in each promoter window (default: its centre, 10,000 for Xpresso's windows).
        output: a TSV to write (with `<output>.json`); None returns a `pandas.DataFrame`.
        annotate_vcf: also write the VCF back with an `EP_EFFECT` INFO field per record (`.vcf`, or `.vcf.gz` bgzip
            with a tabix index when the records are sorted).
        features: per-gene features by gene id (a table path, a `FeatureTable` or a mapping) for models that read
            them; fill_missing_features fills missing ones (else such rows get status `no_features`).
        proteins: proteins by gene id (a table path, `ProteinSource` or mapping) for a Protein&DNAPerceiver.
        members: add each ensemble member's delta.
        batch_size, device, dtype, overwrite, progress: as for `predict`.
        incremental: score SNVs and equal-length substitutions at the cost of what each changes
            (`model.score_substitutions`, the same numbers to float32 rounding) where that is exact; False runs
            every ALT window through the full forward pass. Indels always take the full pass.

    Returns:
        with `output`, a `RunSummary`; else a DataFrame with the TSV's columns (NaN where not scored).
    """
    output = Path(output) if output is not None else None
    annotate_vcf = Path(annotate_vcf) if annotate_vcf is not None else None
    files = [path for path in (output, annotate_vcf) if path is not None]
    if output is not None:
        files.append(sidecar_path(output))
    with InferenceRun("variant-effect", files, batch_size=batch_size, overwrite=overwrite, progress=progress) as run:
        promoter_windows, windows_name = read_windows(bed, tss_table)
        predictor = run.load(Predictor, models, device, dtype)
        if predictor.model_inputs.alphabet != "dna":
            raise DataError(f"variant effects need a model that reads DNA; a {predictor.model_type} reads protein")
        given = run.gene_inputs(features, proteins)
        check_gene_inputs(predictor, given, fill_missing_features)
        crop = tuple(window) if window is not None else None
        with VcfReader(vcf) as reader, Genome(genome) as reference:
            report = ReadReport(f"{reference.name} + {windows_name}")
            gene_list = model_windows(promoter_windows, reference, crop, tss_index, predictor, report)
            scorer = VariantScorer(
                predictor, reference, gene_list, given.features, given.protein_sequences(), fill_missing_features,
                batch_size, incremental,
            )  # fmt: skip
            count = len(predictor.members)
            columns = effect_columns(predictor.output_names, count, members)

            def open_writer(table: AtomicFile | None, annotate: bool) -> EffectsWriter:
                description = annotation_description(predictor.output_names, count, predictor.units)
                annotated = AnnotatedVcfWriter(reader, annotate_vcf, INFO_ID, ".", description) if annotate else None
                return EffectsWriter(columns, count, members, predictor.num_outputs, table, annotated)

            blocks = scored_blocks(reader, scorer, run.progress(None, "variant"))
            if output is None:  # a DataFrame on every process; an annotated VCF from rank 0 alone
                writer = run.collect(blocks, open_writer(None, annotate_vcf is not None and run.writes))
                return _frame(writer.kept, columns)
            writer = run.write(blocks, lambda: open_writer(AtomicFile(output), annotate_vcf is not None))
            if writer is None:
                return None
            record = run.record(
                {
                    "input": {
                        "vcf": str(vcf),
                        "genome": str(genome),
                        "promoters": str(bed if bed is not None else tss_table),
                        "promoters_kind": "bed" if bed is not None else "tss table",
                        "window": list(crop) if crop else None,
                        "tss_index": tss_index if tss_index is not None else "the centre of each promoter window",
                        "genes": len(gene_list),
                    },
                    "columns": columns,
                    "units": predictor.units,
                    "outputs": predictor.describe_outputs(),
                    "ensemble": {
                        "n": count,
                        "ref_pred, alt_pred, delta": "means over the models",
                        "delta_std": "sample standard deviation of the models' deltas (ddof=1)",
                    }
                    if count > 1
                    else None,
                    "indel_rule": INDEL_RULE,
                    "path": scorer.path
                    + (" for SNVs and equal-length substitutions" if scorer.path == INCREMENTAL else ""),
                    "statuses": STATUSES,
                    "counts": {
                        "records": writer.records,
                        "rows": writer.rows,
                        "status": dict(sorted(scorer.counts.items())),
                        **scorer.scored,
                        **{
                            key: value
                            for key, value in scorer.preparer.counts_dict().items()
                            if key == "features_filled"
                        },
                    },
                    "read_report": report_lines(report),
                    "features_source": given.feature_source or None,
                    "annotated_vcf": str(annotate_vcf) if annotate_vcf else None,
                },
                run_fields={"batch_size": batch_size},
                after={
                    **({"annotated_vcf_indexed": writer.annotated.indexed} if writer.annotated is not None else {}),
                    "wall_time_s": run.wall_time_s(),
                },
            )
        return run.finish(output, record, writer.rows)


def model_windows(
    promoter_windows: list,
    reference: Genome,
    crop: tuple[int, int] | None,
    tss_index: int | None,
    predictor: Predictor,
    report: ReadReport,
) -> list[GeneWindow]:
    """The model windows of the promoter windows found in the genome; each must fit the model."""
    selected = select_genome_windows(promoter_windows, reference, report)
    windows = gene_windows(selected, reference, crop, tss_index)
    longest = max(item.length for item in windows)
    if longest > predictor.model_inputs.max_length:
        raise DataError(
            f"the model windows have {longest:,} bases, the model reads at most {predictor.model_inputs.max_length:,}: "
            "choose a window (--window) that fits it"
        )
    return windows


def _frame(rows: list[list[Any]], columns: list[str]) -> pandas.DataFrame:
    import pandas

    frame = pandas.DataFrame(rows, columns=columns)
    for column in columns[8:-1]:
        frame[column] = pandas.to_numeric(frame[column], errors="coerce").astype(float)
    frame["tss_offset"] = frame["tss_offset"].astype("Int64")
    if "n_models" in frame:
        frame["n_models"] = frame["n_models"].astype("Int64")
    return frame


def summary_lines(summary: RunSummary) -> list[str]:
    """What the command prints: rows written, by status, and the files."""
    counts = summary.counts
    lines = [f"wrote {summary.output}: {summary.rows:,} rows for {counts['records']:,} VCF records"]
    statuses = ", ".join(f"{status} {number:,}" for status, number in counts["status"].items())
    lines.append(f"  status: {statuses}")
    lines.append(f"  scored {counts['reference_windows']:,} reference and {counts['alt_windows']:,} ALT windows")
    for line in summary.record.get("read_report", []):
        lines.append(f"  {line}")
    if summary.record.get("annotated_vcf"):
        lines.append(f"  annotated VCF: {summary.record['annotated_vcf']}")
    lines.append(f"  details: {summary.sidecar}")
    return lines


__all__ = ["INDEL_RULE", "STATUSES", "VariantScorer", "effect_columns", "variant_effects"]
