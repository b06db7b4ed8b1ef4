"""Motifs: which sequence patterns the model's attributions pick out, what known motifs they resemble and where
relative to the TSS they sit.

- `discover_motifs` runs TF-MoDISco-lite on an attribution file's one-hot sequences and hypothetical contributions,
  matches each pattern against a motif database (`data.motifs.motif_database`: a MEME file or, by default, JASPAR
  CORE vertebrates) with TOMTOM (memelite) and writes a report folder: `motifs.tsv`, `patterns.meme`, a logo and a
  position histogram per pattern, `report.md`, `report.html` and `modisco_results.h5` (readable by `modisco report`).

Reading and writing motif databases and scanning a sequence with them (`annotate_sequence`) live in `data.motifs`.

TOMTOM q-values are Benjamini-Hochberg adjusted p-values over all of the database's motifs, for each pattern
separately, as MEME's tomtom computes them (memelite returns p-values only). Patterns are trimmed as modiscolite's
report trims them: to the positions whose summed |contribution| reaches 30% of the pattern's largest.
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.atomic import AtomicFile
from ..data.errors import DataError
from ..data.motifs import (
    LETTERS,
    Motif,
    MotifDatabase,
    motif_database,
    package_version,
    write_meme,
)
from ..inference.attribution_files import AttributionFile
from .profiles import is_dna

TRIM_THRESHOLD = 0.3  # modiscolite's report: positions reaching 30% of the largest summed |contribution|
LOGO_FLANK = 4  # positions modiscolite's report shows either side of the trimmed pattern
DIFFUSE_SHARE = 0.8  # a trimmed pattern wider than this share of its untrimmed width has no core
HISTOGRAM_BINS = 40


@dataclass(frozen=True)
class MotifMatch:
    """A database motif TOMTOM found similar to a pattern."""

    id: str
    name: str
    p_value: float
    q_value: float
    strand: str  # "-": the pattern matches the motif's reverse complement
    offset: int


@dataclass
class PatternSummary:
    """One MoDISco pattern: its seqlets, trimmed matrices, matches and where its seqlets sit."""

    name: str  # pos_0, neg_1, ...
    sign: str  # positive or negative
    seqlets: int
    cwm: np.ndarray  # (width, 4) contribution weight matrix, trimmed
    ppm: np.ndarray  # (width, 4) letter frequencies, trimmed
    logo_cwm: np.ndarray  # the contribution matrix with modiscolite's report's flanks, for the logo
    positions: np.ndarray  # each seqlet's motif centre, in the file's positions
    reverse_share: float  # share of seqlets on the reverse strand
    matches: list[MotifMatch] = field(default_factory=list)
    untrimmed_width: int = 0  # the pattern's width before trimming

    @property
    def diffuse(self) -> bool:
        """No core: trimming kept most of the pattern (contribution spread evenly over it, as noise spreads it). Such
        a pattern is not matched: a long, flat matrix finds spuriously small TOMTOM p-values against long motifs."""
        return self.untrimmed_width > 0 and len(self.cwm) > DIFFUSE_SHARE * self.untrimmed_width

    @property
    def consensus(self) -> str:
        return "".join(LETTERS[index] for index in self.ppm.argmax(1))

    def position_quartiles(self) -> tuple[float, float, float]:
        """First quartile, median and third quartile of the seqlets' centres."""
        if len(self.positions) == 0:
            return (float("nan"),) * 3
        low, median, high = np.percentile(self.positions, [25, 50, 75])
        return float(low), float(median), float(high)


