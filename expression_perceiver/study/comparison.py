"""Two studies of the same settings side by side: Table 1's rows of each (human and mouse labels, two molecules, two
recipes) and the Figure 1 points that are not also Table 1 rows, and for every setting whether its effect against the
reference differs between them (`statistics.compare_effects`, Holm-corrected across all the settings compared)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..data.atomic import write_json
from ..data_collators import MaskingSettings
from .report import finished_cells, fmt, fmt_p
from .spec import Study, load_study_dir, mask_size
from .statistics import EffectComparison, compare_effects, holm, summarize


def setting_values(study: Study) -> dict[str, list[float]]:
    """Test r2 of every finished cell of each Table 1 setting, by setting name, then of each Figure 1 point that is
    not a Table 1 setting (named by its curve and size: `random_span (mask), 12 positions`)."""
    finished, _ = finished_cells(study)
    values = {setting.name: [result.r2 for result in finished.get(setting.masking, [])] for setting in study.table}
    in_table = {setting.masking for setting in study.table}
    for curve in study.figure:
        for masking in curve.maskings:
            if masking not in in_table:
                values[f"{curve.label}, {point_size(masking)}"] = [r.r2 for r in finished.get(masking, [])]
    return values


def point_size(masking: MaskingSettings) -> str:
    if masking.mask_fraction is not None:
        return f"{100 * masking.mask_fraction:g}% of length"
    return f"{mask_size(masking):g} positions"


def compare_studies(directory_a: str | Path, directory_b: str | Path) -> dict[str, Any]:
    """Each setting (Table 1 row or Figure 1 point) the two studies share: both summaries and the difference of its
    effects (B - A)."""
    study_a, study_b = load_study_dir(Path(directory_a)), load_study_dir(Path(directory_b))
    if study_a.reference != study_b.reference:
        raise ValueError(
            f"{directory_b}: reference setting {study_b.reference!r} differs from {directory_a}'s "
            f"{study_a.reference!r}; effects against different references are not comparable"
        )
    values_a, values_b = setting_values(study_a), setting_values(study_b)
    # A setting is compared where both studies have finished cells of it; the rest are named, not tabulated.
    shared = [name for name in values_a if values_a[name] and values_b.get(name)]
    not_compared = {
        "no finished cells in A": [name for name in values_b if values_b[name] and not values_a.get(name)],
        "no finished cells in B": [name for name in values_a if values_a[name] and not values_b.get(name)],
    }
    reference = study_a.reference
    for directory, values in ((directory_a, values_a), (directory_b, values_b)):
        if len(values.get(reference, [])) < 2:
            raise ValueError(f"{directory}: fewer than 2 finished cells of the reference setting {reference!r}")
    effects: list[EffectComparison] = [
        compare_effects(name, values_a[name], values_a[reference], values_b[name], values_b[reference])
        for name in shared
        if name != reference
    ]
    for effect, adjusted in zip(effects, holm([effect.p for effect in effects]), strict=True):
        effect.p_holm = adjusted
    return {
        "a": {"study": study_a.name, "folder": str(directory_a)},
        "b": {"study": study_b.name, "folder": str(directory_b)},
        "reference": reference,
        "settings": [
            {"setting": name, "a": summarize(values_a[name]).to_dict(), "b": summarize(values_b[name]).to_dict()}
            for name in shared
        ],
        "effects": [effect.to_dict() for effect in effects],
        "not_compared": {why: names for why, names in not_compared.items() if names},
    }


def comparison_markdown(comparison: dict[str, Any]) -> str:
    a, b, reference = comparison["a"]["study"], comparison["b"]["study"], comparison["reference"]
    lines = [
        f"# {a} and {b}, side by side",
        "",
        f"Test r2 (mean +- sample std over seeds) of each setting in A = `{a}` and B = `{b}`; effect = mean(setting) - "
        f"mean({reference}) within a study; B - A = the difference of the two effects, with a Welch-Satterthwaite "
        "95% t-interval over the four groups of runs and its two-sided p, Holm-corrected across the settings (Table 1 "
        "rows, then the Figure 1 points that are not Table 1 rows).",
        "",
        "| setting | n (A, B) | A: test r2 | B: test r2 | effect in A | effect in B | B - A | 95% CI | p (Holm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    effects = {effect["setting"]: effect for effect in comparison["effects"]}
    for row in comparison["settings"]:
        sa, sb = row["a"], row["b"]
        cells = [row["setting"], f"{sa['n']}, {sb['n']}", f"{fmt(sa['mean'])} +- {fmt(sa['std'])}"]
        cells.append(f"{fmt(sb['mean'])} +- {fmt(sb['std'])}")
        effect = effects.get(row["setting"])
        if effect is None:
            cells += ["", "", "", "", ""]
        else:
            low, high = effect["difference_ci"]
            interval = f"{low:+.4f} to {high:+.4f}" if math.isfinite(low) else ""
            cells += [f"{effect['effect_a']:+.4f}", f"{effect['effect_b']:+.4f}", f"{effect['difference']:+.4f}"]
            cells += [interval, f"{fmt_p(effect['p'])} ({fmt_p(effect['p_holm'])})"]
        lines.append("| " + " | ".join(cells) + " |")
    for why, names in comparison.get("not_compared", {}).items():
        lines += ["", f"Not compared ({why}): {'; '.join(names)}."]
    lines += ["", "Verdicts (Holm-corrected p < 0.05 decides):", ""]
    for effect in comparison["effects"]:
        low, high = effect["difference_ci"]
        if not math.isfinite(effect["p"]):
            lines.append(f"- **{effect['setting']}**: too few runs, or none varies, to test")
            continue
        differs = effect["p_holm"] < 0.05
        words = "differs between the studies" if differs else "no difference between the studies detectable"
        effects_text = f"effect {effect['effect_a']:+.3f} in A, {effect['effect_b']:+.3f} in B"
        lines.append(
            f"- **{effect['setting']}**: {words}: {effects_text}, B - A {effect['difference']:+.3f} "
            f"(95% CI {low:+.3f} to {high:+.3f}), Holm p = {fmt_p(effect['p_holm'])}"
        )
    return "\n".join(lines) + "\n"


def write_comparison(directory_a: str | Path, directory_b: str | Path, output: str | Path) -> dict[str, Any]:
    """The comparison as `output` (Markdown) and the same numbers beside it as JSON (`output` with `.json`)."""
    comparison = compare_studies(directory_a, directory_b)
    output = Path(output)
    output.write_text(comparison_markdown(comparison))
    write_json(output.with_suffix(".json"), comparison)
    return comparison
