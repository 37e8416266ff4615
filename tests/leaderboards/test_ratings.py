"""Rating math: recovery of known strengths, interval coverage, degenerate data,
anchoring, Elo order dependence, and agreement with an independent package."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from leaderboards import (
    BattleCounts,
    bootstrap_bt,
    diagnose,
    elo_ratings,
    encode_battles,
    fit_bt,
    fit_bt_style,
    fit_ratings,
    normalised_length_diff,
    predicted_win_rate,
    rank_upper_bound,
    sandwich_intervals,
    style_counts,
    win_rate_matrix,
)
from leaderboards.scale import points_per_nat

PPN = points_per_nat()


def simulate(true_points, n_battles, rng, tie_share=0.3, logit_shift=None):
    """Random pairs; P(a) + P(tie)/2 = logistic(Δ) so ties-as-half BT is exact.

    Ties are more likely between close models: P(tie) = tie_share·4·p·(1-p).
    """
    m = len(true_points)
    a = rng.integers(0, m, n_battles)
    b = (a + rng.integers(1, m, n_battles)) % m
    logit = (true_points[a] - true_points[b]) / PPN
    if logit_shift is not None:
        logit = logit + logit_shift
    p = expit(logit)
    tie = tie_share * 4 * p * (1 - p)
    u = rng.random(n_battles)
    out = np.where(u < p - tie / 2, "a", np.where(u < p + tie / 2, "tie", "b"))
    return a, b, out


def davidson(true_points, n_battles, rng, nu=0.5):
    """Davidson (1970) ties: P(tie) ∝ ν·sqrt(π_a π_b) — a different tie model."""
    m = len(true_points)
    a = rng.integers(0, m, n_battles)
    b = (a + rng.integers(1, m, n_battles)) % m
    pa, pb = 10 ** (true_points[a] / 400), 10 ** (true_points[b] / 400)
    tie = nu * np.sqrt(pa * pb)
    total = pa + pb + tie
    u = rng.random(n_battles)
    out = np.where(u < pa / total, "a", np.where(u < (pa + tie) / total, "tie", "b"))
    return a, b, out


def names(m):
    return [f"m{i:02d}" for i in range(m)]


def centred(true_points):
    return true_points - true_points.mean() + 1000.0


# ------------------------------------------------------------------ counts
def test_counts_from_battles_and_arrays_agree():
    battles = [("x", "y", "a"), ("x", "y", "tie_bad"), ("y", "x", "b"), ("y", "z", "tie")]
    c1 = BattleCounts.from_battles(battles)
    c2 = BattleCounts.from_arrays(*map(np.array, zip(*battles, strict=True)))
    assert c1.models == c2.models == ("x", "y", "z")
    for c in (c1, c2):
        assert c.total == 4
        assert c.n_battles.tolist() == [3, 4, 1]
    u = c1.unordered()
    assert len(u.pair_a) == 2
    xy = np.flatnonzero((u.pair_a == 0) & (u.pair_b == 1))[0]
    assert (u.wins_a[xy], u.wins_b[xy], u.ties[xy]) == (2.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="outcome"):
        BattleCounts.from_battles([("x", "y", "draw")])
    with pytest.raises(ValueError, match="itself"):
        BattleCounts.from_battles([("x", "x", "a")])
    with pytest.raises(ValueError):
        c1.wins_a[0] = 5  # read-only


# --------------------------------------------------------------- accuracy
@pytest.mark.parametrize("generator", [simulate, davidson])
def test_bt_recovers_known_strengths(generator):
    rng = np.random.default_rng(1)
    true = rng.normal(0, 200, 20)
    a, b, out = generator(true, 60_000, rng)
    fit = fit_bt(BattleCounts.from_arrays(a, b, out, models=names(20)))
    assert fit.warnings == ()
    assert np.corrcoef(fit.ratings, true)[0, 1] > 0.99
    assert fit.ratings.mean() == pytest.approx(1000.0)
    if generator is simulate:  # correctly specified: the scale is right too
        assert np.abs(fit.ratings - centred(true)).max() < 25


def test_win_rate_matrices():
    c = BattleCounts.from_battles([("x", "y", "a")] * 3 + [("y", "x", "tie")] * 2)
    w = win_rate_matrix(c)
    assert w[0, 1] == pytest.approx(4 / 5) and w[1, 0] == pytest.approx(1 / 5)
    assert np.isnan(w[0, 0])
    r = fit_ratings(c, ci="none", prior_sd=None)
    pred = predicted_win_rate(r)
    assert pred[0, 1] == pytest.approx(0.8, abs=1e-6)  # one pair: MLE reproduces the share
    assert pred[0, 1] + pred[1, 0] == pytest.approx(1.0)


# --------------------------------------------------------------- coverage
REPEATS, MODELS, BATTLES = 200, 10, 3000


@pytest.fixture(scope="module")
def coverage():
    """200 independent data sets × 10 models, 1000 bootstrap rounds each."""
    rng = np.random.default_rng(2024)
    true = np.linspace(-300, 300, MODELS)
    target = centred(true)
    hits_boot, hits_sand = [], []
    for rep in range(REPEATS):
        a, b, out = simulate(true, BATTLES, rng)
        fit = fit_bt(BattleCounts.from_arrays(a, b, out, models=names(MODELS)))
        boot = bootstrap_bt(fit, rounds=1000, seed=rep)
        hits_boot.append((boot.ci_low <= target) & (target <= boot.ci_high))
        low, high, _ = sandwich_intervals(fit)
        hits_sand.append((low <= target) & (target <= high))
    return np.mean(hits_boot), np.mean(hits_sand)


@pytest.mark.slow  # a simulation: 200 arenas, seconds of CPU
def test_bootstrap_coverage(coverage):
    assert 0.92 <= coverage[0] <= 0.98, coverage


def test_sandwich_coverage(coverage):
    assert 0.92 <= coverage[1] <= 0.98, coverage


# ------------------------------------------------------------- degenerate
DEGENERATE = {
    "undefeated": (
        [("top", "x", "a")] * 6 + [("x", "y", "a"), ("x", "y", "b"), ("y", "top", "b")],
        None,
        ["never lost", "top"],
    ),
    "never_winning": (
        [("x", "bot", "a")] * 5 + [("x", "y", "a"), ("y", "x", "a"), ("bot", "y", "b")],
        None,
        ["never won", "bot"],
    ),
    "disconnected": (
        [("a", "b", "a"), ("a", "b", "b"), ("c", "d", "a"), ("c", "d", "tie")],
        None,
        ["disconnected", "[a, b]", "[c, d]"],
    ),
    "single_pair_sweep": ([("p", "q", "a")] * 4, None, ["never lost", "never won"]),
    "zero_battles": (
        [("x", "y", "a"), ("x", "y", "b"), ("y", "x", "tie")],
        ["x", "y", "ghost"],
        ["no battles", "ghost"],
    ),
    "group_separation": (
        [
            *[("a", "b", "a"), ("b", "a", "a"), ("c", "d", "a"), ("d", "c", "a")],  # within
            *[("a", "c", "a"), ("b", "d", "a"), ("d", "a", "b")],  # {a, b} always beat {c, d}
        ],
        None,
        ["groups", "[a, b]", "[c, d]"],
    ),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("ci", ["bootstrap", "sandwich"])
def test_degenerate_data_is_finite_and_warned(case, ci):
    battles, models, expected = DEGENERATE[case]
    r = fit_ratings(battles, ci=ci, rounds=200, models=models)
    for arr in (r.rating, r.ci_low, r.ci_high):
        assert np.all(np.isfinite(arr)), (case, arr)
    assert np.all(r.ci_low <= r.rating + 1e-9) and np.all(r.rating <= r.ci_high + 1e-9)
    assert np.all(np.abs(r.rating - 1000) < 3000)
    text = " | ".join(r.warnings)
    for word in expected:
        assert word in text, (case, r.warnings)


@pytest.mark.parametrize("ci", ["bootstrap", "sandwich"])
def test_unbounded_sides_are_opened_to_the_prior(ci):
    """Resampling a sweep reproduces the sweep, so the data alone would give a
    zero-width interval; the side the likelihood cannot bound is widened."""
    r = fit_ratings([("p", "q", "a")] * 4, ci=ci, rounds=200)
    half = 1.9599 * 1000
    assert r.ci_high[0] >= r["p"] + half - 1e-6 and r.ci_low[1] <= r["q"] - half + 1e-6
    assert r.ci_low[0] <= r["p"] and r.ci_high[1] >= r["q"]


def test_single_pair_with_mixed_results_is_well_posed():
    r = fit_ratings([("p", "q", "a")] * 3 + [("p", "q", "b")], ci="sandwich", prior_sd=None)
    assert r.warnings == ()
    assert r["p"] - r["q"] == pytest.approx(400 * np.log10(3.0))
    assert r["p"] + r["q"] == pytest.approx(2000.0)


def test_zero_battle_model_sits_at_mean_with_prior_interval():
    battles, models, _ = DEGENERATE["zero_battles"]
    r = fit_ratings(battles, ci="bootstrap", rounds=100, models=models)
    assert r["ghost"] == pytest.approx(1000.0)
    assert r.ci_high[2] - r.ci_low[2] == pytest.approx(2 * 1.959964 * 1000, rel=1e-4)
    assert r.n_battles.tolist() == [3, 3, 0]


def test_no_battles_at_all():
    r = fit_ratings([], models=["a", "b"], rounds=50)
    assert r.rating.tolist() == [1000.0, 1000.0] and np.all(np.isfinite(r.ci_low))
    assert "no battles" in r.warnings[0]
    with pytest.raises(ValueError, match="no models"):
        fit_ratings([])


def test_no_prior_falls_back_when_ill_posed():
    fit = fit_bt(BattleCounts.from_battles([("p", "q", "a")] * 4), prior_sd=None)
    assert fit.prior_sd == 1000.0
    assert any("prior_sd=None" in w for w in fit.warnings)
    assert not diagnose(BattleCounts.from_battles([("p", "q", "a")])).well_posed


# -------------------------------------------------------------- anchoring
def test_anchoring():
    rng = np.random.default_rng(5)
    true = rng.normal(0, 150, 8)
    counts = BattleCounts.from_arrays(*simulate(true, 5000, rng), models=names(8))
    mean = fit_bt(counts)
    pinned = fit_bt(counts, anchor=("m03", 1200.0))
    assert pinned.ratings[3] == 1200.0
    np.testing.assert_allclose(pinned.ratings - mean.ratings, 1200.0 - mean.ratings[3])
    assert fit_bt(counts, anchor="m03").ratings[3] == 1000.0
    boot = bootstrap_bt(pinned, rounds=200)
    assert boot.ci_low[3] == boot.ci_high[3] == 1200.0
    np.testing.assert_allclose(boot.samples[:, 3], 1200.0)
    _, _, se = sandwich_intervals(pinned)
    assert se[3] == pytest.approx(0.0, abs=1e-9) and np.all(np.delete(se, 3) > 0)
    with pytest.raises(ValueError, match="anchor"):
        fit_bt(counts, anchor="nope")


# -------------------------------------------------------------- bootstrap
def test_bootstrap_reproducible_and_thread_independent():
    rng = np.random.default_rng(6)
    counts = BattleCounts.from_arrays(*simulate(rng.normal(0, 150, 6), 2000, rng), models=names(6))
    fit = fit_bt(counts)
    one = bootstrap_bt(fit, rounds=300, seed=11, workers=1)
    two = bootstrap_bt(fit, rounds=300, seed=11, workers=2)
    np.testing.assert_array_equal(one.samples, two.samples)
    other = bootstrap_bt(fit, rounds=300, seed=12)
    assert not np.array_equal(one.samples, other.samples)
    assert np.all(one.ci_low < fit.ratings) and np.all(fit.ratings < one.ci_high)


def test_bootstrap_fallback_matches_chord_iteration():
    """Rounds refitted one by one (max_iter=1 forces it) give the same numbers."""
    battles = [("x", "y", "a")] * 2 + [("y", "x", "a")] + [("x", "z", "tie"), ("z", "y", "a")]
    fit = fit_bt(BattleCounts.from_battles(battles))
    fast = bootstrap_bt(fit, rounds=200, seed=3)
    slow = bootstrap_bt(fit, rounds=200, seed=3, max_iter=1)
    assert slow.refitted > 0
    np.testing.assert_allclose(fast.samples, slow.samples, atol=1e-3)


def test_rank_upper_bound():
    low, high = np.array([10.0, 5.0, 0.0, 11.0]), np.array([12.0, 11.0, 4.0, 13.0])
    # model 1's upper bound 11 is not strictly below model 3's lower bound 11
    assert rank_upper_bound(low, high).tolist() == [1, 1, 4, 1]


# --------------------------------------------------------------------- Elo
def test_elo_first_update_and_zero_sum():
    r = elo_ratings(encode_battles([("x", "y", "a")]))
    np.testing.assert_allclose(r, [1002.0, 998.0])
    rng = np.random.default_rng(7)
    a, b, out = simulate(rng.normal(0, 100, 5), 500, rng)
    m = names(5)
    r = elo_ratings(encode_battles(zip([m[i] for i in a], [m[i] for i in b], out, strict=True)))
    assert r.mean() == pytest.approx(1000.0)


def test_elo_depends_on_time_order_and_bt_does_not():
    early_losses = [("x", "y", "b")] * 60 + [("x", "y", "a")] * 60
    early_wins = early_losses[::-1]
    late = fit_ratings(early_losses, method="elo", ci="none")
    early = fit_ratings(early_wins, method="elo", ci="none")
    assert late["x"] > 1000 > early["x"]  # recent results weigh more
    assert late["x"] - 1000 == pytest.approx(1000 - early["x"])
    bt1 = fit_ratings(early_losses, ci="none")
    bt2 = fit_ratings(early_wins, ci="none")
    np.testing.assert_allclose(bt1.rating, bt2.rating)
    np.testing.assert_allclose(bt1.rating, [1000.0, 1000.0], atol=1e-9)


def test_elo_bootstrap_and_errors():
    rng = np.random.default_rng(8)
    a, b, out = simulate(np.array([-200.0, 0.0, 200.0]), 1500, rng)
    m = names(3)
    battles = list(zip([m[i] for i in a], [m[i] for i in b], out, strict=True))
    r = fit_ratings(battles, method="elo", rounds=200, seed=1, anchor=("m01", 1500.0))
    assert r["m01"] == 1500.0
    assert np.all(r.ci_low <= r.ci_high) and np.all(np.isfinite(r.ci_low))
    assert r.ci_low[1] == r.ci_high[1] == 1500.0
    assert list(np.argsort(r.rating)) == [0, 1, 2]
    with pytest.raises(TypeError, match="time order"):
        fit_ratings(BattleCounts.from_battles(battles), method="elo")
    with pytest.raises(ValueError, match="sandwich"):
        fit_ratings(battles, method="elo", ci="sandwich")


# ------------------------------------------------------------ style control
def test_style_control_separates_length_bias():
    rng = np.random.default_rng(9)
    m, n = 8, 40_000
    true = rng.normal(0, 120, m)
    verbosity = np.where(np.arange(m) % 2 == 0, 2.0, 0.5)  # even models write 4x more
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    len_a = rng.lognormal(np.log(300 * verbosity[a]), 0.3)
    len_b = rng.lognormal(np.log(300 * verbosity[b]), 0.3)
    x = normalised_length_diff(len_a, len_b)
    beta = 0.8  # nats per unit of normalised length difference
    p = expit((true[a] - true[b]) / PPN + beta * x)
    tie = 0.3 * 4 * p * (1 - p)
    u = rng.random(n)
    out = np.where(u < p - tie / 2, "a", np.where(u < p + tie / 2, "tie", "b"))
    counts = BattleCounts.from_arrays(a, b, out, models=names(m))
    cells, feature = style_counts(a, b, out, x, models=names(m))
    styled = fit_bt_style(cells, feature)
    plain = fit_bt(counts)
    assert styled.coef[0] == pytest.approx(beta * PPN, rel=0.15)
    err_styled = np.abs(styled.ratings - centred(true)).max()
    err_plain = np.abs(plain.ratings - centred(true)).max()
    assert err_styled < 30 < err_plain
    one_bin, _ = style_counts(a, b, out, x, bins=1, models=names(m))
    np.testing.assert_array_equal(one_bin.wins_a, counts.wins_a)  # bins=1: plain pair counts
    np.testing.assert_array_equal(one_bin.ties, counts.ties)
    r = fit_ratings(cells, ci="sandwich", length_diff=feature)
    assert r.params["style_coef"]["length"] == pytest.approx(styled.coef[0])
    assert np.all(r.ci_low < r.rating)
    with pytest.raises(ValueError, match="bootstrap"):
        fit_ratings(cells, ci="bootstrap", length_diff=feature)


# ----------------------------------------------- independent implementation
def _evalica_inputs(rng, m=12, n=30_000):
    evalica = pytest.importorskip("evalica")
    a, b, out = simulate(rng.normal(0, 200, m), n, rng)
    mm = names(m)
    xs, ys = [mm[i] for i in a], [mm[i] for i in b]
    code = {"a": evalica.Winner.X, "b": evalica.Winner.Y, "tie": evalica.Winner.Draw}
    return evalica, mm, xs, ys, out, [code[o] for o in out]


def test_bt_agrees_with_evalica():
    evalica, mm, xs, ys, out, winners = _evalica_inputs(np.random.default_rng(11))
    ref = evalica.bradley_terry(xs, ys, winners, tie_weight=0.5, tolerance=1e-12, limit=100_000)
    # evalica: strengths π with geometric mean 1 → 400·log10(π) has mean 0
    ref_points = 400 * np.log10(ref.scores.reindex(mm).to_numpy()) + 1000.0
    counts = BattleCounts.from_arrays(np.array(xs), np.array(ys), out)
    assert counts.models == tuple(mm)
    np.testing.assert_allclose(fit_bt(counts).ratings, ref_points, atol=1.0)
    np.testing.assert_allclose(fit_bt(counts, prior_sd=None).ratings, ref_points, atol=1e-6)


def test_elo_agrees_with_evalica():
    evalica, mm, xs, ys, out, winners = _evalica_inputs(np.random.default_rng(12), n=5000)
    ref = evalica.elo(xs, ys, winners, k=4.0, scale=400.0, base=10.0, initial=1000.0)
    mine = elo_ratings(encode_battles(zip(xs, ys, out, strict=True), mm))
    np.testing.assert_allclose(mine, ref.scores.reindex(mm).to_numpy(), atol=1e-9)