@dataclass
class MotifReport:
    """What `discover_motifs` found and wrote."""

    output_dir: Path
    patterns: list[PatternSummary]
    source: str
    database: str
    seqlets: dict[str, int]  # seqlets in the positive and negative patterns
    sequences: int
    window: tuple[int, int]  # first and last position read
    seconds: float  # MoDISco's wall time
    files: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """What was found, one line per pattern, and where it was written."""
        signs = {sign: sum(p.sign == sign for p in self.patterns) for sign in ("positive", "negative")}
        lines = [
            f"MoDISco: {len(self.patterns)} patterns ({signs['positive']} positive, {signs['negative']} negative) "
            f"from {self.sequences:,} sequences in {self.seconds:.1f} s"
        ]
        for pattern in self.patterns:
            low, median, high = pattern.position_quartiles()
            best = pattern.matches[0] if pattern.matches else None
            match = f"{best.id} {best.name} (q {number(best.q_value)})" if best else "no match"
            if pattern.diffuse:
                match = "diffuse (no core), not matched"
            lines.append(
                f"  {pattern.name}: {pattern.seqlets:,} seqlets, {pattern.consensus}, {match}, "
                f"median position {number(median)} ({number(low)}..{number(high)})"
            )
        lines.append(f"  wrote {self.output_dir}/ ({', '.join(name for name in self.files if '/' not in name)})")
        return lines


# --- Motif discovery -----------------------------------------------------------------------------------------------


def discover_motifs(
    file: AttributionFile,
    output_dir: str | Path,
    motif_db: MotifDatabase | str | Path | None = None,
    max_seqlets: int = 2000,
    window: tuple[int, int] | None = None,
    top_matches: int = 3,
    seed: int = 0,
    max_sequences: int | None = None,
    overwrite: bool = False,
    **modisco_options: Any,
) -> MotifReport:
    """TF-MoDISco-lite on the file's one-hot sequences and hypothetical contributions (DNA only), each pattern matched
    against `motif_db` (a `MotifDatabase`, a MEME file, or None: JASPAR CORE vertebrates) and placed along the
    window; the report folder `output_dir` appears whole or not at all.

    `window` (first, last + 1), in the file's positions (relative to the TSS when its origin is `tss`), limits the
    positions read; `max_seqlets` caps each sign's seqlets (MoDISco's `max_seqlets_per_metacluster`);
    `max_sequences` draws that many sequences at random (`seed`; MoDISco itself is deterministic);
    `modisco_options` go to `modiscolite.tfmodisco.TFMoDISco` (e.g. `sliding_window_size`, `n_leiden_runs`)."""
    from ..data.dataset_dict import atomic_output_dir

    check_dna(file)
    database = motif_db if isinstance(motif_db, MotifDatabase) else motif_database(motif_db)
    columns = window_columns(file, window)
    options = {"max_seqlets_per_metacluster": max_seqlets, **modisco_options}
    check_width(file, columns, options)
    rows = chosen_sequences(len(file), max_sequences, seed)
    one_hot, hypothetical = modisco_inputs(file, rows, columns)
    started = time.perf_counter()
    positive, negative = run_modisco(one_hot, hypothetical, options)
    seconds = time.perf_counter() - started
    positions = np.asarray(file.positions(), dtype=np.float64)[columns]
    patterns = summarise_patterns(positive, negative, positions)
    match_patterns(patterns, database, top_matches)
    report = MotifReport(
        output_dir=Path(output_dir),
        patterns=patterns,
        source=str(file.path),
        database=database.statement(),
        seqlets={sign: sum(p.seqlets for p in patterns if p.sign == sign) for sign in ("positive", "negative")},
        sequences=len(rows),
        window=(int(positions[0]), int(positions[-1])),
        seconds=seconds,
        settings={
            **{key: jsonable(value) for key, value in options.items()},
            "top_matches": top_matches,
            **({"max_sequences": max_sequences, "seed": seed} if max_sequences is not None else {}),
        },
    )
    with atomic_output_dir(output_dir, overwrite=overwrite) as folder:
        save_modisco(folder / "modisco_results.h5", positive, negative, options.get("sliding_window_size", 21))
        report.files = write_report(folder, report, file, database)
    return report


def check_dna(file: AttributionFile) -> None:
    if not is_dna(file.letters) or len(set(file.letters)) != len(file.letters):
        letters = file.letters
        raise DataError(f"{file.path}: MoDISco needs 4-letter DNA attributions (A, C, G, T), not letters {letters!r}")
    for member in ("one_hot", "hypothetical"):
        if not file.has(member):
            raise DataError(f"{file.path}: holds no {member!r}, which MoDISco reads (method {file.method})")


