r"""Confidence intervals of a frequentist fit, as lme4's ``confint(m, method, oldNames = FALSE)``.

* ``"profile"`` (lme4's default): for each parameter on lme4's scale (every factor's sds and
  correlations, the residual sd, the fixed effects) the deviance is minimised over all the other
  parameters with that one held fixed; the signed root
  :math:`\zeta(x) = \operatorname{sign}(x - \hat x)\sqrt{d(x) - d(\hat x)}` is solved for
  :math:`\pm z_{(1+\text{level})/2}` (root finding, where lme4 interpolates a spline through a
  grid). As lme4's ``profile.merMod``, Gaussian models are profiled on the *ML* deviance even
  when fitted by REML (it calls ``refitML``), logistic ones on the Laplace deviance over
  ``(theta, beta)`` (:mod:`multilevel.frequentist.deviance`). When the profile never reaches
  :math:`-z` before an sd reaches 0, the lower end is 0 (a correlation: -1 or 1), as lme4.
* ``"Wald"``: ``estimate -/+ z se`` for the fixed effects from the fit's covariance; lme4 gives
  none for variance parameters (NaN here, with the reason in ``note``).
* ``"boot"``: parametric bootstrap (lme4 ``bootMer``, percentile intervals): ``n_boot`` data
  sets simulated from the fit (new group effects from the estimated covariance, new residuals or
  binomial draws), each refitted with the fit's method; reproducible with ``seed``.

The table has ``group`` ('' for fixed effects, 'Residual' for the residual sd), ``term``,
``stat`` (``coef``, ``sd``, ``cor``), ``estimate`` (the fit's), ``lower`` and ``upper``.

Examples
--------
>>> from multilevel import datasets
>>> from multilevel.frequentist import fit_frequentist
>>> fit = fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> ci = fit.confint("Wald")
>>> ci.loc[ci["stat"] == "coef", ["lower", "upper"]].round(3).values.tolist()[1]
[7.438, 13.497]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from multilevel.design import Design
from multilevel.design.serial import ar_noise
from multilevel.design.types import require_rows
from multilevel.errors import SpecError
from multilevel.frequentist.deviance import GaussianDeviance, VarLayout, glmm_deviance, hessian
from multilevel.frequentist.serial_deviance import SerialGaussianDeviance

__all__ = ["CONFINT_METHODS", "check_level", "confint_table"]

CONFINT_METHODS = ("profile", "Wald", "boot")


class FrequentistFit(Protocol):
    """What the intervals read of a fit (:class:`multilevel.frequentist.FrequentistFit`)."""

    design: Design | None
    beta: pd.Series
    cov_fixed: pd.DataFrame
    sigma: float | None
    method: str
    n_agq: int
    phi: float | None
    correlation: str | None
    refit: Callable[..., Any] | None
    laplace: Callable[[], tuple[Any, list[int]]] | None

    def variance_components(self) -> pd.DataFrame: ...
_EDGE = 1e-9  # distance kept from a correlation of +/-1


def check_level(level: float) -> float:
    """``level`` if it lies in (0, 1), else a SpecError."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise SpecError(f"level must lie in (0, 1), e.g. 0.95; got {level!r}.")
    return float(level)


def _var_values(fit: FrequentistFit, layout: VarLayout) -> np.ndarray:
    """The fit's sds, correlations (and sigma) in ``layout`` order."""
    table = fit.variance_components().set_index(["group", "term", "stat"])["estimate"]
    return np.array([table[name] for name in layout.names], dtype=float)


def _rows(fit: FrequentistFit, layout: VarLayout) -> pd.DataFrame:
    names = list(layout.names) + [("", t, "coef") for t in fit.beta.index]
    table = pd.DataFrame(names, columns=["group", "term", "stat"])
    table["estimate"] = np.r_[_var_values(fit, layout), fit.beta.to_numpy(float)]
    return table


def _layout(fit: FrequentistFit) -> VarLayout:
    return VarLayout.of(fit.design, sigma=fit.sigma is not None, phi=fit.phi is not None)


# ---------------------------------------------------------------- Wald


def _wald(fit: FrequentistFit, level: float) -> pd.DataFrame:
    table = _rows(fit, _layout(fit))
    z = stats.norm.ppf(0.5 + level / 2)
    se = pd.Series(np.sqrt(np.diag(fit.cov_fixed.to_numpy(float))), index=fit.beta.index)
    coef = table["stat"] == "coef"
    half = table["term"].map(se).where(coef) * z
    table["lower"] = table["estimate"] - half
    table["upper"] = table["estimate"] + half
    table["note"] = np.where(coef, "", "Wald intervals exist for fixed effects only (as lme4)")
    return table


