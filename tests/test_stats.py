"""Clustered, stratified bootstrap and paired differences (harness.stats)."""

import numpy as np
import pytest
from scipy.stats import wilcoxon

from harness import stats


def _tasks(n_tasks: int, per_task: int, rng: np.random.Generator):
    """Task effects ~ U(0, 1) plus small instance noise; one category."""
    values, clusters = [], []
    for t in range(n_tasks):
        effect = rng.uniform()
        values += list(effect + 0.01 * rng.standard_normal(per_task))
        clusters += [f"t{t}"] * per_task
    return values, clusters, ["c"] * len(values)


def test_ci_contains_mean_and_narrows_with_more_tasks():
    rng = np.random.default_rng(1)
    few = stats.cluster_bootstrap(*_tasks(4, 5, rng), key="few", n_resamples=2000)
    many = stats.cluster_bootstrap(*_tasks(64, 5, rng), key="many", n_resamples=2000)
    for est in (few, many):
        assert est.ci_low <= est.mean <= est.ci_high
    assert many.ci_high - many.ci_low < 0.5 * (few.ci_high - few.ci_low)
    assert few.n == 20 and many.n == 320


def test_resamples_tasks_not_instances():
    # Constant within a task, different across tasks: the task is the unit of evidence, so the
    # clustered interval is much wider than one that treats the 40 instances as independent.
    values = [v for v in (0.1, 0.3, 0.5, 0.7) for _ in range(10)]
    tasks = [t for t in "abcd" for _ in range(10)]
    clustered = stats.cluster_bootstrap(values, tasks, ["c"] * 40, key="k")
    naive = stats.cluster_bootstrap(values, [str(i) for i in range(40)], ["c"] * 40, key="k")
    assert clustered.mean == pytest.approx(0.4) and naive.mean == pytest.approx(0.4)
    assert (clustered.ci_high - clustered.ci_low) > 1.5 * (naive.ci_high - naive.ci_low)


def test_stratified_keeps_every_category_at_its_size():
    # A: three tasks scoring 0; B: two tasks scoring 1 (2 instances each). Every stratified resample
    # holds 3 A-tasks and 2 B-tasks, so the mean is always 4/10; an unstratified one would vary.
    values = [0.0] * 6 + [1.0] * 4
    tasks = ["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "b2", "b2"]
    cats = ["A"] * 6 + ["B"] * 4
    est = stats.cluster_bootstrap(values, tasks, cats, key="k")
    assert est.mean == pytest.approx(0.4)
    assert est.ci_low == pytest.approx(0.4) and est.ci_high == pytest.approx(0.4)
    unstratified = stats.cluster_bootstrap(values, tasks, ["all"] * 10, key="k")
    assert unstratified.ci_high - unstratified.ci_low > 0.3


def test_single_task_category_resamples_its_instances():
    # A is constant; B has one task whose instances disagree. A one-task stratum must still carry
    # its instance variance into the interval instead of a zero-width claim.
    values = [0.5] * 6 + [0.0, 1.0, 0.0, 1.0]
    tasks = ["a1"] * 2 + ["a2"] * 2 + ["a3"] * 2 + ["b1"] * 4
    cats = ["A"] * 6 + ["B"] * 4
    est = stats.cluster_bootstrap(values, tasks, cats, key="k")
    assert est.mean == pytest.approx(0.5)
    assert est.ci_low < 0.45 and est.ci_high > 0.55


def test_deterministic_and_order_independent():
    rng = np.random.default_rng(3)
    values, clusters, strata = _tasks(10, 3, rng)
    a = stats.cluster_bootstrap(values, clusters, strata, key="cell")
    b = stats.cluster_bootstrap(values, clusters, strata, key="cell")
    assert a == b
    order = rng.permutation(len(values))
    c = stats.cluster_bootstrap([values[i] for i in order], [clusters[i] for i in order],
                                [strata[i] for i in order], key="cell")
    assert c.ci_low == pytest.approx(a.ci_low, abs=1e-12) and c.ci_high == pytest.approx(a.ci_high, abs=1e-12)
    other = stats.cluster_bootstrap(values, clusters, strata, key="other cell")
    assert (other.ci_low, other.ci_high) != (a.ci_low, a.ci_high)  # independent stream per cell


def test_empty_and_bad_input():
    assert stats.cluster_bootstrap([], [], [], key="k") is None
    assert stats.paired_difference([], [], [], [], key="k") is None
    with pytest.raises(ValueError, match="non-finite"):
        stats.cluster_bootstrap([0.1, float("nan")], ["a", "b"], ["c", "c"], key="k")
    with pytest.raises(ValueError, match="same length"):
        stats.cluster_bootstrap([0.1, 0.2], ["a"], ["c", "c"], key="k")


def test_paired_difference_sign_size_and_p():
    base = [0.2, 0.4, 0.6, 0.8, 0.3, 0.5, 0.7, 0.9]
    gain = [0.10, 0.12, 0.08, 0.11, 0.09, 0.13, 0.07, 0.10]
    method = [b + g for b, g in zip(base, gain, strict=True)]
    tasks = ["t1", "t1", "t2", "t2", "t3", "t3", "t4", "t4"]
    est = stats.paired_difference(method, base, tasks, ["c"] * 8, key="k")
    assert est.mean == pytest.approx(np.mean(gain))
    assert est.n_pairs == 8
    assert 0.07 <= est.ci_low <= est.mean <= est.ci_high <= 0.13
    assert est.p_value == pytest.approx(wilcoxon(np.subtract(method, base)).pvalue)
    assert est.p_value < 0.01
    worse = stats.paired_difference(base, method, tasks, ["c"] * 8, key="k")
    assert worse.mean == pytest.approx(-est.mean) and worse.ci_high < 0
    same = stats.paired_difference(base, base, tasks, ["c"] * 8, key="k")
    assert same.mean == 0 and same.p_value == 1.0


def test_holm_adjusts_step_down_keeps_order_and_skips_untested():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, max(0.06, 1*0.04)
    assert stats.holm([0.04, None, 0.01, 0.03]) == pytest.approx([0.06, None, 0.03, 0.06])
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.02]) == [0.02]  # one test: nothing to adjust
    assert stats.holm([None, None]) == [None, None]


@pytest.mark.parametrize("seed", range(4))
def test_wilcoxon_p_is_scipys_own_test_where_it_permutes(seed):
    """Small samples with ties and zeros, where scipy enumerates sign patterns one by one: the same p."""
    rng = np.random.default_rng(seed)
    for n in (3, 6, 9):
        d = np.round(rng.normal(0.05, 0.2, n), 1)  # rounded: ties and zeros
        d[0], d[1:3] = 0.0, 0.3 if seed % 2 else -0.2  # a zero and a tie, whatever the draw
        assert stats.wilcoxon_p(d) == pytest.approx(wilcoxon(d).pvalue, abs=1e-12)
    no_ties = rng.permutation(np.arange(1, 10)) * rng.choice([-1, 1], 9)  # scipy's exact distribution
    assert stats.wilcoxon_p(no_ties) == pytest.approx(wilcoxon(no_ties).pvalue, abs=1e-12)
