"""Conditional variances of the random effects (lme4's ``condVar``) from the level blocks of the
inverse precision (:mod:`multilevel.frequentist.condvar`), against mixedlm's column-by-column
solves and a dense inverse, and the crossed InstEval REML fit against lme4
(``tests/reference/insteval_lme4.R``).

Tolerances: the two condVar computations are the same algebra done two ways, so 1e-10
relative; InstEval uses the lme4 tolerances of ``test_frequentist_lme4.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from multilevel import ModelSpec, datasets
from multilevel.design import build_design
from multilevel.frequentist import fit_frequentist, mixed
from multilevel.frequentist.condvar import Block, inverse_diagonal_blocks

REFERENCE = Path(__file__).parent / "reference" / "insteval_lme4.json"
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def _mixedlm_result(dataset: str, formula: str, family: str):
    design = build_design(ModelSpec.from_formula(formula, family=family), datasets.load(dataset))
    frame, mformula, weights = mixed._mixedlm_data(design)
    method = "REML" if family == "gaussian" else "Laplace"
    res, _ = mixed._run_mixedlm(design.spec, method, 1, frame, mformula, weights)
    return res


@pytest.mark.parametrize(
    ("dataset", "formula", "family"),
    [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian"),
        ("sleepstudy", "Reaction ~ Days + (Days || Subject)", "gaussian"),
        ("hsb82", "mAch ~ cses + (1 + cses | school) + (1 | sector)", "gaussian"),
        ("radon", "log_radon ~ floor + (1 + floor | county)", "gaussian"),
        ("contraception", "use ~ urban + age + (1 + urban | district) + (1 | livch)", "bernoulli"),
    ],
)
def test_conditional_variances_equal_mixedlm(dataset: str, formula: str, family: str) -> None:
    res = _mixedlm_result(dataset, formula, family)
    ours = mixed._conditional_variances(res)
    theirs = res.ranef(condVar=True).condVar
    assert ours is not None and set(ours) == set(theirs)
    for g, terms in theirs.items():
        ref = np.column_stack([np.asarray(v, float) for v in terms.values()])
        np.testing.assert_allclose(ours[g], ref, rtol=1e-10)


def test_too_large_remainder_defers_to_mixedlm() -> None:
    res = _mixedlm_result("hsb82", "mAch ~ cses + (1 | school) + (1 | sector)", "gaussian")
    assert mixed._conditional_variances(res, max_dense=1) is None
    assert mixed._conditional_variances(res, max_dense=2) is not None


def test_blocks_match_a_dense_inverse_with_correlated_crossed_terms() -> None:
    rng = np.random.default_rng(3)
    n, g1, g2 = 300, 40, 7
    x = rng.normal(size=n)
    rows = [np.c_[np.ones(n), x], np.c_[np.ones(n), -x]]  # two crossed (1 + x) terms
    codes = [rng.integers(0, g1, n), rng.integers(0, g2, n)]
    Z = sparse.hstack([
        sparse.csr_matrix((np.r_[r[:, 0], r[:, 1]], (np.r_[np.arange(n), np.arange(n)],
                           np.r_[2 * c, 2 * c + 1])), shape=(n, 2 * m))
        for r, c, m in zip(rows, codes, (g1, g2), strict=True)
    ]).tocsc()
    lam = sparse.block_diag([np.array([[0.8, 0.0], [0.3, 0.5]])] * g1
                            + [np.array([[1.2, 0.0], [-0.4, 0.2]])] * g2).tocsc()
    P = (lam.T @ Z.T @ Z @ lam + sparse.eye(2 * (g1 + g2))).tocsc()
    out = inverse_diagonal_blocks(P, [Block(0, g1, 2), Block(2 * g1, g2, 2)])
    full = np.linalg.inv(P.toarray())
    for blk, got in zip((Block(0, g1, 2), Block(2 * g1, g2, 2)), out, strict=True):
        for level in range(blk.n_levels):
            i = blk.offset + 2 * level
            np.testing.assert_allclose(got[level], full[i : i + 2, i : i + 2], rtol=1e-10)


@pytest.fixture(scope="module")
def insteval() -> tuple:
    return fit_frequentist(INSTEVAL, datasets.load("insteval")), json.loads(REFERENCE.read_text())


def test_insteval_crossed_reml_matches_lme4(insteval) -> None:
    fit, ref = insteval
    est, se = np.asarray(ref["fixef"]["estimate"]), np.asarray(ref["fixef"]["std_error"])
    assert list(fit.beta.index) == ref["fixef"]["terms"]
    np.testing.assert_allclose(fit.beta.to_numpy(), est, atol=1e-3 * np.maximum(abs(est), se).max())
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov_fixed.to_numpy())), se, rtol=1e-2)
    sds = [float(np.sqrt(g.cov[0, 0])) for g in fit.groups] + [fit.sigma]
    np.testing.assert_allclose(sds, ref["varcomp"]["sdcor"], rtol=2e-3)
    assert fit.loglik == pytest.approx(ref["logLik_reml"][0], abs=1e-3)


def test_insteval_conditional_modes_and_sds_match_lme4(insteval) -> None:
    fit, ref = insteval
    table = fit.ranef_table
    for group, r in ref["ranef"].items():
        rows = table[table["group"] == group].set_index("level").loc[r["level"]]
        mode = np.asarray(r["mode"])
        np.testing.assert_allclose(rows["estimate"], mode, atol=1e-2 * np.abs(mode).max())
        np.testing.assert_allclose(rows["cond_sd"], r["cond_sd"], rtol=1e-2)