# ---------------------------------------------------------------- profile


def _deviance(fit: FrequentistFit):
    """The deviance on lme4's profiling scale, its minimiser and a step size per parameter."""
    design = fit.design
    layout = _layout(fit)
    if fit.sigma is not None:
        ref = fit if fit.method == "ML" else _refit(fit)(design, "ML")  # lme4's refitML
        dev = GaussianDeviance(design) if fit.phi is None else SerialGaussianDeviance(design)
    else:
        ref = fit
        if fit.laplace is None:
            raise SpecError("This fit cannot give its Laplace deviance: refit it.")
        devfun, offsets = fit.laplace()
        dev = glmm_deviance(devfun, layout, offsets)
    x = np.r_[_var_values(ref, layout), ref.beta.to_numpy(float)]
    cor = np.array([stat == "cor" for _, _, stat in layout.names] + [False] * len(ref.beta))
    x[cor] = np.nan_to_num(x[cor])  # a correlation with an sd of 0 is not identified: start at 0
    x[cor] = np.clip(x[cor], -1 + 1e3 * _EDGE, 1 - 1e3 * _EDGE)  # a singular fit's +/-1
    se = np.sqrt(np.diag(ref.cov_fixed.to_numpy(float)))
    var_step = [0.3 if stat in ("cor", "phi") else 0.25 * max(v, 1e-3 * np.abs(x).max())
                for (_, _, stat), v in zip(layout.names, x, strict=False)]
    return dev, x, np.r_[var_step, 1.9 * se], layout  # a fixed effect: near the Wald end


def _bounds(layout: VarLayout, n_beta: int,
            kind: str | None = None) -> list[tuple[float | None, float | None]]:
    out: list[tuple[float | None, float | None]] = []
    for group, _, stat in layout.names:
        if stat == "phi":  # ar1: -1 < phi < 1; car1: 0 <= phi < 1
            out.append((-1 + _EDGE if kind == "ar1" else 0.0, 1 - _EDGE))
        elif stat == "cor":
            out.append((-1 + _EDGE, 1 - _EDGE))
        elif group == "Residual":
            out.append((1e-12, None))
        else:
            out.append((0.0, None))
    return out + [(None, None)] * n_beta


class _Profile:
    """The signed root deviance of one parameter, minimised over all the others.

    For Gaussian models the fixed effects (and, when a fixed effect is profiled, sigma) are
    minimised in closed form (:meth:`GaussianDeviance.profiled`); only the variance
    parameters are searched numerically."""

    def __init__(self, dev, xhat: np.ndarray, bounds, k: int, hess=None,
                 simplex: bool = False) -> None:
        self.k, self.xhat, self.simplex = k, xhat.copy(), simplex
        n = len(xhat)
        if isinstance(dev, GaussianDeviance):
            nv = dev.layout.size
            if k < nv:  # a variance parameter: beta in closed form
                self.dev = lambda x: dev.profiled(x[:nv])
                self.free = np.array([j for j in range(nv) if j != k])
            else:  # a fixed effect: relative sds, sigma and the other betas in closed form
                sigma = xhat[nv - 1]
                rel = np.array([v / sigma if stat == "sd" else v for (g, _, stat), v in
                                zip(dev.layout.names, xhat, strict=False)])
                rel[nv - 1] = 1.0
                self.xhat[:nv] = rel
                self.dev = lambda x: dev.profiled(x[:nv], k - nv, x[k])
                self.free = np.arange(nv - 1)
        else:
            self.dev = dev
            self.free = np.array([j for j in range(n) if j != k])
        self.bounds = [bounds[j] for j in self.free]
        self.base = self.dev(self.xhat)
        self.start = self.xhat[self.free].copy()
        self.hess_inv = None
        if hess is not None and len(self.free):  # quasi-Newton from the optimum's curvature
            try:
                sub = hess[np.ix_(self.free, self.free)] / 2.0
                np.linalg.cholesky(sub)
                inv = np.linalg.inv(sub)
                self.hess_inv = (inv + inv.T) / 2.0
                np.linalg.cholesky(self.hess_inv)
            except np.linalg.LinAlgError:
                self.hess_inv = None

    def __call__(self, value: float) -> float:
        x = self.xhat.copy()
        x[self.k] = value

        def inner(free: np.ndarray) -> float:
            x[self.free] = free
            return self.dev(x)

        if len(self.free) and self.simplex:
            # three or more correlated terms: the valid correlations are not a box, so a
            # gradient search steps onto non-positive-definite matrices (infinite deviance);
            # Nelder-Mead only compares values
            res = optimize.minimize(inner, self.start, method="Nelder-Mead", bounds=self.bounds,
                                    options={"xatol": 1e-9, "fatol": 1e-10, "adaptive": True,
                                             "maxfev": 20000})
            d = float(res.fun)
            if np.isfinite(d):
                self.start = res.x
        elif len(self.free) and self.hess_inv is not None:
            res = optimize.minimize(inner, self.start, method="BFGS",
                                    options={"hess_inv0": self.hess_inv, "gtol": 1e-5,
                                             "xrtol": 1e-9})
            d = float(res.fun)
            if np.isfinite(d):
                self.start = res.x
        elif len(self.free):
            res = optimize.minimize(inner, self.start, method="L-BFGS-B", bounds=self.bounds,
                                    options={"ftol": 1e-12, "gtol": 1e-7, "maxiter": 2000})
            d = float(res.fun)
            if np.isfinite(d):
                self.start = res.x
        else:
            d = self.dev(x)
        if d < self.base:  # a better optimum than the fit's: rebase
            self.base = d
        return float(np.sign(value - self.xhat[self.k]) * np.sqrt(max(d - self.base, 0.0)))


