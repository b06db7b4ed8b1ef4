"""Masking-study statistics against scipy, a textbook Holm example and hand-computed Hedges' g; verdict wording."""

import json
import math
import statistics as stdlib_statistics

import numpy as np
import pytest
from scipy import stats

from expression_perceiver.study.statistics import (
    Comparison,
    Summary,
    adjust_comparisons,
    compare,
    hedges_g,
    holm,
    summarize,
)

# Degenerate inputs must be handled before scipy sees them, so any warning it raises is a failure.
pytestmark = pytest.mark.filterwarnings("error")

REFERENCE = {0: 0.300, 1: 0.305, 2: 0.298, 3: 0.302, 4: 0.301}
HIGHER = {0: 0.320, 1: 0.318, 2: 0.322, 3: 0.319, 4: 0.321}
OVERLAPPING = {0: 0.303, 1: 0.296, 2: 0.304, 3: 0.299, 4: 0.301}


def _assert_plain(record: dict) -> None:
    """Every value is a plain Python type (numpy scalars subclass float, so check the exact type) and JSON-safe."""
    for key, value in record.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            assert type(item) in (int, float, str, type(None)), (key, type(item))
    json.dumps(record)


# summarize


def test_summarize_matches_scipy_t_interval():
    values = [0.31, 0.29, 0.33, 0.30, 0.32, 0.28]
    summary = summarize(values)
    mean, sem = np.mean(values), stats.sem(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert summary.n == 6
    assert summary.mean == pytest.approx(stdlib_statistics.mean(values))
    assert summary.std == pytest.approx(stdlib_statistics.stdev(values))  # ddof=1
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high))
    assert summary.ci_low < summary.mean < summary.ci_high


