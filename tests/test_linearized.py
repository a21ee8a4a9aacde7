"""The linearized coordinates of one-factor logistic models (multilevel.engine.linearized).

Its density is checked against PyMC's non-centered model in tests/test_fast_logp.py; here: which
models get it, the group effects it reports against a dense numpy evaluation of the
transformation, and its posterior against the non-centered sampler's on the same model.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

import multilevel as ml
from multilevel import naming
from multilevel.design import build_design
from multilevel.engine import choose_parameterization
from multilevel.engine.linearized import lin_problem
from multilevel.engine.noncentered import nc_problem
from multilevel.errors import SpecError
from multilevel.model import resolve_priors

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CONTRACEPTION = "use ~ urban + age + livch + (1 + urban | district)"


def _design(formula, data, family="binomial"):
    spec = ml.ModelSpec.from_formula(formula, family=family)
    return build_design(spec, ml.datasets.load(data))


def test_logistic_models_with_one_factor_are_sampled_linearized():
    logistic = _design(CBPP, "cbpp")
    assert choose_parameterization(logistic, "auto") == ("linearized", None)
    assert choose_parameterization(logistic, "auto", sampler="pymc")[0] == "noncentered"
    assert choose_parameterization(logistic, "noncentered") == ("noncentered", None)
    gaussian = _design("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian")
    with pytest.raises(SpecError, match="parameterization='linearized'.*one grouping factor "
                                        "integrates the group effects out"):
        choose_parameterization(gaussian, "linearized")
    with pytest.raises(SpecError, match="nutpie"):
        choose_parameterization(logistic, "linearized", sampler="pymc")
    crossed = _design("cbind(incidence, size - incidence) ~ (1 | period) + (1 | herd)", "cbpp")
    assert choose_parameterization(crossed, "auto")[0] == "noncentered"
    with pytest.raises(SpecError, match="logistic models .* one grouping factor"):
        choose_parameterization(crossed, "linearized")


def test_group_effects_follow_the_transformation():
    """``constrained`` against scipy: ``beta = beta0 + M w`` and ``b_j = m_j + C_j^-T zeta_j``
    with ``P_j = A_j + Sigma^-1``, ``m_j = P_j^-1 (c_j - D_j beta)`` and ``C_j = chol(P_j)``."""
    design = _design(CONTRACEPTION, "contraception", "bernoulli")
    problem = lin_problem(nc_problem(design, resolve_priors(design)))
    a = problem.args
    rng = np.random.default_rng(3)
    theta = problem.initial_point(rng) + rng.normal(0, 0.3, problem.ndim)
    got = problem.constrained(theta)
    p, q = problem.base.p, a.q
    s0, x0, z0 = problem.base.layout[0]
    beta = a.beta0 + a.M @ theta[:p]
    np.testing.assert_allclose(got[naming.FIXED], beta, rtol=1e-12)
    sd = got[naming.sd_name("district")]
    np.testing.assert_allclose(sd, np.abs(theta[s0:s0 + q]), rtol=1e-12)  # half-t: signed
    cor = got[naming.cor_name("district")]
    sigma = np.outer(sd, sd) * cor
    zeta = theta[z0:].reshape(-1, q)
    for j in range(zeta.shape[0]):
        prec = a.A[j] + np.linalg.inv(sigma)
        chol = np.linalg.cholesky(prec)
        mean = np.linalg.solve(prec, a.c[j] - a.D[j] @ beta)
        b_j = mean + linalg.solve_triangular(chol.T, zeta[j], lower=False)
        np.testing.assert_allclose(got[naming.effect_name("district")][j], b_j, rtol=1e-9, atol=1e-12)
        lam = np.linalg.cholesky(sigma)
        np.testing.assert_allclose(got[naming.offset_name("district")][j],
                                   np.linalg.solve(lam, b_j), rtol=1e-9, atol=1e-12)


def test_posterior_matches_the_noncentered_sampler():
    """The same model sampled in both coordinates: posterior means of the fixed effects, sd and
    group effects agree within 4.5 combined Monte Carlo standard errors, and sds within 10%."""
    import arviz as az

    df = ml.datasets.load("cbpp")
    fits = {
        par: ml.fit_hierarchical(CBPP, df, parameterization=par, draws=1500, tune=1000, chains=4,
                                 seed=11, frequentist=False, progressbar=False)
        for par in ("noncentered", "linearized")
    }
    assert fits["linearized"].parameterization == "linearized"
    assert naming.offset_name("herd") in fits["linearized"].model.named_vars  # the readable model
    for name in (naming.FIXED, naming.sd_name("herd"), naming.effect_name("herd")):
        stats = {}
        for par, fit in fits.items():
            draws = fit.posterior[name].values.reshape(-1, *fit.posterior[name].shape[2:])
            mcse = az.mcse(fit.idata, var_names=[name])[name].values
            stats[par] = (draws.mean(0), draws.std(0), mcse)
        (m1, s1, e1), (m2, s2, e2) = stats["noncentered"], stats["linearized"]
        z = np.abs(m1 - m2) / np.sqrt(e1**2 + e2**2)
        assert z.max() < 4.5, (name, z.max())
        np.testing.assert_allclose(s2, s1, rtol=0.1, err_msg=name)
    for fit in fits.values():
        assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0