def window_columns(file: AttributionFile, window: tuple[int, int] | None) -> slice:
    """The columns of the positions in [first, last) (all columns without a window)."""
    positions = np.asarray(file.positions())
    if window is None:
        return slice(0, len(positions))
    inside = np.flatnonzero((positions >= window[0]) & (positions < window[1]))
    if len(inside) == 0:
        span = f"{positions.min()}..{positions.max()}"
        raise DataError(f"{file.path}: no position in the window [{window[0]}, {window[1]}) (positions {span})")
    return slice(int(inside[0]), int(inside[-1]) + 1)


def chosen_sequences(count: int, limit: int | None, seed: int) -> np.ndarray:
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def modisco_inputs(file: AttributionFile, rows: np.ndarray, columns: slice) -> tuple[np.ndarray, np.ndarray]:
    """(sequences, positions, 4) float32 one-hot and hypothetical contributions, letters in ACGT order; sequences
    shorter than the window are padded with zeros (no letter, no contribution)."""
    letters = [file.letters.upper().index(letter) for letter in LETTERS]
    width = columns.stop - columns.start
    arrays = []
    for member in ("one_hot", "hypothetical"):
        values = np.zeros((len(rows), width, 4), dtype=np.float32)
        if file.uniform:
            stored = file.array(member)
            for first in range(0, len(rows), 1024):  # bounded reads of the memory map
                chosen = rows[first : first + 1024]
                values[first : first + len(chosen)] = stored[chosen, columns][:, :, letters]
        else:
            wanted = set(rows.tolist())
            target = 0
            for index, sequence in enumerate(file.sequences(member)):
                if index in wanted:
                    part = np.asarray(sequence[columns])[:, letters]
                    values[target, : len(part)] = part
                    target += 1
        arrays.append(values)
    return arrays[0], arrays[1]


def check_width(file: AttributionFile, columns: slice, options: dict[str, Any]) -> None:
    seqlet = options.get("sliding_window_size", 21) + 2 * options.get("flank_size", 10)
    if columns.stop - columns.start <= seqlet:
        width = columns.stop - columns.start
        raise DataError(f"{file.path}: MoDISco needs windows longer than its seqlets ({seqlet} positions), not {width}")


def run_modisco(one_hot: np.ndarray, hypothetical: np.ndarray, options: dict[str, Any]) -> tuple[list, list]:
    from modiscolite.tfmodisco import TFMoDISco

    positive, negative = TFMoDISco(one_hot=one_hot, hypothetical_contribs=hypothetical, **options)
    return list(positive or []), list(negative or [])


def trim_bounds(cwm: np.ndarray, threshold: float = TRIM_THRESHOLD) -> tuple[int, int]:
    """[start, stop) of the positions between the first and last whose summed |contribution| reaches `threshold`
    of the largest (modiscolite's report's trimming)."""
    score = np.abs(cwm).sum(1)
    passing = np.flatnonzero(score >= score.max() * threshold)
    return int(passing[0]), int(passing[-1]) + 1


def summarise_patterns(positive: list, negative: list, positions: np.ndarray) -> list[PatternSummary]:
    summaries = []
    for prefix, sign, patterns in (("pos", "positive", positive), ("neg", "negative", negative)):
        for index, pattern in enumerate(patterns):
            summaries.append(summarise_pattern(f"{prefix}_{index}", sign, pattern, positions))
    return summaries


def summarise_pattern(name: str, sign: str, pattern, positions: np.ndarray) -> PatternSummary:
    cwm = np.asarray(pattern.contrib_scores, dtype=np.float64)
    ppm = np.asarray(pattern.sequence, dtype=np.float64)
    start, stop = trim_bounds(cwm)
    logo = cwm[max(start - LOGO_FLANK, 0) : stop + LOGO_FLANK]
    centres = seqlet_centres(pattern.seqlets, start, stop, len(positions))
    reverse = np.array([bool(seqlet.is_revcomp) for seqlet in pattern.seqlets])
    return PatternSummary(
        name=name,
        sign=sign,
        seqlets=len(pattern.seqlets),
        cwm=cwm[start:stop],
        ppm=ppm[start:stop],
        logo_cwm=logo,
        positions=np.interp(centres, np.arange(len(positions)), positions),
        reverse_share=float(reverse.mean()) if len(reverse) else float("nan"),
        untrimmed_width=len(cwm),
    )