_ZETA_TOL = 1e-4  # an endpoint's error in zeta: about 1e-4 / (2 z) of the interval's width


def _illinois(zeta, target: float, a: tuple[float, float], b: tuple[float, float],
              step: float) -> float:
    """Regula falsi (Illinois) for ``zeta = target`` in the bracket ``a``-``b`` of
    ``(x, zeta(x))`` pairs; the stored end values are never recomputed."""
    (xa, fa), (xb, fb) = (a[0], a[1] - target), (b[0], b[1] - target)
    side = 0
    for _ in range(100):
        if np.isfinite(fa) and np.isfinite(fb):
            x = (xa * fb - xb * fa) / (fb - fa)
        else:  # an infinite deviance at an end (a correlation of +/-1): bisect
            x = 0.5 * (xa + xb)
        f = zeta(x) - target
        if abs(f) < _ZETA_TOL or abs(xb - xa) < 1e-10 * step:
            return x
        if f * fb < 0:
            xa, fa = xb, fb
            side = 0
        else:
            fa = fa / 2 if side == 1 else fa
            side = 1
        xb, fb = x, f
    return x


def _end(zeta: _Profile, xhat: float, step: float, target: float, bound: float | None) -> float:
    """Where ``zeta`` crosses ``target`` on one side of ``xhat`` (``bound`` if it never does).

    The signed root deviance is nearly linear in a well-scaled parameter, so secant steps from
    ``xhat`` (where it is 0) reach the crossing in a few profile evaluations; once the crossing
    is bracketed, regula falsi finishes it (:data:`_ZETA_TOL`)."""
    sign = np.sign(target)
    last, z_last = xhat, 0.0
    v = xhat + sign * step
    for _ in range(60):
        if bound is not None and sign * (v - bound) >= 0:
            v = bound
        z = zeta(v)
        if abs(z - target) < _ZETA_TOL:
            return v
        if sign * (z - target) > 0:  # past the crossing: bracketed between last and v
            return _illinois(zeta, target, (last, z_last), (v, z), step)
        if v == bound:
            return bound
        slope = (z - z_last) / (v - last)
        reach = 4.0 * abs(v - xhat)
        if slope > 0:  # zeta rises with x: secant to the target, slightly past it to bracket
            nxt = v + 1.02 * (target - z) / slope
            nxt = v + sign * min(abs(nxt - v), reach)
        else:
            nxt = v + sign * reach
        last, z_last, v = v, z, nxt
    raise RuntimeError("the profile did not reach the interval end")


