"""Bradley-Terry ratings by penalised maximum likelihood on aggregated counts.

Model: P(a beats b) = 1 / (1 + exp(-(θ_a - θ_b))) with θ the natural-log
strength; reported ratings are ``points_per_nat * θ`` anchored on the Elo
scale (400 points = 10:1 odds). Ties count as half a win for each side, i.e.
a pair with ``w_a`` wins, ``w_b`` losses and ``t`` ties contributes
``s·d - n·log(1 + e^d)`` to the log-likelihood, with ``s = w_a + t/2``,
``n = w_a + w_b + t`` and ``d = θ_a - θ_b``. That is a quasi-likelihood (it
is not the distribution of a three-way outcome), which is why the robust
sandwich covariance is the right model-based error here.

A Gaussian prior θ ~ N(0, σ²) (σ = ``prior_sd`` points, 1000 by default)
keeps every rating finite when the plain MLE does not exist (see
:mod:`.diagnostics`). On well-posed data it is negligible: its pull on a model
is λ·θ against a Fisher information of n·p(1-p), i.e. far below a rating point
for any model with a few hundred battles. Because the likelihood only sees
differences, the prior also centres the solution at mean θ = 0.

The fit is Newton's method with a backtracking line search on the concave
objective: the Hessian is a weighted graph Laplacian (plus λI), so each step is
one dense (models × models) solve, independent of the number of battles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit
from scipy.stats import norm

from .battles import BattleCounts
from .diagnostics import Diagnosis, diagnose
from .scale import BASE, SCALE, Anchor, anchor_matrix, anchor_points, points_per_nat, resolve_anchor

DEFAULT_PRIOR_SD = 1000.0  # rating points; see module docstring
_COEF_RIDGE = 1e-8  # keeps a covariate identifiable when it is constant zero


@dataclass(frozen=True)
class BTFit:
    """A fitted Bradley-Terry model (optionally with covariates).

    ``theta`` is in natural-log units with mean 0; ``ratings`` are anchored
    points. ``hessian`` is the penalised observed information at the optimum
    over (θ, coef) in nats, reused by sandwich errors and the bootstrap.
    """

    models: tuple[str, ...]
    theta: np.ndarray
    ratings: np.ndarray
    pairs: BattleCounts  # the pairs actually fitted (unordered unless covariates)
    features: np.ndarray | None  # (pairs, k) covariates aligned with ``pairs``
    coef: np.ndarray  # covariate effects in rating points per unit of feature
    coef_names: tuple[str, ...]
    prior_precision: float  # λ on θ, per nat²
    prior_sd: float | None  # σ in points actually used (None: no prior)
    anchor_index: int | None
    anchor_value: float
    scale: float
    base: float
    iterations: int
    converged: bool
    hessian: np.ndarray
    diagnosis: Diagnosis
    warnings: tuple[str, ...]

    @property
    def points_per_nat(self) -> float:
        return points_per_nat(self.scale, self.base)


# --------------------------------------------------------------------- core
def gram(a: np.ndarray, b: np.ndarray, x: np.ndarray | None, w: np.ndarray, m: int) -> np.ndarray:
    """Zᵀ diag(w) Z for the design Z = [e_a - e_b, x] without building Z.

    With x = None this is the weighted Laplacian of the comparison graph:
    both the Hessian (w = n·p·(1-p)) and the sandwich "meat" have this form.
    """
    k = 0 if x is None else x.shape[1]
    out = np.zeros((m + k, m + k))
    off = np.bincount(a * m + b, w, m * m).reshape(m, m)
    lap = np.diag(np.bincount(a, w, m) + np.bincount(b, w, m)) - off - off.T
    out[:m, :m] = lap
    if x is not None and k:
        wx = w[:, None] * x
        cross = np.stack(
            [np.bincount(a, wx[:, j], m) - np.bincount(b, wx[:, j], m) for j in range(k)], axis=1
        )
        out[:m, m:] = cross
        out[m:, :m] = cross.T
        out[m:, m:] = x.T @ wx
    return out


def _diff(
    params: np.ndarray, a: np.ndarray, b: np.ndarray, x: np.ndarray | None, m: int
) -> np.ndarray:
    d = params[a] - params[b]
    if x is not None:
        d = d + x @ params[m:]
    return d


def _objective(
    params: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    x: np.ndarray | None,
    n: np.ndarray,
    s: np.ndarray,
    m: int,
    lam: float,
) -> float:
    d = _diff(params, a, b, x, m)
    theta = params[:m]
    ridge = _COEF_RIDGE * float(params[m:] @ params[m:])
    return float(s @ d - n @ np.logaddexp(0.0, d) - 0.5 * lam * theta @ theta - 0.5 * ridge)


def newton_fit(
    a: np.ndarray,
    b: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    m: int,
    lam: float,
    x: np.ndarray | None = None,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> tuple[np.ndarray, int, bool]:
    """Maximise the penalised log-likelihood; returns (params, iterations, converged).

    ``params`` = θ (m values, nats) followed by covariate coefficients. With
    ``lam == 0`` the θ-direction of all-ones is unidentified, so the solve adds
    the rank-one gauge term J/m: it leaves steps orthogonal to it unchanged.
    Callers must only pass ``lam == 0`` for well-posed data.
    """
    k = 0 if x is None else x.shape[1]
    params = np.zeros(m + k) if start is None else np.array(start, dtype=float)
    penalty = np.zeros(m + k)
    penalty[:m] = lam
    penalty[m:] = _COEF_RIDGE
    f = _objective(params, a, b, x, n, s, m, lam)
    for it in range(1, max_iter + 1):
        p = expit(_diff(params, a, b, x, m))
        r = s - n * p
        grad = (np.bincount(a, r, m) - np.bincount(b, r, m)).astype(float)  # float if empty
        if k:
            assert x is not None  # k > 0 means style features were given
            grad = np.concatenate([grad, x.T @ r])
        grad -= penalty * params
        hess = gram(a, b, x, n * p * (1.0 - p), m)
        hess[np.diag_indices_from(hess)] += penalty
        if lam == 0.0:
            hess[:m, :m] += 1.0 / m
        step = cho_solve(cho_factor(hess), grad)
        slope = float(grad @ step)
        t = 1.0
        while True:
            trial = params + t * step
            f_trial = _objective(trial, a, b, x, n, s, m, lam)
            if f_trial >= f + 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        params, f = trial, f_trial
        if np.max(np.abs(t * step)) < tol:
            return params, it, True
    return params, max_iter, False


def prior_precision(prior_sd: float | None, scale: float = SCALE, base: float = BASE) -> float:
    """λ (per nat²) of the N(0, prior_sd²) prior given in rating points."""
    if prior_sd is None:
        return 0.0
    if not prior_sd > 0:
        raise ValueError(f"prior_sd must be positive or None, got {prior_sd!r}")
    return (points_per_nat(scale, base) / prior_sd) ** 2


def finish_fit(
    counts: BattleCounts,
    pairs: BattleCounts,
    x: np.ndarray | None,
    coef_names: tuple[str, ...],
    *,
    anchor: Anchor,
    prior_sd: float | None,
    scale: float,
    base: float,
    tol: float,
    max_iter: int,
) -> BTFit:
    """Shared body of :func:`fit_bt` and the style-controlled fit."""
    if counts.n_models == 0:
        raise ValueError("no models to rate: no battles and no `models` given")
    diagnosis = diagnose(counts)
    warnings = diagnosis.messages(prior_sd)
    if prior_sd is None and not diagnosis.well_posed:
        prior_sd = DEFAULT_PRIOR_SD
        warnings.append(
            f"prior_sd=None but the data are not well posed (see above); "
            f"fitted with the default prior (sd {prior_sd:g} points) instead"
        )
    lam = prior_precision(prior_sd, scale, base)
    m = counts.n_models
    a, b = pairs.pair_a, pairs.pair_b
    n = pairs.n
    s = pairs.wins_a + 0.5 * pairs.ties
    params, iterations, converged = newton_fit(a, b, n, s, m, lam, x, tol=tol, max_iter=max_iter)
    if not converged:
        warnings.append(f"Bradley-Terry Newton iteration did not converge in {max_iter} steps")
    theta = params[:m] - params[:m].mean()
    p = expit(_diff(np.concatenate([theta, params[m:]]), a, b, x, m))
    hess = gram(a, b, x, n * p * (1.0 - p), m)
    hess[np.diag_indices_from(hess)] += np.concatenate(
        [np.full(m, lam), np.full(len(params) - m, _COEF_RIDGE)]
    )
    idx, value = resolve_anchor(counts.models, anchor)
    ppn = points_per_nat(scale, base)
    return BTFit(
        models=counts.models,
        theta=theta,
        ratings=anchor_points(ppn * theta, idx, value),
        pairs=pairs,
        features=x,
        coef=ppn * params[m:],
        coef_names=coef_names,
        prior_precision=lam,
        prior_sd=prior_sd,
        anchor_index=idx,
        anchor_value=value,
        scale=scale,
        base=base,
        iterations=iterations,
        converged=converged,
        hessian=hess,
        diagnosis=diagnosis,
        warnings=tuple(warnings),
    )


def fit_bt(
    counts: BattleCounts,
    *,
    anchor: Anchor = None,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    scale: float = SCALE,
    base: float = BASE,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> BTFit:
    """Fit Bradley-Terry ratings (ties = half wins) to aggregated battle counts.

    ``anchor``: None puts the pool mean at 1000, a model name pins that model
    at 1000, ``(name, value)`` pins it at ``value``. ``prior_sd`` (points) is
    the Gaussian prior that keeps degenerate data finite; ``None`` asks for the
    plain MLE, which is only used when the data are well posed.
    """
    pairs = counts.unordered()
    return finish_fit(
        counts,
        pairs,
        None,
        (),
        anchor=anchor,
        prior_sd=prior_sd,
        scale=scale,
        base=base,
        tol=tol,
        max_iter=max_iter,
    )


# ----------------------------------------------------------- sandwich errors
def _gauge_inverse(fit: BTFit) -> np.ndarray:
    hess = fit.hessian.copy()
    m = len(fit.models)
    if fit.prior_precision == 0.0:
        hess[:m, :m] += 1.0 / m
    return np.linalg.inv(hess)


def sandwich_covariance(fit: BTFit) -> np.ndarray:
    """Robust (Huber-White) covariance of (anchored ratings, coef) in points².

    Bread: the penalised information H at the optimum. Meat: the sum over
    battles of outer products of per-battle scores, which for battle outcome
    y ∈ {1, 0, ½} in pair (a, b) is (y - p)(e_a - e_b). Summed within a pair,
    Σ(y - p)² = w_a(1-p)² + w_b p² + t(½-p)², so the meat is again a weighted
    Laplacian. H⁻¹ B H⁻¹ stays valid although ties-as-half-wins is not the true
    outcome distribution; ties make it smaller than the naive p(1-p) variance.
    """
    m = len(fit.models)
    pairs, x = fit.pairs, fit.features
    a, b = pairs.pair_a, pairs.pair_b
    params = np.concatenate([fit.theta, fit.coef / fit.points_per_nat])
    p = expit(_diff(params, a, b, x, m))
    v = pairs.wins_a * (1.0 - p) ** 2 + pairs.wins_b * p**2 + pairs.ties * (0.5 - p) ** 2
    meat = gram(a, b, x, v, m)
    inv = _gauge_inverse(fit)
    cov = inv @ meat @ inv
    k = cov.shape[0] - m
    t = np.zeros_like(cov)
    t[:m, :m] = fit.points_per_nat * anchor_matrix(m, fit.anchor_index)
    t[m:, m:] = fit.points_per_nat * np.eye(k)
    return t @ cov @ t.T


def prior_fill(
    fit: BTFit, low: np.ndarray, high: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Widen intervals where the data cannot bound a rating, using the prior.

    Neither resampling nor the sandwich can see past the data: a model that
    never lost gets the same (or no) wins in every resample, so its interval
    would collapse while the likelihood is flat towards +infinity. Such sides
    are opened to rating ± z·prior_sd (what the prior alone allows): upwards
    for never-lost models, downwards for never-won ones, both ways for models
    without battles.
    """
    half = float(norm.ppf(0.5 + level / 2.0)) * (fit.prior_sd or np.inf)
    low, high = low.copy(), high.copy()
    diag = fit.diagnosis
    names = {m: i for i, m in enumerate(fit.models)}
    for model in (*diag.no_battles, *diag.never_lost):
        i = names[model]
        high[i] = max(high[i], fit.ratings[i] + half)
    for model in (*diag.no_battles, *diag.never_won):
        i = names[model]
        low[i] = min(low[i], fit.ratings[i] - half)
    return low, high


def sandwich_intervals(
    fit: BTFit, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal-approximation intervals rating ± z·SE from the sandwich covariance.

    Returns (low, high, se); sides the data cannot bound are widened by
    :func:`prior_fill` (``se`` is the plain sandwich value).
    """
    m = len(fit.models)
    se = np.sqrt(np.clip(np.diag(sandwich_covariance(fit))[:m], 0.0, None))
    z = float(norm.ppf(0.5 + level / 2.0))
    low, high = prior_fill(fit, fit.ratings - z * se, fit.ratings + z * se, level)
    return low, high, se
