"""Exact draws of the group effects after a marginal fit.

Given each posterior draw of the hyperparameters, the group effects of a marginal Gaussian
model are conditionally normal (with AR(1)/CAR(1) residuals, from the ``R(phi)^-1``-weighted
statistics of that draw's ``phi``) (:mod:`multilevel.model.marginal`): ``v_j | y ~ N(M_j^-1 w_j /
sigma^2, M_j^-1)`` and ``u_j = Lambda v_j`` for one factor, and a two-stage draw (outer, then
cells given outer) for two nested ones (:mod:`multilevel.engine.kernels.nested`). The draws are
added to the posterior as ``u_<g>``, so every table and plot sees the same variables as after a
non-centered fit.

Examples
--------
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...                        draws=50, tune=50, chains=1, seed=1, progressbar=False, frequentist=False)
>>> fit.posterior["u_Subject"].shape
(1, 50, 18, 2)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from multilevel import naming
from multilevel.design import Design, GroupDesign
from multilevel.design.serial import SerialStats
from multilevel.design.statistics import NestedStats, SufficientStats, marginal_statistics, nesting
from multilevel.engine.args import HyperArgs
from multilevel.engine.kernels.hyper import beta_draws
from multilevel.engine.kernels.marginal import recover_draws
from multilevel.engine.kernels.nested import nested_recover_draws
from multilevel.engine.kernels.serial import serial_recover_draws
from multilevel.errors import SpecError

__all__ = [
    "GROUP_DRAWS_BYTES",
    "SUMMARY_PROBS",
    "effect_draws",
    "lambda_draws",
    "over_draws",
    "recover_fixed_effects",
    "recover_group_effects",
]

#: ``group_draws='auto'`` keeps the group effects' draws up to this many bytes, else summaries.
GROUP_DRAWS_BYTES = 500 * 1024**2
#: Central interval probabilities whose quantiles the summaries keep (with the median).
SUMMARY_PROBS = (0.5, 0.8, 0.89, 0.9, 0.95, 0.99)
#: Outer levels recovered per chunk in summary mode (each chunk has its own random stream).
_CHUNK_LEVELS = 256


def recover_group_effects(idata, design: Design, seed: int | None = None, *,
                          stats: SufficientStats | NestedStats | SerialStats | None = None,
                          group_draws: str = "full") -> tuple[Any, str | None]:
    """Add exact draws of the group effects ``u`` to the posterior (module docstring);
    ``stats`` are the design's statistics when already computed. With ``group_draws='summary'``
    (or ``'auto'`` when the draws would exceed :data:`GROUP_DRAWS_BYTES`) only per-level
    summaries are kept (:func:`summarise_group_effects`). Returns the idata and a note saying
    which was done (None for full draws)."""
    stats = marginal_statistics(design) if stats is None else stats
    mode = resolve_group_draws(idata, design, group_draws)
    if mode == "summary":
        return summarise_group_effects(idata, design, stats, seed)
    if isinstance(stats, NestedStats):
        return _recover_nested(idata, design, stats, seed), None
    g = design.groups[0]
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    b = post[naming.FIXED].transpose("chain", "draw", ...).to_numpy().reshape(n_chain * n_draw, -1)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    lam = lambda_draws(post, g)
    eps = np.random.default_rng(seed).standard_normal((n_chain * n_draw, g.n_levels, g.n_terms))
    b = np.ascontiguousarray(b)
    if isinstance(stats, SerialStats):  # the statistics depend on each draw's phi
        phi = post[naming.PHI].transpose("chain", "draw").to_numpy().ravel()

        def run(s: slice) -> np.ndarray:
            return serial_recover_draws(b[s], lam[s], sigma[s], phi[s], *stats.kernel_args(),
                                        eps[s])
    else:
        def run(s: slice) -> np.ndarray:
            return recover_draws(b[s], lam[s], sigma[s], stats.ztz, stats.ztx, stats.zty, eps[s])
    u = over_draws(run, len(sigma))
    u = u.reshape(n_chain, n_draw, g.n_levels, g.n_terms)
    dims = ("chain", "draw", naming.level_dim(g.factor), naming.term_dim(g.factor))
    coords = {
        "chain": post["chain"], "draw": post["draw"],
        naming.level_dim(g.factor): list(g.levels), naming.term_dim(g.factor): list(g.term_names),
    }
    effect = xr.DataArray(u, dims=dims, coords=coords)
    idata["posterior"] = xr.DataTree(post.assign({naming.effect_name(g.factor): effect}))
    return idata, None


def recover_fixed_effects(idata, design: Design, args: HyperArgs, seed: int | None):
    """Add exact draws of the fixed effects ``b | Lambda, sigma, y`` to the posterior of a fit
    that sampled the hyperparameters alone (:mod:`multilevel.engine.kernels.hyper`), first among
    its variables. The noise comes from its own stream (``seed``, spawn key 1), independent of
    the group effects' (drawn next, given these ``b``)."""
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    n, p = n_chain * n_draw, len(design.fixed_names)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    lam = lambda_draws(post, design.groups[0])
    eps = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))).standard_normal((n, p))

    def run(s: slice) -> np.ndarray:
        return beta_draws(lam[s], sigma[s], args.ztz, args.ztx, args.zty, args.xtx, args.xty,
                          args.b_mean, args.b_prec, eps[s])

    b = xr.DataArray(over_draws(run, n).reshape(n_chain, n_draw, p),
                     dims=("chain", "draw", naming.FIXED_DIM),
                     coords={"chain": post["chain"], "draw": post["draw"],
                             naming.FIXED_DIM: list(design.fixed_names)})
    data = xr.Dataset({naming.FIXED: b}).merge(post, compat="override", join="exact")
    idata["posterior"] = xr.DataTree(data.assign_attrs(post.attrs))
    return idata