def test_summarize_honours_confidence():
    values = [0.31, 0.29, 0.33, 0.30]
    narrow, wide = summarize(values, confidence=0.80), summarize(values, confidence=0.99)
    low, high = stats.t.interval(0.80, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (narrow.ci_low, narrow.ci_high) == pytest.approx((low, high))
    assert wide.ci_low < narrow.ci_low and wide.ci_high > narrow.ci_high


def test_summarize_degenerate():
    empty = summarize([])
    assert empty.n == 0 and all(math.isnan(x) for x in (empty.mean, empty.std, empty.ci_low, empty.ci_high))
    single = summarize([0.4])
    assert single.n == 1 and single.mean == 0.4
    assert all(math.isnan(x) for x in (single.std, single.ci_low, single.ci_high))
    constant = summarize([0.3, 0.3, 0.3])
    assert constant.std == 0.0 and constant.ci_low == constant.ci_high == pytest.approx(0.3)


def test_summary_to_dict_is_plain():
    record = summarize(np.array([0.31, 0.29, 0.33])).to_dict()
    assert set(record) == {"n", "mean", "std", "ci_low", "ci_high"}
    _assert_plain(record)
    assert Summary(**record) == summarize([0.31, 0.29, 0.33])


# hedges_g


def test_hedges_g_exact_small_sample():
    # Means differ by 1, both sample sds are 1, so d = 1 and J = 1 - 3 / (4 * 6 - 9) = 0.8.
    assert hedges_g([1, 2, 3], [0, 1, 2]) == pytest.approx(0.8)
    assert hedges_g([0, 1, 2], [1, 2, 3]) == pytest.approx(-0.8)


def test_hedges_g_textbook_formula_unequal_sizes():
    values, reference = [0.33, 0.35, 0.31, 0.36], [0.30, 0.29, 0.32, 0.31, 0.28, 0.30]
    n1, n2 = len(values), len(reference)
    s1, s2 = stdlib_statistics.stdev(values), stdlib_statistics.stdev(reference)
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    d = (stdlib_statistics.mean(values) - stdlib_statistics.mean(reference)) / pooled
    expected = d * (1 - 3 / (4 * (n1 + n2) - 9))
    g = hedges_g(values, reference)
    assert g == pytest.approx(expected)
    assert g > 0 and abs(g) < abs(d)  # the correction shrinks towards 0


def test_hedges_g_degenerate_is_nan():
    assert math.isnan(hedges_g([0.3], [0.2, 0.25]))
    assert math.isnan(hedges_g([0.3, 0.31], []))
    assert math.isnan(hedges_g([0.3, 0.3], [0.2, 0.2]))  # pooled sd 0
    assert math.isfinite(hedges_g([0.3, 0.3], [0.2, 0.25]))  # one group varying is enough


# holm


def test_holm_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_nan_stays_and_does_not_count():
    adjusted = holm([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])


def test_holm_capped_and_monotone():
    assert holm([0.6, 0.7, 0.8]) == pytest.approx([1.0, 1.0, 1.0])
    # Raw 0.02 * 2 = 0.04 would fall below the smaller p's adjusted 0.05; step-down keeps it at 0.05.
    assert holm([0.025, 0.04]) == pytest.approx([0.05, 0.05])
    assert holm([]) == []
    assert holm([0.02]) == pytest.approx([0.02])


# compare


def test_compare_welch_matches_scipy():
    comparison = compare("mask3", HIGHER, "none", REFERENCE)
    a, b = list(HIGHER.values()), list(REFERENCE.values())
    expected = stats.ttest_ind(a, b, equal_var=False)
    interval = expected.confidence_interval()
    assert (comparison.setting, comparison.reference) == ("mask3", "none")
    assert (comparison.n, comparison.n_reference) == (5, 5)
    assert comparison.difference == pytest.approx(np.mean(a) - np.mean(b))
    assert comparison.welch_t == pytest.approx(expected.statistic)
    assert comparison.welch_p == pytest.approx(expected.pvalue)
    assert comparison.difference_ci == pytest.approx((interval.low, interval.high))
    assert comparison.hedges_g == pytest.approx(hedges_g(a, b))
    assert comparison.welch_p_holm is None and comparison.verdict == ""


def test_compare_pairs_only_matching_seeds():
    values = {0: 0.31, 1: 0.33, 2: 0.30, 3: 0.34, 7: 0.20}
    reference = {3: 0.31, 0: 0.30, 1: 0.31, 2: 0.30, 5: 0.40, 6: 0.25}
    comparison = compare("half", values, "none", reference)
    matched = stats.ttest_rel([0.31, 0.33, 0.30, 0.34], [0.30, 0.31, 0.30, 0.31])
    assert comparison.paired_n == 4
    assert comparison.paired_t == pytest.approx(matched.statistic)
    assert comparison.paired_p == pytest.approx(matched.pvalue)
    welch = stats.ttest_ind(list(values.values()), list(reference.values()), equal_var=False)
    assert comparison.welch_p == pytest.approx(welch.pvalue)  # Welch keeps the unmatched seeds
    assert (comparison.n, comparison.n_reference) == (5, 6)


def test_compare_paired_none_below_two_matches():
    comparison = compare("half", {0: 0.31, 8: 0.32}, "none", {0: 0.30, 1: 0.29})
    assert comparison.paired_n == 1 and comparison.paired_t is None and comparison.paired_p is None
    assert math.isfinite(comparison.welch_p)


def test_comparison_to_dict_is_plain():
    comparisons = adjust_comparisons(
        [compare("mask3", HIGHER, "none", REFERENCE), compare("single", {0: 0.3}, "none", REFERENCE)]
    )
    for comparison in comparisons:
        record = comparison.to_dict()
        _assert_plain(record)
        assert record["difference_ci"] == list(comparison.difference_ci)
    assert comparisons[1].to_dict()["paired_t"] is None


# adjust_comparisons and verdicts


def test_adjust_comparisons_holm_across_settings():
    comparisons = [compare("mask3", HIGHER, "none", REFERENCE), compare("mask1", OVERLAPPING, "none", REFERENCE)]
    returned = adjust_comparisons(comparisons)
    assert returned is comparisons
    expected_welch = holm([c.welch_p for c in comparisons])
    expected_paired = holm([c.paired_p for c in comparisons])
    assert [c.welch_p_holm for c in comparisons] == pytest.approx(expected_welch)
    assert [c.paired_p_holm for c in comparisons] == pytest.approx(expected_paired)
    assert comparisons[0].welch_p_holm == pytest.approx(min(1.0, 2 * comparisons[0].welch_p))


def test_verdict_clear_difference():
    (comparison,) = adjust_comparisons([compare("mask3", HIGHER, "none", REFERENCE)])
    low, high = comparison.difference_ci
    assert comparison.verdict.startswith(
        f"higher than none: {comparison.difference:+.3f} r2 (95% CI {low:+.3f} to {high:+.3f}), Hedges' g "
    )
    assert f"Hedges' g {comparison.hedges_g:.1f}," in comparison.verdict
    assert "Welch p = " in comparison.verdict and "(Holm " in comparison.verdict
    (lower,) = adjust_comparisons([compare("none", REFERENCE, "mask3", HIGHER)], metric="spearman")
    assert lower.verdict.startswith("lower than mask3: -0.") and " spearman (95% CI" in lower.verdict


def test_verdict_no_detectable_difference():
    (comparison,) = adjust_comparisons([compare("mask1", OVERLAPPING, "none", REFERENCE)])
    assert comparison.welch_p > 0.05
    assert comparison.verdict.startswith("no difference from none detectable at n = 5 vs 5: ")
    assert comparison.verdict.endswith(f"Holm-corrected Welch p = {comparison.welch_p_holm:.2g}")


def test_verdict_uses_holm_not_raw_p():
    def made_up(setting: str, p: float) -> Comparison:
        return Comparison(setting, "none", 5, 5, 0.01, (0.001, 0.019), 2.5, p, 5, 2.6, p, 1.4)

    comparisons = adjust_comparisons([made_up("a", 0.03), made_up("b", 0.04)])
    for comparison in comparisons:
        assert comparison.welch_p < 0.05 and comparison.welch_p_holm == pytest.approx(0.06)
        assert comparison.verdict.startswith("no difference from none detectable")
    (alone,) = adjust_comparisons([made_up("a", 0.03)])
    assert alone.verdict.startswith("higher than none: +0.010 r2 (95% CI +0.001 to +0.019), Hedges' g 1.4, ")


def test_verdict_too_few_runs():
    (comparison,) = adjust_comparisons([compare("single", {0: 0.31}, "none", REFERENCE)])
    assert comparison.verdict.startswith("too few runs to test (n = 1 vs 5)")
    assert math.isnan(comparison.welch_p) and math.isnan(comparison.hedges_g)
    assert comparison.paired_t is None and comparison.paired_p_holm is None
    (empty,) = adjust_comparisons([compare("empty", {}, "none", REFERENCE)])
    assert empty.verdict == "too few runs to test (n = 0 vs 5)" and math.isnan(empty.difference)


def test_verdict_zero_variance():
    flat = {seed: 0.3 for seed in range(4)}
    noisy_flat = {0: 0.3, 1: 0.1 + 0.2, 2: 0.3, 3: 0.3}  # 0.1 + 0.2 != 0.3 in floating point
    (identical,) = adjust_comparisons([compare("same", noisy_flat, "none", flat)])
    assert math.isnan(identical.welch_p) and math.isnan(identical.paired_p)
    assert "identical" in identical.verdict and "no variance" in identical.verdict
    assert not identical.verdict.startswith(("higher", "lower"))

    shifted = {seed: 0.4 for seed in range(4)}
    real = compare("mask3", HIGHER, "none", REFERENCE)
    constant, real = adjust_comparisons([compare("shift", shifted, "none", flat), real])
    assert constant.verdict.startswith("no variance within either setting") and "+0.100 r2" in constant.verdict
    assert math.isnan(constant.welch_p_holm) and math.isnan(constant.hedges_g)
    assert real.welch_p_holm == pytest.approx(real.welch_p)  # the untestable comparison does not count


def test_a_shift_only_the_paired_test_sees_is_said_beside_the_welch_verdict():
    from expression_perceiver.study.statistics import adjust_comparisons, compare

    reference = {0: 0.28, 1: 0.30, 2: 0.32, 3: 0.29, 4: 0.31}
    shifted = {seed: value + 0.004 + 0.0005 * (seed % 2) for seed, value in reference.items()}
    (comparison,) = adjust_comparisons([compare("span", shifted, "none", reference)])
    assert comparison.welch_p_holm > 0.05 and comparison.paired_p_holm < 0.05
    assert comparison.verdict.startswith("no difference from none detectable at n = 5 vs 5")
    assert "the paired test over 5 matching seeds does find a consistent gain" in comparison.verdict


def test_compare_effects_is_the_difference_of_differences_with_a_welch_satterthwaite_interval():
    from expression_perceiver.study.statistics import compare_effects

    a, ref_a = [0.30, 0.32, 0.31], [0.28, 0.29, 0.27, 0.30]
    b, ref_b = [0.20, 0.24, 0.22], [0.29, 0.31, 0.30]
    effect = compare_effects("s", a, ref_a, b, ref_b)
    groups = [np.array(g) for g in (a, ref_a, b, ref_b)]
    expected = (groups[2].mean() - groups[3].mean()) - (groups[0].mean() - groups[1].mean())
    parts = [g.var(ddof=1) / g.size for g in groups]
    se = np.sqrt(sum(parts))
    df = sum(parts) ** 2 / sum(p**2 / (g.size - 1) for p, g in zip(parts, groups, strict=True))
    assert effect.difference == pytest.approx(expected)
    assert effect.degrees_of_freedom == pytest.approx(df)
    half = stats.t.ppf(0.975, df) * se
    assert effect.difference_ci == pytest.approx((expected - half, expected + half))
    assert effect.p == pytest.approx(2 * stats.t.sf(abs(expected) / se, df))
    assert effect.p < 0.01  # the setting costs about 0.09 in B and gains 0.02 in A
    same = compare_effects("s", a, ref_a, a, ref_a)
    assert same.difference == 0 and same.p == pytest.approx(1.0)


def test_compare_effects_degenerate_gives_nan_statistics():
    from expression_perceiver.study.statistics import compare_effects

    effect = compare_effects("s", [0.3], [0.2, 0.21], [0.3, 0.31], [0.2, 0.22])
    assert effect.difference == pytest.approx((0.305 - 0.21) - (0.3 - 0.205), abs=1e-12)  # the means still count
    assert np.isnan(effect.p) and np.isnan(effect.difference_ci[0])