def seqlet_centres(seqlets: list, start: int, stop: int, width: int) -> np.ndarray:
    """Each seqlet's trimmed core's centre, in window columns (a reverse-strand seqlet's core is mirrored)."""
    begin = np.array([seqlet.start for seqlet in seqlets], dtype=np.float64)
    end = np.array([seqlet.end for seqlet in seqlets], dtype=np.float64)
    reverse = np.array([bool(seqlet.is_revcomp) for seqlet in seqlets])
    core_middle = (start + stop - 1) / 2
    centres = np.where(reverse, end - 1 - core_middle, begin + core_middle)
    return np.clip(centres, 0, width - 1)


def match_patterns(patterns: list[PatternSummary], database: MotifDatabase, top: int) -> None:
    """Each pattern's `top` best TOMTOM matches (smallest p) with Benjamini-Hochberg q-values over the database."""
    if not patterns or top <= 0 or len(database) == 0:
        return
    from memelite import tomtom

    patterns = [pattern for pattern in patterns if not pattern.diffuse]
    if not patterns:
        return
    queries = [np.asfortranarray(pattern.ppm.T) for pattern in patterns]
    targets = [motif.pwm for motif in database]
    p_values, _scores, offsets, _overlaps, strands = tomtom(queries, targets)
    for pattern, p_row, offset_row, strand_row in zip(patterns, p_values, offsets, strands, strict=True):
        q_row = benjamini_hochberg(p_row)
        for target in np.argsort(p_row, kind="stable")[:top]:
            motif = database.motifs[int(target)]
            strand = "-" if strand_row[target] else "+"
            match = MotifMatch(motif.id, motif.name, float(p_row[target]), float(q_row[target]), strand,
                               int(offset_row[target]))  # fmt: skip
            pattern.matches.append(match)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """q-values: each p-value's Benjamini-Hochberg adjusted value (the smallest FDR at which it is significant)."""
    p_values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p_values)
    ranked = p_values[order] * len(p_values) / np.arange(1, len(p_values) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    q_values = np.empty_like(adjusted)
    q_values[order] = np.minimum(adjusted, 1.0)
    return q_values


def save_modisco(path: Path, positive: list, negative: list, window_size: int) -> None:
    """The patterns in modiscolite's HDF5 layout (`modiscolite.io.save_hdf5`'s, with the file closed)."""
    import h5py
    from modiscolite.io import save_pattern

    with h5py.File(path, "w") as results:
        results.attrs["window_size"] = window_size
        for group, patterns in (("pos_patterns", positive), ("neg_patterns", negative)):
            if patterns:
                folder = results.create_group(group)
                for index, pattern in enumerate(patterns):
                    save_pattern(pattern, folder.create_group(f"pattern_{index}"))


# --- Report --------------------------------------------------------------------------------------------------------


def write_report(folder: Path, report: MotifReport, file: AttributionFile, database: MotifDatabase) -> list[str]:
    """Every file of the report folder; returns their names."""
    files = ["modisco_results.h5"]
    write_patterns_tsv(folder / "motifs.tsv", report.patterns, report_top(report))
    write_meme(folder / "patterns.meme", [pattern_motif(pattern) for pattern in report.patterns])
    files += ["motifs.tsv", "patterns.meme"]
    motifs_by_id = {motif.id: motif for motif in database}
    for pattern in report.patterns:
        best = motifs_by_id.get(pattern.matches[0].id) if pattern.matches else None
        plot_logo(folder / "logos" / f"{pattern.name}.png", pattern, best)
        plot_positions(folder / "positions" / f"{pattern.name}.png", pattern, file.origin, report.window)
        files += [f"logos/{pattern.name}.png", f"positions/{pattern.name}.png"]
    markdown, page = report_documents(report, file, database)
    write_text(folder / "report.md", markdown)
    write_text(folder / "report.html", page)
    return files + ["report.md", "report.html"]


def report_top(report: MotifReport) -> int:
    return int(report.settings.get("top_matches", 3))


def pattern_motif(pattern: PatternSummary) -> Motif:
    return Motif(pattern.name, f"{pattern.sign}_{pattern.consensus}", pattern.ppm.T, pattern.seqlets)


def write_text(path: Path, text: str) -> None:
    with AtomicFile(path) as target:
        target.handle.write(text)
        target.commit()


def number(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "NA"
    return f"{value:.{digits}g}"


def write_patterns_tsv(path: Path, patterns: list[PatternSummary], top: int) -> None:
    header = ["pattern", "sign", "seqlets", "width", "core", "consensus"]
    for rank in range(1, top + 1):
        header += [f"match{rank}", f"match{rank}_name", f"match{rank}_p", f"match{rank}_q", f"match{rank}_strand"]
    header += ["position_q1", "position_median", "position_q3", "reverse_strand_share"]
    lines = ["\t".join(header)]
    for pattern in patterns:
        core = "diffuse" if pattern.diffuse else "yes"
        row = [pattern.name, pattern.sign, str(pattern.seqlets), str(len(pattern.ppm)), core, pattern.consensus]
        for rank in range(top):
            if rank < len(pattern.matches):
                match = pattern.matches[rank]
                row += [match.id, match.name, number(match.p_value, 6), number(match.q_value, 6), match.strand]
            else:
                row += ["NA"] * 5
        row += [number(value, 6) for value in pattern.position_quartiles()]
        row.append(number(pattern.reverse_share, 6))
        lines.append("\t".join(row))
    write_text(path, "\n".join(lines) + "\n")


def information_logo(pwm: np.ndarray) -> np.ndarray:
    """(width, 4) letter heights: probability x information content (bits, uniform background)."""
    probabilities = pwm.T
    entropy = -(probabilities * np.log2(np.clip(probabilities, 1e-9, 1))).sum(1, keepdims=True)
    return probabilities * (2 - entropy)


def plot_logo(path: Path, pattern: PatternSummary, best: Motif | None) -> None:
    """The pattern's contribution logo and, beside it, its best match's information logo on the matching strand."""
    import logomaker
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = 2 if best is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 2.2), layout="constrained", squeeze=False)
    draw_logo(logomaker, pd, axes[0, 0], pattern.logo_cwm, f"{pattern.name} ({pattern.seqlets} seqlets)")
    axes[0, 0].set_ylabel("contribution")
    if best is not None:
        match = pattern.matches[0]
        pwm = best.pwm[::-1, ::-1] if match.strand == "-" else best.pwm
        strand = ", reverse complement" if match.strand == "-" else ""
        draw_logo(logomaker, pd, axes[0, 1], information_logo(pwm), f"{best.label}{strand} (q {number(match.q_value)})")
        axes[0, 1].set_ylabel("bits")
    save_figure(figure, path)