def over_draws(run: Callable[[slice], np.ndarray], n: int) -> np.ndarray:
    """``run`` over ``n`` draws in one contiguous slice per core, in threads (the compiled
    kernels release the GIL), the results concatenated along the first axis: the same numbers
    as ``run(slice(0, n))``.

    Examples
    --------
    >>> over_draws(lambda s: np.arange(10)[s] * 2, 10).tolist()
    [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    """
    workers = max(1, min(n, os.cpu_count() or 1))
    edges = np.linspace(0, n, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.concatenate(list(pool.map(run, [slice(a, b) for a, b in
                                                  zip(edges[:-1], edges[1:], strict=True)])))


def lambda_draws(posterior: xr.Dataset, group: GroupDesign) -> np.ndarray:
    """``(chain * draw, q, q)`` draws of ``Lambda = diag(sd) L`` of one factor."""
    q = group.n_terms
    sd = posterior[naming.sd_name(group.factor)].transpose("chain", "draw", ...).to_numpy()
    cor_key = naming.corchol_name(group.factor)
    if cor_key in posterior:
        chol = posterior[cor_key].transpose("chain", "draw", ...).to_numpy()
    else:
        chol = np.broadcast_to(np.eye(q), sd.shape + (q,))
    return np.ascontiguousarray((sd[..., :, None] * chol).reshape(-1, q, q))


def _recover_nested(idata, design: Design, stats: NestedStats, seed: int | None):
    """Add exact draws of both factors' effects ``u`` to the posterior."""
    outer, inner = (design.groups[k] for k in nesting(design))
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    n = n_chain * n_draw
    b = post[naming.FIXED].transpose("chain", "draw", ...).to_numpy().reshape(n, -1)
    sigma = post[naming.SIGMA].transpose("chain", "draw").to_numpy().ravel()
    rng = np.random.default_rng(seed)
    eps1 = rng.standard_normal((n, outer.n_levels, outer.n_terms))
    eps2 = rng.standard_normal((n, inner.n_levels, inner.n_terms))
    u1, u2_cells = nested_recover_draws(
        np.ascontiguousarray(b), lambda_draws(post, outer), lambda_draws(post, inner), sigma,
        *stats.kernel_args()[:8], eps1, eps2)
    u2 = np.empty_like(u2_cells)
    u2[:, stats.cell_level] = u2_cells
    new = {}
    for g, u in ((outer, u1), (inner, u2)):
        level, term = naming.level_dim(g.factor), naming.term_dim(g.factor)
        new[naming.effect_name(g.factor)] = xr.DataArray(
            u.reshape(n_chain, n_draw, g.n_levels, g.n_terms), dims=("chain", "draw", level, term),
            coords={"chain": post["chain"], "draw": post["draw"], level: list(g.levels),
                    term: list(g.term_names)})
    idata["posterior"] = xr.DataTree(post.assign(new))
    return idata


def _draw_bytes(idata, design: Design) -> int:
    post = idata["posterior"]
    n = post.sizes["chain"] * post.sizes["draw"]
    return 8 * n * sum(g.n_levels * g.n_terms for g in design.groups)


def resolve_group_draws(idata, design: Design, group_draws: str) -> str:
    """``'full'`` or ``'summary'`` for ``group_draws`` ``'auto'``/``'full'``/``'summary'``."""
    if group_draws not in ("auto", "full", "summary"):
        raise SpecError(f"group_draws={group_draws!r} is not an option: use 'auto' (full draws up "
                        f"to {GROUP_DRAWS_BYTES // 1024**2} MB), 'full' or 'summary'.")
    if group_draws == "summary" and design.serial is not None:
        raise SpecError("group_draws='summary' is not available with ar1()/car1() residuals: "
                        "use 'full'.")
    if group_draws == "auto":
        big = _draw_bytes(idata, design) > GROUP_DRAWS_BYTES and design.serial is None
        return "summary" if big else "full"
    return group_draws


def _flat_draws(post: xr.Dataset, name: str) -> np.ndarray:
    arr = post[name].transpose("chain", "draw", ...).to_numpy()
    return np.ascontiguousarray(arr.reshape((-1,) + arr.shape[2:]))


def _chunk_draws(post: xr.Dataset, design: Design, stats, seed: int, chunk: int):
    """Exact draws of the effects of one chunk of (outer) levels: ``{factor: (levels, draws)}``
    with ``levels`` the design's level positions and ``draws`` ``(draws, levels, terms)``; the
    chunk's noise comes from its own stream ``(seed, chunk)``, so any chunk can be redrawn."""
    rng = np.random.default_rng([seed, chunk])
    b, sigma = _flat_draws(post, naming.FIXED), _flat_draws(post, naming.SIGMA)
    n = b.shape[0]
    if isinstance(stats, NestedStats):
        outer, inner = (design.groups[k] for k in nesting(design))
        lo = chunk * _CHUNK_LEVELS
        hi = min(lo + _CHUNK_LEVELS, outer.n_levels)
        c0, c1 = stats.cell_start[lo], stats.cell_start[hi]
        eps1 = rng.standard_normal((n, hi - lo, outer.n_terms))
        eps2 = rng.standard_normal((n, c1 - c0, inner.n_terms))
        u1, u2 = nested_recover_draws(
            b, lambda_draws(post, outer), lambda_draws(post, inner), sigma, stats.g1[lo:hi],
            stats.z1x[lo:hi], stats.z1y[lo:hi], stats.a2[c0:c1], stats.c12[c0:c1],
            stats.z2x[c0:c1], stats.z2y[c0:c1], stats.cell_start[lo:hi + 1] - c0, eps1, eps2)
        return {outer.factor: (np.arange(lo, hi), u1),
                inner.factor: (stats.cell_level[c0:c1], u2)}
    g = design.groups[0]
    lo, hi = chunk * _CHUNK_LEVELS, min((chunk + 1) * _CHUNK_LEVELS, g.n_levels)
    eps = rng.standard_normal((n, hi - lo, g.n_terms))
    u = recover_draws(b, lambda_draws(post, g), sigma, stats.ztz[lo:hi], stats.ztx[lo:hi],
                      stats.zty[lo:hi], eps)
    return {g.factor: (np.arange(lo, hi), u)}


def _n_chunks(design: Design, stats) -> int:
    outer = design.groups[nesting(design)[0]] if isinstance(stats, NestedStats) else design.groups[0]
    return -(-outer.n_levels // _CHUNK_LEVELS)


def summary_labels() -> list[str]:
    """The ``summary`` coordinate: mean, sd, then the quantiles of :data:`SUMMARY_PROBS`."""
    qs = sorted({0.5} | {round((1 - p) / 2, 6) for p in SUMMARY_PROBS}
                | {round((1 + p) / 2, 6) for p in SUMMARY_PROBS})
    return ["mean", "sd"] + [f"q{q:g}" for q in qs]


def _describe(draws: np.ndarray) -> np.ndarray:
    """``(levels, terms, stats)`` summaries of ``(draws, levels, terms)``; the quantiles by
    numpy's default (linear) rule from one sort of the draws."""
    qs = np.array([float(lab[1:]) for lab in summary_labels()[2:]])
    out = np.empty(draws.shape[1:] + (2 + len(qs),))
    out[..., 0] = draws.mean(axis=0)
    out[..., 1] = draws.std(axis=0, ddof=1)
    ordered = np.sort(draws, axis=0)
    pos = qs * (draws.shape[0] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, draws.shape[0] - 1)
    frac = (pos - lo)[:, None, None]
    below, above = ordered[lo], ordered[hi]
    out[..., 2:] = np.moveaxis(below + frac * (above - below), 0, -1)
    return out


def summarise_group_effects(idata, design: Design, stats, seed: int | None):
    """Per level and term summaries (:func:`summary_labels`) of the group effects ``u`` and of
    the coefficients ``b + u`` (terms that are also fixed effects), computed chunk by chunk of
    :data:`_CHUNK_LEVELS` levels so that the draws never exist all at once; stored in the idata
    group :data:`naming.GROUP_SUMMARIES` with the seed that redraws any chunk (:func:`effect_draws`)."""
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
    post = idata["posterior"].to_dataset()
    b = _flat_draws(post, naming.FIXED)
    labels = summary_labels()
    out = {g.factor: (np.empty((g.n_levels, g.n_terms, len(labels))),
                      np.full((g.n_levels, g.n_terms, len(labels)), np.nan)) for g in design.groups}

    def one(chunk: int) -> None:
        for factor, (levels, u) in _chunk_draws(post, design, stats, seed, chunk).items():
            g = design.group(factor)
            fixed = [k for k, t in enumerate(g.term_names) if t in design.fixed_names]
            cols = [design.fixed_names.index(g.term_names[k]) for k in fixed]
            both = _describe(np.concatenate([u, u[..., fixed] + b[:, None, cols]], axis=2))
            out[factor][0][levels] = both[:, :g.n_terms]
            out[factor][1][levels[:, None], fixed] = both[:, g.n_terms:]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # numba, sort: no GIL
        list(pool.map(one, range(_n_chunks(design, stats))))
    data = {}
    for g in design.groups:
        dims = (naming.level_dim(g.factor), naming.term_dim(g.factor), "summary")
        coords = {dims[0]: list(g.levels), dims[1]: list(g.term_names), "summary": labels}
        data[naming.effect_name(g.factor)] = xr.DataArray(out[g.factor][0], dims=dims, coords=coords)
        data[naming.coef_name(g.factor)] = xr.DataArray(out[g.factor][1], dims=dims,
                                                                   coords=coords)
    idata[naming.GROUP_SUMMARIES] = xr.DataTree(xr.Dataset(data, attrs={"seed": seed}))
    size = _draw_bytes(idata, design) / 1024**2
    note = (f"The group effects' draws ({size:,.0f} MB) are not kept (group_draws='summary'): "
            "every table uses per-level summaries computed chunk by chunk (mean, sd and the "
            f"quantiles of the {', '.join(f'{p:g}' for p in SUMMARY_PROBS)} intervals), and "
            "predictions for known groups redraw the effects of the groups they need.")
    return idata, note


def effect_draws(idata, design: Design, factor: str, levels: np.ndarray) -> np.ndarray:
    """``(draws, len(levels), terms)`` draws of the effects of ``levels`` (positions) of
    ``factor``: read from the posterior, or, when only summaries were kept, redrawn exactly as
    :func:`summarise_group_effects` drew them (the same chunks and streams)."""
    levels = np.asarray(levels, dtype=np.int64)
    post = idata["posterior"].to_dataset()
    name = naming.effect_name(factor)
    if name in post:
        return _flat_draws(post, name)[:, levels]
    stats = marginal_statistics(design)
    seed = int(idata[naming.GROUP_SUMMARIES].attrs["seed"])
    g = design.group(factor)
    out = np.empty((post.sizes["chain"] * post.sizes["draw"], len(levels), g.n_terms))
    if isinstance(stats, NestedStats) and design.groups[nesting(design)[1]].factor == factor:
        chunks = stats.cell_parent[stats.level_cell[levels]] // _CHUNK_LEVELS
    else:
        chunks = levels // _CHUNK_LEVELS
    for chunk in np.unique(chunks):
        got, u = _chunk_draws(post, design, stats, seed, int(chunk))[factor]
        pos = {int(lv): k for k, lv in enumerate(got)}
        want = np.flatnonzero(chunks == chunk)
        out[:, want] = u[:, [pos[int(lv)] for lv in levels[want]]]
    return out
