"""Statistics of a seeded masking study: per-setting summaries and comparisons with the reference setting.

Each setting (no masking, a random 3-base span masked, the first half removed, ...) is trained with several seeds,
giving one test metric value (r2) per seed. A setting is summarised by its mean, sample standard deviation and a
t-interval of the mean, and compared with the reference setting by Welch's t-test on all runs (robust to unequal
variances and to seeds missing on one side), by the paired t-test on the seeds both settings ran (a seed fixes the
initialisation and data order, so pairing removes that shared noise) and by Hedges' g. The Welch p-values of all
comparisons are Holm-corrected together, and so are the paired ones; significance is decided on the Holm-corrected
Welch p-value and written out as a verdict in words.

Two studies of the same settings (human and mouse labels, say) are compared setting by setting by the difference of
their effects against their own reference (`compare_effects`): a difference of two differences of means over four
independent groups of runs, with a Welch-Satterthwaite t-interval and test.

Every distribution and test comes from scipy. Degenerate inputs do not raise: fewer than two runs in a group, or no
variance in either group, give nan statistics and a verdict that says why no test was made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

_CONFIDENCE = 0.95  # level of every interval a Comparison reports
_NAN = float("nan")

# Spreads below this fraction of the values' magnitude are floating-point noise, not variance: scipy would turn them
# into huge t statistics and p-values near 0 for runs that are in fact identical.
_CONSTANT_TOLERANCE = 1e-12


@dataclass
class Summary:
    """Mean, sample standard deviation and t-interval of the mean of one setting's runs."""

    n: int
    mean: float
    std: float  # sample standard deviation, ddof=1 (nan when n < 2)
    ci_low: float  # t-interval of the mean, nan when n < 2
    ci_high: float

    def to_dict(self) -> dict:
        """Plain Python numbers, so the summary can be written as JSON."""
        return {key: _plain(value) for key, value in asdict(self).items()}