def _profile(fit: FrequentistFit, level: float) -> pd.DataFrame:
    dev, xhat, step, layout = _deviance(fit)
    bounds = _bounds(layout, len(fit.beta), fit.correlation)
    # logistic fits: the deviance's curvature at the optimum starts every inner quasi-Newton
    # search (the Laplace deviance is costly; this cuts the evaluations several-fold)
    hess = None if isinstance(dev, GaussianDeviance) else hessian(dev, xhat, 1e-4)
    simplex = any(q > 2 and cor for _, q, cor in layout.blocks)
    if hess is not None and not np.isfinite(hess).all():
        raise SpecError(
            "The Laplace deviance has no finite curvature at this fit's estimates: the fit is "
            "singular (a correlation matrix on its boundary), where profiles are unreliable "
            "(lme4's profile usually fails too). Use method='boot' or 'Wald', or simplify the "
            "random part."
        )
    table = _rows(fit, layout)
    z = stats.norm.ppf(0.5 + level / 2)

    def end(task: tuple[int, float]) -> float:
        k, target = task
        bound = bounds[k][0] if target < 0 else bounds[k][1]
        return _end(_Profile(dev, xhat, bounds, k, hess, simplex), xhat[k], step[k], target,
                    bound)

    tasks = [(k, t) for k in range(len(xhat)) for t in (-z, z)]
    if isinstance(dev, GaussianDeviance):  # fast enough in one thread
        ends = [end(t) for t in tasks]
    else:  # logistic: the Laplace deviance (Rust) runs without the GIL, one end per thread
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            ends = list(pool.map(end, tasks))
    lower, upper = ends[0::2], ends[1::2]
    cor = table["stat"].isin(["cor", "phi"]).to_numpy()  # a bound is reported as -1 / 1
    lower = np.where(cor & (np.asarray(lower) <= -1 + 2 * _EDGE), -1.0, lower)
    upper = np.where(cor & (np.asarray(upper) >= 1 - 2 * _EDGE), 1.0, upper)
    table["lower"], table["upper"] = lower, upper
    return table


# ---------------------------------------------------------------- parametric bootstrap


def _simulate(fit: FrequentistFit, rng: np.random.Generator) -> np.ndarray:
    design = fit.design
    eta = design.X @ fit.beta.to_numpy(float)
    for g, cov in zip(design.groups, fit.groups, strict=True):
        u = rng.multivariate_normal(np.zeros(g.n_terms), cov.cov, size=g.n_levels,
                                    method="eigh")
        eta = eta + np.einsum("nq,nq->n", g.Z, u[g.index])
    if fit.sigma is not None:
        return eta + fit.sigma * _residuals(design, fit.phi, rng)
    trials = design.trials if design.trials is not None else np.ones(len(eta))
    return rng.binomial(trials.astype(np.int64), expit(eta)).astype(float)


def _residuals(design: Design, phi: float | None, rng: np.random.Generator) -> np.ndarray:
    """Standard normal residuals, AR(1)/CAR(1)-correlated within each series when ``phi`` is
    given (:func:`multilevel.design.serial.ar_noise`)."""
    z = rng.standard_normal(design.n_obs)
    if phi is None:
        return z
    ser = design.serial
    return ar_noise(ser.first, ser.second, ser.lag, phi, z)


def _refit(fit: FrequentistFit):
    if fit.refit is None:
        raise SpecError("This fit does not know how to refit itself: refit it with "
                        "fit_frequentist.")
    return fit.refit


def _boot(fit: FrequentistFit, level: float, n_boot: int, seed, progress: bool) -> pd.DataFrame:
    fit_mixed = _refit(fit)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 10:
        raise SpecError(f"n_boot must be a whole number >= 10, got {n_boot!r}.")
    rng = np.random.default_rng(seed)
    layout = _layout(fit)
    table = _rows(fit, layout)
    draws, failed = [], 0
    for b in range(n_boot):
        design = replace(fit.design, y=_simulate(fit, rng))
        try:
            refit = fit_mixed(design, fit.method, fit.n_agq)
            draws.append(np.r_[_var_values(refit, layout), refit.beta.to_numpy(float)])
        except Exception:  # a simulated data set the model cannot be fitted to
            failed += 1
        if progress and (b + 1) % max(1, n_boot // 20) == 0:
            print(f"\rbootstrap {b + 1}/{n_boot}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    arr = np.asarray(draws)
    tail = (1 - level) / 2
    table["lower"] = np.nanquantile(arr, tail, axis=0)
    table["upper"] = np.nanquantile(arr, 1 - tail, axis=0)
    table["note"] = f"{len(draws)} of {n_boot} bootstrap refits" + (
        f" ({failed} failed)" if failed else "")
    return table


def confint_table(
    fit: FrequentistFit,
    method: str = "profile",
    level: float = 0.95,
    *,
    n_boot: int = 500,
    seed: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The interval table of ``fit`` by ``method`` (module docstring)."""
    level = check_level(level)
    if fit.design is None:
        raise SpecError("This fit does not hold its design: refit it to compute intervals.")
    if method in ("profile", "boot"):
        require_rows(fit.design, f"confint(method={method!r})")
    if method == "profile":
        return _profile(fit, level)
    if method == "Wald":
        return _wald(fit, level)
    if method == "boot":
        return _boot(fit, level, n_boot, seed, progress)
    raise SpecError(f"method={method!r} is not an option: use one of {CONFINT_METHODS}.")
