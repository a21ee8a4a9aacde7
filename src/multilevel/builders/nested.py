"""Two nested grouping factors with the group effects integrated out (``(1 | school/class)``).

The mathematics is in :mod:`multilevel.builders.fastnested` (the compiled kernel nutpie
samples). This module finds the nesting, computes the per-cell sufficient statistics in one
pass over the rows, writes the same log-likelihood as a PyTensor expression for PyMC's own
sampler (the readable definition: per cell ``M_k = I + P2'A_kP2``, per outer group
``N_j = I + P1'B_jP1`` with ``B_j = G1_j - sum_k F_k'F_k``, ``F_k = chol(M_k)^-1 P2'C12_k'``),
and adds the exact conditional draws of both factors' effects to a posterior.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from multilevel import ModelSpec
>>> from multilevel.design import build_design
>>> df = pd.DataFrame({"y": np.arange(12.0) % 5, "school": list("aaaabbbbcccc"),
...                    "klass": list("xxyyxxyyxxyy")})
>>> d = build_design(ModelSpec.from_formula("y ~ 1 + (1 | school/klass)"), df)
>>> outer, inner = nesting(d)
>>> d.groups[outer].factor, d.groups[inner].factor
('school', 'school:klass')
>>> nested_stats(d).cell_start.tolist()  # two classes in each of three schools
[0, 2, 4, 6]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from multilevel import naming
from multilevel.design import Design, GroupDesign

__all__ = [
    "NestedStats",
    "nested_marginal_loglik",
    "nested_stats",
    "nesting",
    "recover_nested_effects",
]


@dataclass(frozen=True)
class NestedStats:
    """Sufficient statistics of two nested factors; cells (inner levels) sorted by outer group,
    ``cell_start[j]:cell_start[j+1]`` the cells of outer group ``j``, ``cell_level[k]`` the
    inner level of cell ``k``."""

    g1: np.ndarray  # (J, q1, q1)  Z1'Z1
    z1x: np.ndarray  # (J, q1, p)
    z1y: np.ndarray  # (J, q1)
    a2: np.ndarray  # (K, q2, q2)  Z2'Z2
    c12: np.ndarray  # (K, q1, q2)  Z1'Z2
    z2x: np.ndarray  # (K, q2, p)
    z2y: np.ndarray  # (K, q2)
    cell_start: np.ndarray  # (J + 1,)
    cell_level: np.ndarray  # (K,)
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    n_total: float

    def kernel_args(self) -> tuple:
        """The statistics in the order of :func:`fastnested.nested_loglik_grad`."""
        return (self.g1, self.z1x, self.z1y, self.a2, self.c12, self.z2x, self.z2y,
                self.cell_start, self.xtx, self.xty, self.yty, self.n_total)


def _parent(inner: GroupDesign, outer: GroupDesign) -> np.ndarray | None:
    """Outer level of every inner level when ``inner`` is nested in ``outer``, else None."""
    parent = np.full(inner.n_levels, -1)
    parent[inner.index] = outer.index
    if np.any(parent < 0) or np.any(parent[inner.index] != outer.index):
        return None
    return parent


def nesting(design: Design) -> tuple[int, int] | None:
    """Positions ``(outer, inner)`` in ``design.groups`` when there are exactly two grouping
    factors and one is nested in the other (each of its levels inside one level of the other,
    with more levels); None otherwise."""
    if len(design.groups) != 2:
        return None
    a, b = design.groups
    for outer, inner, pos in ((a, b, (0, 1)), (b, a, (1, 0))):
        if inner.n_levels > outer.n_levels and _parent(inner, outer) is not None:
            return pos
    return None


def nested_stats(design: Design) -> NestedStats:
    """One pass over the rows: per outer group and per cell sums (see :class:`NestedStats`)."""
    pos = nesting(design)
    if pos is None:
        raise ValueError("the design has no two nested grouping factors")
    outer, inner = design.groups[pos[0]], design.groups[pos[1]]
    parent = _parent(inner, outer)
    order = np.argsort(parent, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    cell = rank[inner.index]
    X, y, z1, z2 = design.X, design.y, outer.Z, inner.Z
    n_outer, n_cells = outer.n_levels, inner.n_levels

    def total(idx, n, a, b):
        out = np.zeros((n, a.shape[1], b.shape[1]))
        np.add.at(out, idx, a[:, :, None] * b[:, None, :])
        return out

    return NestedStats(
        g1=total(outer.index, n_outer, z1, z1), z1x=total(outer.index, n_outer, z1, X),
        z1y=total(outer.index, n_outer, z1, y[:, None])[:, :, 0],
        a2=total(cell, n_cells, z2, z2), c12=total(cell, n_cells, z1, z2),
        z2x=total(cell, n_cells, z2, X), z2y=total(cell, n_cells, z2, y[:, None])[:, :, 0],
        cell_start=np.r_[0, np.cumsum(np.bincount(parent, minlength=n_outer))].astype(np.int64),
        cell_level=order.astype(np.int64), xtx=X.T @ X, xty=X.T @ y, yty=float(y @ y),
        n_total=float(y.shape[0]),
    )


def nested_marginal_loglik(stats: NestedStats, b, lam1, lam2, sigma):
    """PyTensor expression of ``log p(y | b, Lambda1, Lambda2, sigma)`` (module docstring)."""
    q1, q2 = stats.g1.shape[1], stats.a2.shape[1]
    n_outer = stats.g1.shape[0]
    cell_outer = np.repeat(np.arange(n_outer), np.diff(stats.cell_start))
    sigma2 = sigma**2
    p1, p2 = lam1 / sigma, lam2 / sigma
    rss = stats.yty - 2 * pt.dot(b, stats.xty) + pt.dot(b, pt.dot(stats.xtx, b))
    t1 = stats.z1y - pt.tensordot(stats.z1x, b, axes=[[2], [0]])  # (J, q1)
    t2 = stats.z2y - pt.tensordot(stats.z2x, b, axes=[[2], [0]])  # (K, q2)
    m = pt.eye(q2) + pt.matmul(pt.matmul(p2.T, stats.a2), p2)
    chol_m = pt.linalg.cholesky(m)
    h = pt.linalg.solve_triangular(chol_m, pt.dot(t2, p2)[:, :, None], lower=True)  # (K, q2, 1)
    f = pt.linalg.solve_triangular(
        chol_m, pt.matmul(p2.T, stats.c12.transpose(0, 2, 1)), lower=True)  # (K, q2, q1)
    ftf = pt.matmul(f.transpose(0, 2, 1), f)
    fth = pt.matmul(f.transpose(0, 2, 1), h)[:, :, 0]
    big_b = pt.inc_subtensor(pt.zeros((n_outer, q1, q1))[cell_outer], ftf)
    c = pt.inc_subtensor(pt.zeros((n_outer, q1))[cell_outer], fth)
    n_mat = pt.eye(q1) + pt.matmul(pt.matmul(p1.T, stats.g1 - big_b), p1)
    chol_n = pt.linalg.cholesky(n_mat)
    g = pt.linalg.solve_triangular(chol_n, pt.dot(t1 - c, p1)[:, :, None], lower=True)
    logdet = (2 * pt.log(pt.diagonal(chol_m, axis1=1, axis2=2)).sum()
              + 2 * pt.log(pt.diagonal(chol_n, axis1=1, axis2=2)).sum())
    quad = (rss - (h**2).sum() - (g**2).sum()) / sigma2
    return -0.5 * stats.n_total * pt.log(2 * np.pi * sigma2) - 0.5 * logdet - 0.5 * quad


def lambda_draws(posterior: xr.Dataset, group: GroupDesign) -> np.ndarray:
    """``(chain * draw, q, q)`` draws of ``Lambda = diag(sd) L`` of one factor."""
    q = group.n_terms
    sd = posterior[naming.sd_name(group.factor)].transpose("chain", "draw", ...).to_numpy()
    cor_key = f"corchol_{naming.group_key(group.factor)}"
    if cor_key in posterior:
        chol = posterior[cor_key].transpose("chain", "draw", ...).to_numpy()
    else:
        chol = np.broadcast_to(np.eye(q), sd.shape + (q,))
    return np.ascontiguousarray((sd[..., :, None] * chol).reshape(-1, q, q))


def recover_nested_effects(idata, design: Design, seed: int | None = None):
    """Add exact draws of both factors' effects ``u`` to the posterior."""
    from multilevel.builders.fastnested import nested_recover_draws

    outer, inner = (design.groups[k] for k in nesting(design))
    stats = nested_stats(design)
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
