r"""Diagonal blocks of the inverse of a random-effect precision, by one Schur complement.

The conditional covariance of the random effects (lme4's ``condVar``) needs only the per-level
diagonal blocks of :math:`P^{-1}`, :math:`P = \Lambda^\top Z^\top W Z \Lambda + I`. Solving
:math:`P` against every column (what mixedlm does) costs one sparse triangular solve pair per
random effect, slow for crossed factors whose Cholesky factor fills in (InstEval: 4,114
effects, 2.0 s). Here the columns of the factor with the most effects, ``K``, are eliminated
first: every row of the data has exactly one level of that factor, so :math:`P_{KK}` is block
diagonal (one :math:`q \times q` block per level) and its inverse is a batch of small inverses.
With ``R`` the remaining columns, :math:`S = P_{RR} - P_{RK} P_{KK}^{-1} P_{KR}` (dense,
:math:`|R| \times |R|`) gives

.. math::

    (P^{-1})_{RR} = S^{-1}, \qquad
    (P^{-1})_{KK} = P_{KK}^{-1} + G S^{-1} G^\top, \quad G = P_{KK}^{-1} P_{KR},

of which only the level blocks of the second are formed (InstEval: 0.05 s). For one grouping
factor ``R`` is empty and the result is the block inverse itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

__all__ = ["MAX_DENSE", "Block", "inverse_diagonal_blocks"]

MAX_DENSE = 6000  # largest remainder |R| formed densely (288 MB); beyond it, return None


@dataclass(frozen=True)
class Block:
    """Columns ``offset + level * n_terms + term`` of one grouping factor (level-major)."""

    offset: int
    n_levels: int
    n_terms: int

    @property
    def size(self) -> int:
        return self.n_levels * self.n_terms

    def columns(self) -> np.ndarray:
        return np.arange(self.offset, self.offset + self.size)


def inverse_diagonal_blocks(
    precision: sparse.spmatrix, blocks: list[Block], max_dense: int = MAX_DENSE
) -> list[np.ndarray] | None:
    """The level blocks of ``inv(precision)``, one ``(n_levels, q, q)`` array per block.

    Returns None when the columns outside the largest block exceed ``max_dense`` (the caller
    then solves column by column).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Z = sparse.hstack([sparse.eye(6).tocsr()[rng.integers(0, 6, 40)],
    ...                    sparse.eye(3).tocsr()[rng.integers(0, 3, 40)]]).tocsc()
    >>> P = (Z.T @ Z + sparse.eye(9)).tocsc()
    >>> out = inverse_diagonal_blocks(P, [Block(0, 6, 1), Block(6, 3, 1)])
    >>> full = np.linalg.inv(P.toarray())
    >>> bool(np.allclose(out[0][:, 0, 0], np.diag(full)[:6]))
    True
    >>> bool(np.allclose(out[1][:, 0, 0], np.diag(full)[6:]))
    True
    """
    P = sparse.csr_matrix(precision)
    big = max(range(len(blocks)), key=lambda i: blocks[i].size)
    K = blocks[big].columns()
    R = np.setdiff1d(np.arange(P.shape[0]), K)
    if len(R) > max_dense:
        return None
    q, n = blocks[big].n_terms, blocks[big].n_levels
    kk = P[K][:, K].tocoo()  # block diagonal: one q x q block per level
    same = kk.row // q == kk.col // q
    diag_kk = np.zeros((n, q, q))
    diag_kk[kk.row[same] // q, kk.row[same] % q, kk.col[same] % q] = kk.data[same]
    inv_kk = np.linalg.inv(diag_kk)
    out: list[np.ndarray | None] = [None] * len(blocks)
    if len(R) == 0:
        out[big] = inv_kk
        return out  # type: ignore[return-value]
    inv_kk_sparse = sparse.block_diag(list(inv_kk), format="csr")
    G = (inv_kk_sparse @ P[K][:, R]).tocsr()  # |K| x |R|
    S = P[R][:, R].toarray() - (P[R][:, K] @ G).toarray()
    S_inv = linalg.cho_solve((linalg.cholesky(S, lower=True), True), np.eye(len(R)))
    H = np.asarray(G @ S_inv)  # |K| x |R|, dense
    extra = np.empty((n, q, q))
    rows = np.arange(n) * q
    for a in range(q):
        for b in range(q):
            extra[:, a, b] = np.asarray(G[rows + a].multiply(H[rows + b]).sum(axis=1)).ravel()
    out[big] = inv_kk + extra
    position = {col: i for i, col in enumerate(R)}
    for i, blk in enumerate(blocks):
        if i == big:
            continue
        r = np.array([position[c] for c in blk.columns()]).reshape(blk.n_levels, blk.n_terms)
        out[i] = S_inv[r[:, :, None], r[:, None, :]]
    return out  # type: ignore[return-value]
