"""The hyperparameter-only kernel (fixed and group effects integrated out) against independent
references: PyMC's joint density of the same model (the fixed effects' conditional normal density
added back, computed densely with numpy), the dense multivariate-normal likelihood, finite
differences, and the exact conditional distribution of the fixed effects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import multilevel as ml
from multilevel.design import build_design
from multilevel.design.statistics import marginal_statistics
from multilevel.engine.kernels.hyper import beta_draws, hyper_lik
from multilevel.engine.marginal import hyper_problem, marginal_problem
from multilevel.model import build_model, resolve_priors

CASES = {
    "sleepstudy_slope": ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    "radon_intercept": ("log_radon ~ floor + (1 | county)", "radon"),
    "sleepstudy_uncorr": ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    # three terms: the general copy of the kernel (one and two terms have their own)
    "sleepstudy_quad": ("Reaction ~ Days + I(Days^2) + (Days + I(Days^2) | Subject)", "sleepstudy"),
}


def _problem(case: str, priors: dict | None = None):
    formula, data = CASES[case]
    design = build_design(ml.ModelSpec.from_formula(formula, priors=priors or {}), ml.datasets.load(data))
    resolved = resolve_priors(design)
    return design, resolved, hyper_problem(marginal_problem(design, resolved))


def _dense(design, lam: np.ndarray, sigma: float):
    """``V = sigma^2 I + Z Omega Z'`` built row by row from the design."""
    g = design.groups[0]
    q = g.n_terms
    n = design.n_obs
    z = np.zeros((n, g.n_levels * q))
    for i in range(n):
        z[i, g.index[i] * q:(g.index[i] + 1) * q] = g.Z[i]
    omega = np.kron(np.eye(g.n_levels), lam @ lam.T)
    return sigma**2 * np.eye(n) + z @ omega @ z.T


def _beta_conditional(design, v: np.ndarray, mean: np.ndarray, prec: np.ndarray):
    """Mean and covariance of ``beta | Lambda, sigma, y`` (dense)."""
    x, y = design.X, design.y
    vi_x = np.linalg.solve(v, x)
    h = x.T @ vi_x + np.diag(prec)
    cov = np.linalg.inv(h)
    return cov @ (vi_x.T @ y + prec * mean), cov


def _lam(problem, theta: np.ndarray) -> tuple[np.ndarray, float]:
    values = problem.constrained(theta)
    g = problem.design.groups[0]
    sd = values[ml.naming.sd_name(g.factor)]
    chol = values.get(ml.naming.corchol_name(g.factor), np.eye(g.n_terms))
    return sd[:, None] * chol, float(values[ml.naming.SIGMA])


def _random_theta(problem, rng: np.random.Generator) -> np.ndarray:
    theta = problem.initial_point(rng)
    q = problem.signed.shape[0]
    theta[:q] *= rng.choice([-1.0, 1.0], size=q)  # both signs of a signed sd
    return theta


