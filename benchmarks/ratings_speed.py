"""Bootstrap speed: evalarena vs evalica on the same synthetic arena.

Generates (seeded) 1,000,000 battles among 100 models, then times

* evalarena: aggregation to pair counts, the Bradley-Terry point fit and a
  1,000-round bootstrap (per-pair multinomial resampling, all rounds refitted
  together), best and median of ``--repeat`` runs;
* evalica (if installed): ``evalica.bootstrap(evalica.bradley_terry, ...)``
  with percentile intervals (BCa would need a 1M-point jackknife) — it refits
  on every resampled battle list, so only ``--peer-rounds`` rounds are run and
  the comparison is per round.

Run:  .venv/bin/python benchmarks/ratings_speed.py [--battles N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from leaderboards import BattleCounts, bootstrap_bt, fit_bt


def make_battles(n_models: int, n_battles: int, seed: int):
    """Uniformly random pairs, BT strengths ~ N(0, 200 points), ties near even matches."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 200.0, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    p = 1.0 / (1.0 + 10.0 ** (-(true[a] - true[b]) / 400.0))
    tie = 0.3 * 4.0 * p * (1.0 - p)
    u = rng.random(n_battles)
    outcome = np.where(u < p - tie / 2, "a", np.where(u < p + tie / 2, "tie", "b"))
    names = np.array([f"model-{i:03d}" for i in range(n_models)])
    return names[a], names[b], outcome


def time_evalarena(model_a, model_b, outcome, rounds: int, seed: int):
    t0 = time.perf_counter()
    counts = BattleCounts.from_arrays(model_a, model_b, outcome)
    t1 = time.perf_counter()
    fit = fit_bt(counts)
    t2 = time.perf_counter()
    boot = bootstrap_bt(fit, rounds=rounds, seed=seed)
    t3 = time.perf_counter()
    return {"aggregate": t1 - t0, "fit": t2 - t1, "bootstrap": t3 - t2, "total": t3 - t0}, fit, boot


def time_evalica(model_a, model_b, outcome, rounds: int, seed: int):
    import evalica

    code = {"a": evalica.Winner.X, "b": evalica.Winner.Y, "tie": evalica.Winner.Draw}
    xs, ys = model_a.tolist(), model_b.tolist()
    winners = [code[o] for o in outcome.tolist()]
    t0 = time.perf_counter()
    point = evalica.bradley_terry(xs, ys, winners)
    t1 = time.perf_counter()
    evalica.bootstrap(
        evalica.bradley_terry,
        xs,
        ys,
        winners,
        n_resamples=rounds,
        bootstrap_method="percentile",
        random_state=seed,
    )
    t2 = time.perf_counter()
    # evalica.bootstrap fits the point estimate once, then once per resample
    per_round = max(t2 - t1 - (t1 - t0), 0.0) / rounds
    return {"fit": t1 - t0, "bootstrap": t2 - t1, "per_round": per_round}, point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--peer-rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model_a, model_b, outcome = make_battles(args.models, args.battles, args.seed)
    print(f"{args.battles:,} battles, {args.models} models, seed {args.seed}")

    runs = [
        time_evalarena(model_a, model_b, outcome, args.rounds, args.seed)
        for _ in range(args.repeat)
    ]
    fit, boot = runs[-1][1], runs[-1][2]
    print(
        f"\nevalarena, {args.rounds} rounds ({len(fit.pairs.pair_a)} model pairs), "
        f"best / median of {args.repeat}:"
    )
    for key in ("aggregate", "fit", "bootstrap", "total"):
        vals = [r[0][key] for r in runs]
        print(f"  {key:<10} {min(vals):7.3f} s / {statistics.median(vals):7.3f} s")
    ours_round = min(r[0]["bootstrap"] for r in runs) / args.rounds
    print(
        f"  per round  {1e3 * ours_round:7.3f} ms   (chord iterations {boot.iterations}, "
        f"rounds refitted one by one {boot.refitted})"
    )
    print(f"  median 95% CI width {np.median(boot.ci_high - boot.ci_low):.2f} points")

    try:
        peer, point = time_evalica(model_a, model_b, outcome, args.peer_rounds, args.seed)
    except ImportError:
        print("\nevalica not installed: `pip install evalica` to compare")
        return
    print(f"\nevalica {point.solver} solver, {args.peer_rounds} rounds (percentile):")
    print(f"  fit        {peer['fit']:7.3f} s")
    print(f"  bootstrap  {peer['bootstrap']:7.3f} s")
    print(f"  per round  {1e3 * peer['per_round']:7.1f} ms")
    names = list(fit.models)
    ref = 400.0 * np.log10(point.scores.reindex(names).to_numpy())
    ref = ref - ref.mean() + 1000.0
    print(
        f"  max |rating difference| vs evalarena point fit: "
        f"{np.abs(ref - fit.ratings).max():.3f} points"
    )
    print(
        f"\nper-round speed-up: {peer['per_round'] / ours_round:,.0f}x; "
        f"evalica would need ~{peer['per_round'] * args.rounds:,.0f} s for {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