@dataclass
class Comparison:
    """One setting against the reference setting: difference of means, Welch and paired t-tests, Hedges' g."""

    setting: str
    reference: str
    n: int
    n_reference: int
    difference: float  # mean(setting) - mean(reference)
    difference_ci: tuple[float, float]  # Welch confidence interval of the difference
    welch_t: float
    welch_p: float
    paired_n: int  # seeds present in both
    paired_t: float | None  # None when paired_n < 2
    paired_p: float | None
    hedges_g: float
    welch_p_holm: float | None = None  # filled by adjust_comparisons
    paired_p_holm: float | None = None
    verdict: str = ""  # filled by adjust_comparisons

    def to_dict(self) -> dict:
        """Plain Python numbers (the interval as a list), so the comparison can be written as JSON."""
        return {key: _plain(value) for key, value in asdict(self).items()}


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summarise one setting's runs; the interval uses Student's t because a study has only a handful of seeds."""
    data = _as_array(values)
    n = int(data.size)
    if n == 0:
        return Summary(n=0, mean=_NAN, std=_NAN, ci_low=_NAN, ci_high=_NAN)
    mean = float(np.mean(data))
    if n < 2:
        return Summary(n=n, mean=mean, std=_NAN, ci_low=_NAN, ci_high=_NAN)
    std = float(np.std(data, ddof=1))
    ci_low, ci_high = _mean_interval(data, mean, std, confidence)
    return Summary(n=n, mean=mean, std=std, ci_low=ci_low, ci_high=ci_high)


def hedges_g(values: Sequence[float], reference: Sequence[float]) -> float:
    """Standardised difference of means, bias-corrected for small samples (Cohen's d overstates the effect there)."""
    data, ref = _as_array(values), _as_array(reference)
    n1, n2 = data.size, ref.size
    if n1 < 2 or n2 < 2 or (_is_constant(data) and _is_constant(ref)):
        return _NAN
    pooled_variance = ((n1 - 1) * np.var(data, ddof=1) + (n2 - 1) * np.var(ref, ddof=1)) / (n1 + n2 - 2)
    pooled_sd = math.sqrt(float(pooled_variance))
    if pooled_sd == 0:
        return _NAN
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((np.mean(data) - np.mean(ref)) / pooled_sd * correction)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjustment: controls the family-wise error across settings without assuming
    independence. Results are in the input order; nan entries stay nan and do not count as tests."""
    adjusted = [_NAN] * len(p_values)
    tested = sorted((float(p), index) for index, p in enumerate(p_values) if p is not None and not math.isnan(p))
    m = len(tested)
    running_max = 0.0
    for rank, (p, index) in enumerate(tested):
        running_max = max(running_max, min(1.0, (m - rank) * p))
        adjusted[index] = running_max
    return adjusted


def compare(
    setting: str, values: Mapping[int, float], reference: str, reference_values: Mapping[int, float]
) -> Comparison:
    """Compare one setting's runs (keyed by seed) with the reference setting's runs."""
    data = _as_array(list(values.values()))
    ref = _as_array(list(reference_values.values()))
    difference = float(np.mean(data) - np.mean(ref)) if data.size and ref.size else _NAN
    welch_t, welch_p, difference_ci = _welch(data, ref)
    paired_n, paired_t, paired_p = _paired(values, reference_values)
    return Comparison(
        setting=setting,
        reference=reference,
        n=int(data.size),
        n_reference=int(ref.size),
        difference=difference,
        difference_ci=difference_ci,
        welch_t=welch_t,
        welch_p=welch_p,
        paired_n=paired_n,
        paired_t=paired_t,
        paired_p=paired_p,
        hedges_g=hedges_g(data, ref),
    )


def adjust_comparisons(comparisons: list[Comparison], alpha: float = 0.05, metric: str = "r2") -> list[Comparison]:
    """Holm-correct the Welch and the paired p-values across all comparisons (each family separately) and write each
    comparison's verdict. Returns the same list, mutated, for chaining."""
    welch_holm = holm([comparison.welch_p for comparison in comparisons])
    paired_holm = holm([_nan_if_none(comparison.paired_p) for comparison in comparisons])
    for comparison, welch_adjusted, paired_adjusted in zip(comparisons, welch_holm, paired_holm, strict=True):
        comparison.welch_p_holm = welch_adjusted
        comparison.paired_p_holm = None if comparison.paired_p is None else paired_adjusted
        comparison.verdict = _verdict(comparison, alpha=alpha, metric=metric)
    return comparisons


def _verdict(comparison: Comparison, alpha: float = 0.05, metric: str = "r2") -> str:
    """The comparison in words; significance is the Holm-corrected Welch p-value below alpha."""
    c = comparison
    counts = f"n = {c.n} vs {c.n_reference}"
    if c.n < 2 or c.n_reference < 2:
        shift = f": {_signed(c.difference)} {metric}" if math.isfinite(c.difference) else ""
        return f"too few runs to test ({counts}){shift}"
    if math.isnan(c.welch_p):
        if c.difference == 0:
            return f"identical to {c.reference}: every run gave the same {metric}, no variance to test ({counts})"
        return (
            f"no variance within either setting, so no test ({counts}): "
            f"{_signed(c.difference)} {metric}, every run identical within its setting"
        )
    adjusted = c.welch_p if c.welch_p_holm is None else c.welch_p_holm
    interval = f"({round(_CONFIDENCE * 100)}% CI {_signed(c.difference_ci[0])} to {_signed(c.difference_ci[1])})"
    shift = f"{_signed(c.difference)} {metric} {interval}"
    if adjusted < alpha:
        direction = "higher than" if c.difference > 0 else "lower than"
        return (
            f"{direction} {c.reference}: {shift}, Hedges' g {c.hedges_g:.1f}, "
            f"Welch p = {_format_p(c.welch_p)} (Holm {_format_p(adjusted)})"
        )
    verdict = (
        f"no difference from {c.reference} detectable at {counts}: {shift}, "
        f"Holm-corrected Welch p = {_format_p(adjusted)}"
    )
    if c.paired_p_holm is not None and math.isfinite(c.paired_p_holm) and c.paired_p_holm < alpha:
        # Seeds fix initialisation and data order: the paired test can see a shift smaller than the seed spread.
        verdict += (
            f"; the paired test over {c.paired_n} matching seeds does find a consistent "
            f"{'gain' if c.difference > 0 else 'loss'} (Holm p = {_format_p(c.paired_p_holm)}), smaller than the "
            "spread between seeds"
        )
    return verdict


def _welch(data: np.ndarray, ref: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    """Welch's t-test and its interval of the difference; nan where it cannot run (n < 2, or no variance at all)."""
    if data.size < 2 or ref.size < 2 or (_is_constant(data) and _is_constant(ref)):
        return _NAN, _NAN, (_NAN, _NAN)
    result = stats.ttest_ind(data, ref, equal_var=False)
    interval = result.confidence_interval(confidence_level=_CONFIDENCE)
    return float(result.statistic), float(result.pvalue), (float(interval.low), float(interval.high))


def _paired(
    values: Mapping[int, float], reference_values: Mapping[int, float]
) -> tuple[int, float | None, float | None]:
    """Paired t-test over the seeds both settings ran; None when fewer than two seeds match, nan when the per-seed
    differences have no variance."""
    seeds = sorted(set(values) & set(reference_values))
    if len(seeds) < 2:
        return len(seeds), None, None
    data = _as_array([values[seed] for seed in seeds])
    ref = _as_array([reference_values[seed] for seed in seeds])
    if _is_constant(data - ref):
        return len(seeds), _NAN, _NAN
    result = stats.ttest_rel(data, ref)
    return len(seeds), float(result.statistic), float(result.pvalue)


def _mean_interval(data: np.ndarray, mean: float, std: float, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean; a point when the runs do not vary (scipy refuses a zero scale)."""
    if _is_constant(data):
        return mean, mean
    low, high = stats.t.interval(confidence, df=data.size - 1, loc=mean, scale=std / math.sqrt(data.size))
    return float(low), float(high)


def _is_constant(data: np.ndarray) -> bool:
    """Whether the values differ by no more than floating-point noise."""
    if data.size == 0:
        return True
    spread = float(np.max(data) - np.min(data))
    return spread <= _CONSTANT_TOLERANCE * max(1.0, float(np.max(np.abs(data))))


def _as_array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def _nan_if_none(value: float | None) -> float:
    return _NAN if value is None else value


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _format_p(p: float) -> str:
    """Two significant digits; scientific notation below 0.001 so small p-values stay readable."""
    return f"{p:.1e}" if p < 0.001 else f"{p:.2g}"


def _plain(value: Any) -> Any:
    """numpy scalars to Python numbers, tuples to lists: what json.dumps accepts."""
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


@dataclass
class EffectComparison:
    """Whether one setting's effect against the reference differs between two studies A and B."""

    setting: str
    effect_a: float  # mean(setting) - mean(reference) in study A
    effect_b: float
    difference: float  # effect_b - effect_a
    difference_ci: tuple[float, float]  # Welch-Satterthwaite t-interval of the difference
    p: float  # two-sided test of no difference
    degrees_of_freedom: float
    p_holm: float | None = None  # filled by holm() over the settings compared

    def to_dict(self) -> dict:
        """Plain Python numbers (the interval as a list), so the comparison can be written as JSON."""
        return {key: _plain(value) for key, value in asdict(self).items()}


def compare_effects(
    setting: str,
    values_a: Sequence[float],
    reference_a: Sequence[float],
    values_b: Sequence[float],
    reference_b: Sequence[float],
) -> EffectComparison:
    """(mean(values_b) - mean(reference_b)) - (mean(values_a) - mean(reference_a)), the four groups taken as
    independent runs: its standard error is the root of the sum of each group's variance of the mean, its degrees of
    freedom Welch-Satterthwaite's. nan statistics when a group has fewer than two runs or no group varies."""
    groups = [_as_array(list(group)) for group in (values_a, reference_a, values_b, reference_b)]
    means = [float(np.mean(group)) if group.size else _NAN for group in groups]
    effect_a, effect_b = means[0] - means[1], means[2] - means[3]
    difference = effect_b - effect_a
    if any(group.size < 2 for group in groups) or all(_is_constant(group) for group in groups):
        return EffectComparison(setting, effect_a, effect_b, difference, (_NAN, _NAN), _NAN, _NAN)
    parts = [float(np.var(group, ddof=1)) / group.size for group in groups]
    standard_error = math.sqrt(sum(parts))
    degrees = sum(parts) ** 2 / sum(part**2 / (group.size - 1) for part, group in zip(parts, groups, strict=True))
    half_width = float(stats.t.ppf(0.5 + _CONFIDENCE / 2, degrees)) * standard_error
    p = float(2 * stats.t.sf(abs(difference) / standard_error, degrees))
    return EffectComparison(
        setting, effect_a, effect_b, difference, (difference - half_width, difference + half_width), p, degrees
    )
