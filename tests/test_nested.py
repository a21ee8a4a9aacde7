"""Two nested grouping factors with the group effects integrated out, against independent
references.

* The compiled log-likelihood (:func:`nested_loglik_grad`) and the PyTensor one PyMC samples
  equal the dense ``y ~ N(X b, V)`` log-density from scipy, with ``V`` built here from the
  DataFrame (same school: ``z1_i' Sigma1 z1_k``; same class of the same school:
  ``Sigma2``; ``sigma^2`` on the diagonal), without the package's design code, on small
  unbalanced data; the compiled gradients match central finite differences of the dense one.
* The full compiled log posterior (priors and transforms) gives the same log-density
  differences as PyMC's marginal model (``build_model(parameterization='marginal')``).
* Recovered effects of both factors follow the exact joint conditional normal (dense formula
  ``Cov(u, y) V^-1 (y - X b)``), over 20000 draws at one fixed hyperparameter value.
* NUTS on the marginal and on the non-centered model give the same posterior (means and sds of
  every parameter and every group effect within 4 combined MCSE).
* Which designs count as nested: ``(1 | a/b)`` and ``(1 | a) + (1 | a:b)`` yes; crossed
  factors and three factors no (scalar terms then go linearized, others non-centered with a
  note saying why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from simulate import nested
from test_fast_logp import _check
from test_marginal import _compare

from multilevel import ModelSpec, fit_hierarchical
from multilevel.design import build_design
from multilevel.design.statistics import nested_stats, nesting
from multilevel.engine import choose_parameterization
from multilevel.engine.kernels.nested import nested_loglik_grad
from multilevel.engine.marginal import marginal_problem
from multilevel.engine.recovery import recover_group_effects as recover_nested_effects
from multilevel.errors import SpecError
from multilevel.model import build_model, resolve_priors
from multilevel.model.marginal import nested_marginal_loglik

FORMULA = "y ~ x + (1 + x | school) + (1 + x | school:klass)"


@pytest.fixture(scope="module")
def small():
    df, _ = nested(n_schools=4, n_classes=3, n_per=4, seed=7)
    return df, build_design(ModelSpec.from_formula(FORMULA), df)


def _dense_cov(df: pd.DataFrame, cov1, cov2, sigma) -> np.ndarray:
    z = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    school = df["school"].to_numpy()
    cls = (df["school"] + "/" + df["klass"]).to_numpy()
    same_school = (school[:, None] == school[None, :]).astype(float)
    same_class = (cls[:, None] == cls[None, :]).astype(float)
    return same_school * (z @ cov1 @ z.T) + same_class * (z @ cov2 @ z.T) + sigma**2 * np.eye(len(df))


def _dense_loglik(df, b, lam1, lam2, sigma) -> float:
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    V = _dense_cov(df, lam1 @ lam1.T, lam2 @ lam2.T, sigma)
    return float(stats.multivariate_normal(X @ b, V).logpdf(df["y"].to_numpy()))


def _random_lambda(rng, q=2):
    a = rng.normal(size=(q, q))
    cov = a @ a.T + 0.2 * np.eye(q)
    return np.linalg.cholesky(cov)


def test_nesting_is_detected():
    df, _ = nested(n_schools=3, n_classes=2, n_per=4, seed=1)
    for formula in ("y ~ x + (1 | school/klass)", "y ~ x + (1 | school:klass) + (1 | school)"):
        design = build_design(ModelSpec.from_formula(formula), df)
        outer, inner = nesting(design)
        assert design.groups[outer].factor == "school"
        assert design.groups[inner].factor == "school:klass"
        assert choose_parameterization(design, "auto") == ("marginal", None)
    crossed = build_design(ModelSpec.from_formula("y ~ x + (1 | school) + (1 | klass)"), df)
    assert nesting(crossed) is None
    assert choose_parameterization(crossed, "auto") == ("linearized", None)  # scalar terms
    with pytest.raises(SpecError, match="crossed"):
        choose_parameterization(crossed, "marginal")
    slopes = build_design(ModelSpec.from_formula("y ~ x + (1 + x | school) + (1 | klass)"), df)
    param, note = choose_parameterization(slopes, "auto")
    assert param == "noncentered" and "crossed" in note
    df3 = df.assign(pupil=np.arange(len(df)) % 2)
    three = build_design(ModelSpec.from_formula("y ~ x + (1 | school/klass/pupil)"), df3)
    assert len(three.groups) == 3 and choose_parameterization(three, "auto")[0] == "linearized"
    slopes3 = build_design(ModelSpec.from_formula("y ~ x + (1 + x | school) + (1 | school:klass) + "
                                                  "(1 | school:klass:pupil)"), df3)
    assert choose_parameterization(slopes3, "auto")[0] == "noncentered"


def test_compiled_and_pytensor_loglik_equal_dense(small):
    import pytensor

    df, design = small
    st = nested_stats(design)
    outer, inner = nesting(design)
    assert (outer, inner) == (0, 1)
    b_t, l1_t, l2_t, s_t = pytensor.tensor.vector(), pytensor.tensor.matrix(), pytensor.tensor.matrix(), \
        pytensor.tensor.scalar()
    f = pytensor.function([b_t, l1_t, l2_t, s_t], nested_marginal_loglik(st, b_t, l1_t, l2_t, s_t))
    rng = np.random.default_rng(0)
    for _ in range(3):
        b, lam1, lam2 = rng.normal(size=2), _random_lambda(rng), _random_lambda(rng)
        sigma = float(np.exp(rng.normal(0, 0.3)))
        ll, g_b, g_l1, g_l2, g_s = nested_loglik_grad(b, lam1, lam2, sigma, *st.kernel_args())
        dense = _dense_loglik(df, b, lam1, lam2, sigma)
        assert ll == pytest.approx(dense, rel=1e-10)
        assert float(f(b, lam1, lam2, sigma)) == pytest.approx(dense, rel=1e-10)
        def fd(shift, b=b, lam1=lam1, lam2=lam2, sigma=sigma, eps=1e-6):
            return (_dense_loglik(df, *shift(b, lam1, lam2, sigma, eps))
                    - _dense_loglik(df, *shift(b, lam1, lam2, sigma, -eps))) / (2 * eps)

        for k in range(2):
            e = np.eye(2)[k]
            assert g_b[k] == pytest.approx(fd(lambda b, l1, l2, s, h, e=e: (b + h * e, l1, l2, s)), rel=1e-5)
        for a, c in ((0, 0), (1, 0), (1, 1)):  # Lambda is lower triangular
            e = np.zeros((2, 2))
            e[a, c] = 1.0
            assert g_l1[a, c] == pytest.approx(fd(lambda b, l1, l2, s, h, e=e: (b, l1 + h * e, l2, s)),
                                               rel=1e-5, abs=1e-6)
            assert g_l2[a, c] == pytest.approx(fd(lambda b, l1, l2, s, h, e=e: (b, l1, l2 + h * e, s)),
                                               rel=1e-5, abs=1e-6)
        assert g_s == pytest.approx(fd(lambda b, l1, l2, s, h: (b, l1, l2, s + h)), rel=1e-5)


def test_compiled_log_posterior_matches_pymc(small):
    _, design = small
    priors = resolve_priors(design)
    problem = marginal_problem(design, priors)
    assert problem.kernel == "nested"
    rng = np.random.default_rng(3)
    theta = problem.initial_point(rng)
    theta2 = theta.copy()
    theta2[:problem.p] += rng.normal(0, 0.3, problem.p)
    sd = [slice(f.ks, f.kx) for f in problem.factors]
    for s in sd:
        theta2[s] += rng.normal(0, 0.3, s.stop - s.start)
    theta2[-1] += 0.1
    model = build_model(design, parameterization="marginal", priors=priors)
    _check(problem, model, theta, theta2, sd, sigma=True)


def test_recovered_effects_follow_exact_conditional(small):
    df, design = small
    outer, inner = (design.groups[k] for k in nesting(design))
    b = np.array([1.0, 0.5])
    sd1, sd2, sigma = np.array([0.8, 0.4]), np.array([0.6, 0.3]), 0.7
    chol1 = np.linalg.cholesky(np.array([[1.0, -0.4], [-0.4, 1.0]]))
    chol2 = np.linalg.cholesky(np.array([[1.0, 0.3], [0.3, 1.0]]))
    n_draws = 20000
    rep = lambda a: np.broadcast_to(a, (1, n_draws) + np.shape(a)).copy()  # noqa: E731
    post = xr.Dataset({
        "b": (("chain", "draw", "fixed_term"), rep(b)),
        "sd_school": (("chain", "draw", "school_term"), rep(sd1)),
        "corchol_school": (("chain", "draw", "c1", "c2"), rep(chol1)),
        "sd_school__klass": (("chain", "draw", "school__klass_term"), rep(sd2)),
        "corchol_school__klass": (("chain", "draw", "c3", "c4"), rep(chol2)),
        "sigma": (("chain", "draw"), rep(sigma)),
    }, coords={"chain": [0], "draw": np.arange(n_draws)})
    idata, _ = recover_nested_effects(xr.DataTree.from_dict({"posterior": post}), design, seed=9)
    u1 = idata["posterior"]["u_school"].to_numpy()[0].reshape(n_draws, -1)
    u2 = idata["posterior"]["u_school__klass"].to_numpy()[0].reshape(n_draws, -1)
    u = np.hstack([u1, u2])
    # dense reference: u = (u1 by school level, u2 by class level), Cov(u, y) = Sigma_u Z'
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    cov1 = (sd1[:, None] * chol1) @ (sd1[:, None] * chol1).T
    cov2 = (sd2[:, None] * chol2) @ (sd2[:, None] * chol2).T
    school = df["school"].to_numpy()
    cls = (df["school"] + ":" + df["klass"]).to_numpy()
    z_blocks = [X * (school == lev)[:, None] for lev in outer.levels]
    z_blocks += [X * (cls == lev)[:, None] for lev in inner.levels]
    Z = np.hstack(z_blocks)
    prior = np.zeros((Z.shape[1], Z.shape[1]))
    for k in range(len(z_blocks)):
        prior[2 * k:2 * k + 2, 2 * k:2 * k + 2] = cov1 if k < outer.n_levels else cov2
    V = Z @ prior @ Z.T + sigma**2 * np.eye(len(df))
    gain = prior @ Z.T @ np.linalg.inv(V)
    mean = gain @ (df["y"].to_numpy() - X @ b)
    var = prior - gain @ Z @ prior
    se = np.sqrt(np.diag(var) / n_draws)
    np.testing.assert_array_less(np.abs(u.mean(axis=0) - mean), 4.5 * se)
    np.testing.assert_allclose(np.cov(u.T), var, atol=0.06 * var.max())


@pytest.mark.slow
def test_marginal_and_noncentered_posteriors_agree():
    df, _ = nested(n_schools=25, n_classes=4, n_per=6, seed=11)
    formula = "y ~ x + (1 + x | school) + (1 | school:klass)"
    kwargs = dict(draws=1000, tune=1000, chains=4, frequentist=False, progressbar=False)
    marginal = fit_hierarchical(formula, df, parameterization="auto", seed=31, **kwargs)
    noncentered = fit_hierarchical(formula, df, parameterization="noncentered", seed=32, **kwargs)
    assert marginal.parameterization == "marginal"
    pa, pb = marginal.posterior, noncentered.posterior
    for name in ("b", "sd_school", "sd_school__klass", "sigma", "u_school", "u_school__klass"):
        for method in ("mean", "sd"):
            _compare(pa[name], pb[name], name, method)
    for method in ("mean", "sd"):
        _compare(pa["cor_school"].isel(school_term=0, school_term_bis=1),
                 pb["cor_school"].isel(school_term=0, school_term_bis=1), "cor", method)