def draw_logo(logomaker, pd, axis, matrix: np.ndarray, title: str) -> None:
    frame = pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=list(LETTERS))
    logo = logomaker.Logo(frame, ax=axis)
    logo.style_spines(visible=False)
    axis.set_xticks([])
    axis.set_title(title, fontsize=8)


def plot_positions(path: Path, pattern: PatternSummary, origin: str, window: tuple[int, int]) -> None:
    """A histogram of the seqlets' centres along the window, the TSS marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 2.2), layout="constrained")
    bins = np.linspace(window[0], window[1] + 1, min(HISTOGRAM_BINS, window[1] - window[0] + 1) + 1)
    axis.hist(pattern.positions, bins=bins, color="#1f4e79" if pattern.sign == "positive" else "#8c2d04")
    if origin == "tss" and window[0] <= 0 <= window[1]:
        axis.axvline(0, color="black", linewidth=0.8, linestyle="--")
    axis.set_xlim(window[0], window[1] + 1)
    axis.set_xlabel("seqlet centre, position relative to the TSS" if origin == "tss" else "seqlet centre, position")
    axis.set_ylabel("seqlets")
    low, median, high = pattern.position_quartiles()
    axis.set_title(f"{pattern.name}: median {number(median)}, quartiles {number(low)}..{number(high)}", fontsize=8)
    save_figure(figure, path)


def save_figure(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path, "wb") as target:
        target.handle.write(buffer.getvalue())
        target.commit()


def method_lines(report: MotifReport, file: AttributionFile) -> list[str]:
    """The input and the method, as sentences shared by both report formats."""
    where = "relative to the TSS" if file.origin == "tss" else "from the sequence start"
    settings = ", ".join(f"{key}={value}" for key, value in report.settings.items())
    return [
        f"Input: {file.path} (attribution method {file.method}; {report.sequences:,} sequences, positions "
        f"{report.window[0]}..{report.window[1]} {where}).",
        f"Method: TF-MoDISco-lite {package_version('modisco-lite')} (`TFMoDISco` on the one-hot sequences and "
        f"hypothetical contributions; {settings}), {report.seconds:.1f} s; seqlets in patterns: "
        f"{report.seqlets['positive']:,} positive, {report.seqlets['negative']:,} negative.",
        f"Matches: TOMTOM (memelite {package_version('memelite')}) of each pattern's letter frequencies, trimmed to "
        f"the positions whose summed |contribution| reaches {TRIM_THRESHOLD:.0%} of the largest (modiscolite's "
        "report's trimming); q-values: Benjamini-Hochberg over all of the database's motifs, per pattern.",
        "Positions: each seqlet's trimmed core's centre. Reverse: the share of seqlets on the reverse strand.",
    ]


def pattern_rows(report: MotifReport) -> list[list[str]]:
    rows = []
    for pattern in report.patterns:
        low, median, high = pattern.position_quartiles()
        best = pattern.matches[0] if pattern.matches else None
        match = f"{best.id} {best.name} ({best.strand})" if best else "none"
        others = ", ".join(f"{m.id} {m.name}" for m in pattern.matches[1:]) or "-"
        rows.append([
            pattern.name, pattern.sign, str(pattern.seqlets), pattern.consensus, match,
            number(best.p_value) if best else "NA", number(best.q_value) if best else "NA", others,
            f"{number(median)} ({number(low)}..{number(high)})", number(pattern.reverse_share, 2),
        ])  # fmt: skip
    return rows


REPORT_COLUMNS = ["pattern", "sign", "seqlets", "consensus", "best match", "p", "q", "next matches",
                  "median position (quartiles)", "reverse"]  # fmt: skip


def report_documents(report: MotifReport, file: AttributionFile, database: MotifDatabase) -> tuple[str, str]:
    """`report.md` and `report.html`: the same one page, images linked."""
    title = f"Motifs in {Path(report.source).name}"
    lines = method_lines(report, file) + [f"Database: {database.statement()}."]
    rows = pattern_rows(report)
    markdown = [f"# {title}", "", *[f"{line}  " for line in lines], ""]
    markdown += ["| " + " | ".join(REPORT_COLUMNS) + " |", "|" + "---|" * len(REPORT_COLUMNS)]
    markdown += ["| " + " | ".join(row) + " |" for row in rows]
    if not rows:
        markdown.append("\nMoDISco found no pattern.")
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"]
    page += [f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(line)}</p>" for line in lines]]
    page += ["<table border='1' cellspacing='0' cellpadding='3'><tr>"]
    page += ["".join(f"<th>{html.escape(column)}</th>" for column in REPORT_COLUMNS) + "</tr>"]
    page += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    page.append("</table>" + ("" if rows else "<p>MoDISco found no pattern.</p>"))
    for pattern in report.patterns:
        logo, positions = f"logos/{pattern.name}.png", f"positions/{pattern.name}.png"
        images = f"![{pattern.name} logo]({logo}) ![{pattern.name} positions]({positions})"
        markdown += ["", f"## {pattern.name}", "", images]
        page += [f"<h2>{pattern.name}</h2>", f"<img src='{logo}' height='200'> <img src='{positions}' height='200'>"]
    page.append("</body></html>")
    return "\n".join(markdown) + "\n", "\n".join(page) + "\n"


def jsonable(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


__all__ = ["MotifMatch", "MotifReport", "PatternSummary", "discover_motifs"]
