"""Gaussian models with crossed scalar group terms in conditional coordinates
(multilevel.engine.crossed, ``parameterization='linearized'``).

The density is checked against PyMC's non-centered model in tests/test_fast_logp.py; here: which
models get it, the pilot and the nesting rule, the reported effects against a dense evaluation
of the transformation, and the posterior against the non-centered sampler's on the same model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_fast_logp import crossed_frame

import multilevel as ml
from multilevel import naming
from multilevel.design import build_design
from multilevel.engine import choose_parameterization
from multilevel.engine.crossed import crossed_problem
from multilevel.engine.noncentered import nc_problem
from multilevel.errors import SpecError
from multilevel.model import resolve_priors

CROSSED = "y ~ x + (1 | a) + (1 | b) + (1 | c)"


def _design(formula: str, df: pd.DataFrame | None = None, **kw):
    return build_design(ml.ModelSpec.from_formula(formula, **kw),
                        crossed_frame() if df is None else df)


def test_crossed_scalar_terms_are_sampled_linearized():
    assert choose_parameterization(_design(CROSSED), "auto") == ("linearized", None)
    assert choose_parameterization(_design(CROSSED), "auto", sampler="pymc")[0] == "noncentered"
    slopes = _design("y ~ x + (1 + x | a) + (1 | b)")
    assert choose_parameterization(slopes, "auto")[0] == "noncentered"
    with pytest.raises(SpecError, match="one term per grouping factor"):
        choose_parameterization(slopes, "linearized")
    nested = _design("y ~ x + (1 | b) + (1 | b:c)")  # two nested factors: integrated out
    assert choose_parameterization(nested, "auto") == ("marginal", None)
    df = crossed_frame().assign(se=1.0)
    known = build_design(ml.meta_analysis("y", "se", group="a"), df)
    with pytest.raises(SpecError, match="known standard errors"):
        choose_parameterization(known, "linearized")


def test_factor_holding_a_nested_one_is_non_centered_and_first():
    problem = crossed_problem(nc_problem(_design(CROSSED), resolve_priors(_design(CROSSED))))
    a = problem.args
    assert a.conditional.tolist() == [True, False, True]  # b holds c
    assert a.order.tolist() == [1, 2, 0]  # b, then c (12 levels), then a (15 levels)


def test_group_effects_follow_the_transformation():
    """``constrained`` against a dense numpy evaluation: ``beta = beta0 + M w``, ``u_b = s_b
    zeta_b`` (non-centered) and for the conditional factors, in order, ``u_f = S_f / P_f + zeta_f
    / sqrt(P_f)`` with ``S_f = tau Z_f'(y - X beta - sum_{g before f} Z_g u_g)``."""
    df = crossed_frame()
    design = _design(CROSSED, df)
    problem = crossed_problem(nc_problem(design, resolve_priors(design)))
    a = problem.args
    rng = np.random.default_rng(3)
    theta = problem.initial_point(rng) + rng.normal(0, 0.3, problem.ndim)
    got = problem.constrained(theta)
    beta = a.beta0 + a.M @ theta[:problem.base.p]
    np.testing.assert_allclose(got[naming.FIXED], beta, rtol=1e-12)
    tau = np.exp(-2 * theta[-1])
    fitted = design.X @ beta
    for k in a.order:
        g = design.groups[k]
        s0, z0, levels = a.layout[k, 0], a.layout[k, 2], a.layout[k, 3]
        sd = abs(theta[s0])  # half-t prior: signed
        Z = np.zeros((design.n_rows, levels))
        Z[np.arange(design.n_rows), g.index] = g.Z[:, 0]
        zeta = theta[z0:z0 + levels]
        if a.conditional[k]:
            prec = tau * np.diag(Z.T @ Z) + sd**-2
            u = tau * Z.T @ (design.y - fitted) / prec + zeta / np.sqrt(prec)
        else:
            u = sd * zeta
        np.testing.assert_allclose(got[naming.effect_name(g.factor)][:, 0], u, rtol=1e-9)
        np.testing.assert_allclose(got[naming.offset_name(g.factor)][:, 0], u / sd, rtol=1e-9)
        np.testing.assert_allclose(got[naming.sd_name(g.factor)], [sd], rtol=1e-12)
        fitted = fitted + Z @ u


def test_posterior_matches_the_noncentered_sampler():
    """The same model sampled in both coordinates: posterior means and posterior sds of the
    fixed effects, sds, sigma and group effects agree within 4.5 combined Monte Carlo standard
    errors (ArviZ's ``mcse`` of the mean and of the sd)."""
    import arviz as az

    df = crossed_frame(seed=9, n=600, n_b=10)
    fits = {
        par: ml.fit_hierarchical(CROSSED, df, parameterization=par, draws=1500, tune=1000,
                                 chains=4, seed=5, frequentist=False, progressbar=False)
        for par in ("noncentered", "linearized")
    }
    assert fits["linearized"].parameterization == "linearized"
    names = [naming.FIXED, naming.SIGMA, *[naming.sd_name(f) for f in "abc"],
             *[naming.effect_name(f) for f in "abc"]]
    for name in names:
        stats = {}
        for par, fit in fits.items():
            draws = fit.posterior[name].values.reshape(-1, *fit.posterior[name].shape[2:])
            mcse = az.mcse(fit.idata, var_names=[name])[name].values
            mcse_sd = az.mcse(fit.idata, var_names=[name], method="sd")[name].values
            stats[par] = (draws.mean(0), draws.std(0), mcse, mcse_sd)
        (m1, s1, e1, f1), (m2, s2, e2, f2) = stats["noncentered"], stats["linearized"]
        z = np.abs(m1 - m2) / np.sqrt(e1**2 + e2**2)
        assert z.max() < 4.5, (name, z.max())
        z_sd = np.abs(s1 - s2) / np.sqrt(f1**2 + f2**2)
        assert z_sd.max() < 4.5, (name, z_sd.max())
    assert int(fits["linearized"].idata["sample_stats"]["diverging"].sum()) == 0