@pytest.mark.parametrize("case", sorted(CASES))
def test_likelihood_is_the_dense_marginal_of_y(case):
    """With beta ~ N(m, S): y ~ N(X m, V + X S X'); with flat priors the REML-type integral."""
    design, priors, problem = _problem(case)
    stats_ = marginal_statistics(design)
    rng = np.random.default_rng(4)
    for _ in range(3):
        lam, sigma = _lam(problem, _random_theta(problem, rng))
        v = _dense(design, lam, sigma)
        mean, prec = problem.args.b_mean, problem.args.b_prec
        args = (stats_.ztz, stats_.ztx, stats_.zty, stats_.xtx, stats_.xty, stats_.yty,
                stats_.n_total)
        lp = hyper_lik(lam / sigma, sigma, *args, mean, prec)[0]
        x = design.X
        expected = stats.multivariate_normal(x @ mean, v + x @ np.diag(1 / prec) @ x.T).logpdf(design.y)
        assert lp == pytest.approx(expected, rel=1e-10)
        flat = hyper_lik(lam / sigma, sigma, *args, mean, np.zeros_like(prec))[0]
        b_hat, cov = _beta_conditional(design, v, mean, np.zeros_like(prec))
        expected = (stats.multivariate_normal(x @ b_hat, v).logpdf(design.y)
                    + 0.5 * len(mean) * math.log(2 * math.pi) + 0.5 * np.linalg.slogdet(cov)[1])
        assert flat == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_density_is_pymcs_joint_with_the_fixed_effects_integrated_out(case):
    """``log p(theta | y) = log p(beta, theta | y) - log p(beta | theta, y)`` for any ``beta``:
    PyMC's joint (no Jacobian) plus our maps' Jacobians (``log sigma``, ``log s`` for a
    log-scale sd, none for a signed one), minus the dense conditional normal density of
    ``beta``, differs from the kernel by a constant."""
    design, priors, problem = _problem(case)
    model = build_model(design, parameterization="marginal", priors=priors)
    logp = model.compile_logp(jacobian=False)
    rng = np.random.default_rng(9)
    gaps = []
    q = problem.signed.shape[0]
    first = _random_theta(problem, rng)
    for _ in range(4):
        theta = _random_theta(problem, rng)
        theta[q:-1] = first[q:-1]
        theta[-1] += rng.normal(0, 0.2)
        values = problem.constrained(theta)
        lam, sigma = _lam(problem, theta)
        b_hat, cov = _beta_conditional(design, _dense(design, lam, sigma), problem.args.b_mean,
                                       problem.args.b_prec)
        beta = b_hat + rng.normal(0, 1, b_hat.shape) * np.sqrt(np.diag(cov))
        point = {}
        for rv in model.free_RVs:
            value = beta if rv.name == ml.naming.FIXED else values[rv.name]
            transform = model.rvs_to_transforms[rv]
            if transform is not None:
                value = transform.forward(value, *rv.owner.inputs).eval()
            point[model.rvs_to_values[rv].name] = value
        jacobian = theta[-1] + np.sum(np.where(problem.signed, 0.0, theta[:q]))
        joint = float(logp(point)) + jacobian
        ours = problem.logp_grad(theta)[0]
        gaps.append(ours - (joint - stats.multivariate_normal(b_hat, cov).logpdf(beta)))
    np.testing.assert_allclose(gaps, gaps[0], atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_matches_finite_differences(case):
    _, _, problem = _problem(case)
    rng = np.random.default_rng(2)
    for _ in range(3):
        theta = _random_theta(problem, rng)
        eps = 1e-6
        fd = [(problem.logp_grad(theta + eps * e)[0] - problem.logp_grad(theta - eps * e)[0]) / (2 * eps)
              for e in np.eye(problem.ndim)]
        np.testing.assert_allclose(problem.logp_grad(theta)[1], fd, rtol=1e-5, atol=1e-4)


def test_fixed_effect_draws_follow_their_exact_conditional():
    """``beta_draws`` at one ``(Lambda, sigma)``: the mean and covariance of 20,000 draws against
    the dense conditional (3 Monte Carlo standard errors for the means, 5% for the sds)."""
    design, _, problem = _problem("sleepstudy_slope")
    theta = problem.start_point()
    lam, sigma = _lam(problem, theta)
    a = problem.args
    n = 20_000
    eps = np.random.default_rng(1).standard_normal((n, len(a.b_mean)))
    draws = beta_draws(np.broadcast_to(lam, (n, *lam.shape)).copy(), np.full(n, sigma), a.ztz, a.ztx,
                       a.zty, a.xtx, a.xty, a.b_mean, a.b_prec, eps)
    b_hat, cov = _beta_conditional(design, _dense(design, lam, sigma), a.b_mean, a.b_prec)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - b_hat) < 3 * sd / np.sqrt(n))
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.05)
    np.testing.assert_allclose(np.corrcoef(draws.T)[0, 1], cov[0, 1] / (sd[0] * sd[1]), atol=0.03)


def test_which_models_sample_the_hyperparameters_alone():
    """Normal or flat fixed-effect priors: yes; a Student-t one: no (the marginal kernel keeps
    beta); a Gamma sd prior is sampled as log s, the default half-Student-t as a signed sd."""
    assert _problem("sleepstudy_slope")[2] is not None
    assert _problem("sleepstudy_slope", {"b": ml.Prior("Flat")})[2] is not None
    assert _problem("sleepstudy_slope", {"b": ml.Prior("StudentT", nu=4.0, sigma=30.0)})[2] is None
    gamma = {"sd(Days | Subject)": ml.Prior("Gamma", alpha=2.0, beta=0.2)}
    _, _, problem = _problem("sleepstudy_slope", gamma)
    assert problem.signed.tolist() == [True, False]
    theta = problem.start_point()
    sd = problem.constrained(theta)[ml.naming.sd_name("Subject")]
    np.testing.assert_allclose(sd, [theta[0], np.exp(theta[1])])
    theta[0] = -theta[0]  # s = |t|
    np.testing.assert_allclose(problem.constrained(theta)[ml.naming.sd_name("Subject")][0], -theta[0])
    nested = pd.DataFrame({"y": np.arange(24.0) % 5, "a": np.repeat(list("ab"), 12),
                           "b": np.tile(np.repeat(list("xyz"), 4), 2)})
    design = build_design(ml.ModelSpec.from_formula("y ~ 1 + (1 | a) + (1 | a:b)"), nested)
    assert hyper_problem(marginal_problem(design, resolve_priors(design))) is None


def test_fit_samples_hyperparameters_and_draws_fixed_effects():
    """A default fit takes the hyperparameter kernel and still reports ``b`` first, with the
    group effects drawn given it; the same seed gives the same draws."""
    data = ml.datasets.load("sleepstudy")
    kw = dict(draws=200, tune=200, chains=2, seed=5, progressbar=False, frequentist=False)
    fit = ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", data, **kw)
    post = fit.posterior
    assert list(post.data_vars)[0] == ml.naming.FIXED
    assert post[ml.naming.FIXED].sizes[ml.naming.FIXED_DIM] == 2
    assert {"u_Subject", "sd_Subject", "cor_Subject", "sigma"} <= set(post.data_vars)
    again = ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", data, **kw)
    np.testing.assert_array_equal(post[ml.naming.FIXED].values, again.posterior[ml.naming.FIXED].values)
    # lme4: Days 10.467 (SE 1.546); the posterior mean is within a posterior sd of it
    days = post[ml.naming.FIXED].sel({ml.naming.FIXED_DIM: "Days"})
    assert abs(float(days.mean()) - 10.467) < float(days.std())
