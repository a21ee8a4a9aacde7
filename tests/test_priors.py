"""Priors: an exact reference for the posterior, tight priors, TOML overrides, errors, bambi.

The reference (no MCMC, nothing shared with the package but the data): in a Gaussian
varying-intercept model ``y = X beta + Z u + e``, ``u ~ N(0, tau^2 I)``, ``e ~ N(0, diag(v))``
(``v = sigma^2``, or the known ``se^2``) with Normal priors on ``beta``, the vector
``theta = (beta, u)`` is jointly Gaussian given the scales:

.. math::

    P = W'V^{-1}W + D^{-1}, \\quad m = P^{-1}(W'V^{-1}y + D^{-1}m_0), \\quad
    \\log p(y | \\tau, \\sigma) = -\\tfrac12\\big(n\\log 2\\pi + \\log|V| + \\log|D| + \\log|P|
        + y'V^{-1}y + m_0'D^{-1}m_0 - m'Pm\\big)

with ``W = [X Z]`` and ``D`` the prior variances (``diag(s_beta^2, tau^2 I)``). So the posterior
is a mixture of Gaussians over the scales: a grid over ``(log tau, log sigma)`` (or ``log tau``
alone with known standard errors), weighted by ``p(y | tau, sigma) p(tau) p(sigma) tau sigma``
(the last two factors the Jacobian of the log grid), gives the exact posterior mean, sd and
quantiles of every parameter. The grid is found in two passes (a wide coarse one, then a fine
one over the region within ``e^-30`` of the peak); halving the fine grid changes the moments by
less than 1e-9 and the quantiles by less than 3e-4 (a tenth of their Monte Carlo error).

NUTS (the default marginal parameterization, and the non-centered one) must reproduce it:
means within 3 Monte Carlo standard errors, sds within 5% (or 3 MCSEs of the sd, whichever is
larger: a heavy-tailed sd posterior such as eight schools' tau has a noisy sd), the 5%, 50% and
95% quantiles within 4 quantile MCSEs.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, interpolate, optimize, stats
from scipy.special import logsumexp, ndtr

import multilevel as ml
from multilevel import Prior
from multilevel.errors import SpecError
from multilevel.prior_predictive import prior_summary

COUNTIES = ["AITKIN", "BECKER", "BELTRAMI", "BENTON", "BIGSTONE", "BLUEEARTH", "BROWN", "CARLTON",
            "CARVER", "CASS"]
RADON_PRIORS = {
    "Intercept": Prior("Normal", mu=1.0, sigma=2.0),
    "floor": Prior("Normal", mu=0.0, sigma=1.0),
    "sd": Prior("HalfStudentT", nu=3.0, sigma=0.5),
    "sigma": Prior("Exponential", lam=1.0),
}
SCHOOLS_PRIORS = {
    "Intercept": Prior("Normal", mu=0.0, sigma=20.0),
    "sd(school)": Prior("HalfCauchy", beta=5.0),
}
PROBS = np.array([0.05, 0.5, 0.95])


# ---------------------------------------------------------------- the quadrature reference


def conditional(W, y, noise_var, m0, d0):
    """Given the scales at ``K`` grid points: the Gaussian posterior of ``theta = (beta, u)``.

    ``W`` (n, d); ``noise_var`` (K, n); ``m0`` (d,); ``d0`` (K, d) prior variances. Returns the
    conditional means (K, d), covariances (K, d, d) and ``log p(y | scales)`` (K,).
    """
    n, d = W.shape
    lam = 1.0 / noise_var
    P = (lam @ (W[:, :, None] * W[:, None, :]).reshape(n, d * d)).reshape(-1, d, d)
    P[:, np.arange(d), np.arange(d)] += 1.0 / d0
    rhs = (lam * y) @ W + m0 / d0
    chol = np.linalg.cholesky(P)
    cov = np.linalg.inv(P)
    mean = np.einsum("kij,kj->ki", cov, rhs)
    quad = (lam * y**2).sum(1) + (m0**2 / d0).sum(1) - np.einsum("ki,ki->k", mean, rhs)
    logml = -0.5 * (n * np.log(2 * np.pi) + np.log(noise_var).sum(1) + np.log(d0).sum(1)
                    + 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1) + quad)
    return mean, cov, logml


def mixture_summary(w, mu, sd):
    """Mean, sd and the ``PROBS`` quantiles of ``sum_k w_k N(mu_k, sd_k^2)``."""
    mean = w @ mu
    std = np.sqrt(w @ (sd**2 + mu**2) - mean**2)
    keep = w > 1e-14 * w.max()  # the rest cannot move a quantile by 1e-12
    w, mu, sd = w[keep], mu[keep], sd[keep]
    quantiles = [
        optimize.brentq(lambda x, p=p: np.dot(w, ndtr((x - mu) / sd)) - p,
                        mean - 20 * std, mean + 20 * std, xtol=1e-12)
        for p in PROBS
    ]
    return mean, std, np.array(quantiles)


def grid_summary(w, log_x):
    """Mean, sd and quantiles of ``x = exp(log_x)`` from weights on a uniform log grid (the
    CDF by cumulative Simpson, inverted through its monotone cubic interpolant)."""
    x = np.exp(log_x)
    mean = w @ x
    cdf = integrate.cumulative_simpson(w, x=log_x, initial=0.0)
    curve = interpolate.PchipInterpolator(log_x, np.maximum.accumulate(cdf / cdf[-1]))
    quantiles = [optimize.brentq(lambda t, p=p: curve(t) - p, log_x[0], log_x[-1], xtol=1e-12)
                 for p in PROBS]
    return mean, np.sqrt(w @ x**2 - mean**2), np.exp(quantiles)


def _two_pass(log_weight, lo, hi, fine):
    """Coarse grid over the box ``lo``-``hi`` (one entry per scale), then a fine grid over the
    region within e^-30 of the peak. Returns the fine axes, the flat grid and its log weights."""
    coarse = [np.linspace(a, b, 80) for a, b in zip(lo, hi, strict=True)]
    points = np.stack([m.ravel() for m in np.meshgrid(*coarse, indexing="ij")], axis=1)
    lw = log_weight(points)[0]
    keep = points[lw > lw.max() - 30]
    step = [c[1] - c[0] for c in coarse]
    axes = [np.linspace(keep[:, i].min() - step[i], keep[:, i].max() + step[i], n)
            for i, n in enumerate(fine)]
    points = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    return axes, points, log_weight(points)


def quadrature_reference(W, y, m0, s0, log_prior_tau, log_prior_sigma=None, se=None,
                         combos=None):
    """Exact posterior summaries: ``{'theta': [(mean, sd, quantiles)] per column of W, 'tau':
    ..., 'sigma': ...}``; ``s0`` the prior sds of beta; ``se`` known standard errors. With
    ``combos`` (rows ``a``), also ``'combos'``: the summaries of each ``a' theta`` (a prediction
    such as intercept + county effect is Gaussian given the scales too)."""
    n, d = W.shape
    p = len(s0)
    scale = float(np.std(y))

    def log_weight(points):
        tau = np.exp(points[:, 0])
        d0 = np.column_stack([np.tile(np.asarray(s0) ** 2, (len(tau), 1)),
                              np.repeat(tau[:, None] ** 2, d - p, axis=1)])
        if se is None:
            sigma = np.exp(points[:, 1])
            noise = np.repeat(sigma[:, None] ** 2, n, axis=1)
            extra = log_prior_sigma(sigma) + points[:, 1]
        else:
            noise, extra = np.tile(np.asarray(se) ** 2, (len(tau), 1)), 0.0
        mean, cov, logml = conditional(W, y, noise, m0, d0)
        return logml + log_prior_tau(tau) + points[:, 0] + extra, mean, cov

    lo, hi = [np.log(1e-8 * scale)], [np.log(1e3 * scale)]
    fine = [2000]
    if se is None:
        lo, hi, fine = lo + [np.log(1e-3 * scale)], hi + [np.log(1e2 * scale)], [400, 100]
    axes, _, (lw, mean, cov) = _two_pass(log_weight, lo, hi, fine)
    w = np.exp(lw - logsumexp(lw))
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    out = {"theta": [mixture_summary(w, mean[:, i], sd[:, i]) for i in range(d)]}
    for a in [] if combos is None else np.asarray(combos, dtype=float):
        out.setdefault("combos", []).append(
            mixture_summary(w, mean @ a, np.sqrt(np.einsum("i,kij,j->k", a, cov, a))))
    w_grid = w.reshape([len(a) for a in axes])
    out["tau"] = grid_summary(w_grid.sum(axis=tuple(range(1, w_grid.ndim))), axes[0])
    if se is None:
        out["sigma"] = grid_summary(w_grid.sum(axis=0), axes[1])
    return out


def compare(samples: dict[str, np.ndarray], reference: dict[str, tuple]) -> dict[str, float]:
    """Assert NUTS matches the reference (module docstring); returns the worst ratios."""
    worst = {"mean_z": 0.0, "sd_rel": 0.0, "quantile_z": 0.0}
    for name, x in samples.items():
        mean, sd, quantiles = reference[name]
        z = abs(x.mean() - mean) / float(az.mcse(x, method="mean"))
        sd_err = abs(x.std(ddof=1) - sd)
        sd_tol = max(0.05 * sd, 3 * float(az.mcse(x, method="sd")))
        zq = max(abs(np.quantile(x, p) - q) / float(az.mcse(x, method="quantile", prob=p))
                 for p, q in zip(PROBS, quantiles, strict=True))
        worst = {"mean_z": max(worst["mean_z"], z), "sd_rel": max(worst["sd_rel"], sd_err / sd),
                 "quantile_z": max(worst["quantile_z"], zq)}
        assert z < 3, f"{name}: mean {x.mean():.5g} vs exact {mean:.5g} ({z:.2f} MCSE)"
        assert sd_err < sd_tol, f"{name}: sd {x.std(ddof=1):.5g} vs exact {sd:.5g}"
        assert zq < 4, f"{name}: quantiles {np.quantile(x, PROBS)} vs exact {quantiles}"
    print(f"max |mean diff|/mcse = {worst['mean_z']:.2f}, max |sd/sd_exact - 1| = "
          f"{worst['sd_rel']:.4f}, max |quantile diff|/mcse = {worst['quantile_z']:.2f}")
    return worst


def _draws(da) -> np.ndarray:
    return da.transpose("chain", "draw").to_numpy()


# ---------------------------------------------------------------- radon subset (tau, sigma free)


@pytest.fixture(scope="module")
def radon_subset():
    df = ml.datasets.load("radon")
    df = df[df["county"].isin(COUNTIES)].reset_index(drop=True)
    df["county"] = df["county"].astype(str)
    return df


def _radon_reference(df, floor_prior: Prior):
    y = df["log_radon"].to_numpy(float)
    X = np.column_stack([np.ones(len(df)), df["floor"].to_numpy(float)])
    Z = (df["county"].to_numpy()[:, None] == np.array(COUNTIES)[None, :]).astype(float)
    intercept = RADON_PRIORS["Intercept"].kwargs
    floor = floor_prior.kwargs
    m0 = np.r_[intercept["mu"], floor["mu"], np.zeros(len(COUNTIES))]
    sd = RADON_PRIORS["sd"].kwargs
    ref = quadrature_reference(
        np.hstack([X, Z]), y, m0, [intercept["sigma"], floor["sigma"]],
        lambda t: np.log(2.0) + stats.t.logpdf(t, sd["nu"], scale=sd["sigma"]),
        lambda s: stats.expon.logpdf(s, scale=1.0 / RADON_PRIORS["sigma"].kwargs["lam"]),
    )
    names = ["b[(Intercept)]", "b[floor]"] + [f"u[{c}]" for c in COUNTIES]
    return {**dict(zip(names, ref["theta"], strict=True)), "sd": ref["tau"], "sigma": ref["sigma"]}


@pytest.fixture(scope="module")
def radon_reference(radon_subset):
    return _radon_reference(radon_subset, RADON_PRIORS["floor"])


def test_reference_algebra_matches_dense_gaussian(radon_subset):
    """The closed form of the reference against a dense multivariate normal at one point."""
    df = radon_subset
    y = df["log_radon"].to_numpy(float)
    W = np.column_stack([np.ones(len(df)), df["floor"], pd.get_dummies(df["county"]).to_numpy(float)])
    m0 = np.r_[1.0, 0.0, np.zeros(W.shape[1] - 2)]
    d0 = np.r_[4.0, 1.0, np.full(W.shape[1] - 2, 0.3**2)]
    sigma2 = 0.7**2
    mean, cov, logml = conditional(W, y, np.full((1, len(y)), sigma2), m0, d0[None])
    marg_cov = sigma2 * np.eye(len(y)) + W @ np.diag(d0) @ W.T
    assert np.isclose(logml[0], stats.multivariate_normal(W @ m0, marg_cov).logpdf(y), rtol=1e-12)
    gain = np.diag(d0) @ W.T @ np.linalg.inv(marg_cov)
    np.testing.assert_allclose(mean[0], m0 + gain @ (y - W @ m0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov[0], np.diag(d0) - gain @ W @ np.diag(d0), atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["marginal", "noncentered"])
def test_radon_subset_matches_quadrature(radon_subset, radon_reference, parameterization):
    spec = ml.ModelSpec.from_formula("log_radon ~ floor + (1 | county)", priors=RADON_PRIORS)
    fit = ml.fit_hierarchical(spec, radon_subset, parameterization=parameterization, draws=2000,
                              tune=1000, chains=4, seed=11, frequentist=False, progressbar=False)
    assert fit.parameterization == parameterization
    assert set(fit.priors()["source"]) == {"Intercept", "floor", "sd", "sigma"}
    post = fit.posterior
    samples = {f"b[{t}]": _draws(post["b"].sel(fixed_term=t)) for t in ("(Intercept)", "floor")}
    samples["sd"] = _draws(post["sd_county"].isel(county_term=0))
    samples["sigma"] = _draws(post["sigma"])
    u = post["u_county"].isel(county_term=0)
    samples.update({f"u[{c}]": _draws(u.sel(county_level=c)) for c in COUNTIES})
    compare(samples, radon_reference)


@pytest.mark.slow
def test_eight_schools_matches_quadrature():
    df = ml.datasets.load("eight_schools")
    y, se = df["effect"].to_numpy(float), df["se"].to_numpy(float)
    J = len(y)
    mu = SCHOOLS_PRIORS["Intercept"].kwargs
    beta = SCHOOLS_PRIORS["sd(school)"].kwargs["beta"]
    ref = quadrature_reference(np.hstack([np.ones((J, 1)), np.eye(J)]), y,
                               np.r_[mu["mu"], np.zeros(J)], [mu["sigma"]],
                               lambda t: stats.halfcauchy.logpdf(t, scale=beta), se=se)
    reference = {"mu": ref["theta"][0], "tau": ref["tau"],
                 **dict(zip(df["school"], ref["theta"][1:], strict=True))}
    spec = ml.ModelSpec.from_formula("effect | se(se) ~ 1 + (1 | school)", priors=SCHOOLS_PRIORS)
    fit = ml.fit_hierarchical(spec, df, draws=2000, tune=1000, chains=4, seed=5,
                              frequentist=False, progressbar=False)
    assert fit.parameterization == "noncentered"
    post = fit.posterior
    u = post["u_school"].isel(school_term=0)
    samples = {"mu": _draws(post["b"].isel(fixed_term=0)),
               "tau": _draws(post["sd_school"].isel(school_term=0)),
               **{s: _draws(u.sel(school_level=s)) for s in df["school"]}}
    compare(samples, reference)


@pytest.mark.slow
def test_tight_prior_returns_the_prior(radon_subset):
    """floor ~ Normal(3, 0.001), far from the data's -0.34 +- 0.24: the exact posterior mean
    moves by under one Monte Carlo error from 3, so NUTS must return the prior."""
    tight = Prior("Normal", mu=3.0, sigma=0.001)
    exact_mean, exact_sd, _ = _radon_reference(radon_subset, tight)["b[floor]"]
    spec = ml.ModelSpec.from_formula("log_radon ~ floor + (1 | county)",
                                     priors={**RADON_PRIORS, "floor": tight})
    fit = ml.fit_hierarchical(spec, radon_subset, seed=3, frequentist=False, progressbar=False)
    x = _draws(fit.posterior["b"].sel(fixed_term="floor"))
    mcse = float(az.mcse(x, method="mean"))
    assert abs(exact_mean - 3.0) < mcse and abs(exact_sd / 0.001 - 1) < 0.01
    assert abs(x.mean() - 3.0) < 3 * mcse
    assert abs(x.std() / 0.001 - 1) < 0.05


# ---------------------------------------------------------------- overrides and errors

TOML = """
name = "sleepstudy"
data = "sleepstudy"
formula = "Reaction ~ Days + (Days | Subject)"

[sampler]
draws = 100
tune = 100
chains = 1
seed = 1
"""


@pytest.mark.parametrize(("key", "table", "target", "shown"), [
    ("sigma", '{ dist = "HalfNormal", sigma = 100.0 }', "sigma", "HalfNormal(sigma=100)"),
    ('"sd(Days | Subject)"', '{ dist = "Exponential", lam = 0.2 }', "sd(Days | Subject)",
     "Exponential(lam=0.2)"),
    ("Days", '{ dist = "StudentT", nu = 4.0, mu = 5.0, sigma = 3.0 }', "Days",
     "StudentT(mu=5, nu=4, sigma=3)"),
    ('"cor(Subject)"', '{ dist = "LKJ", eta = 2.0 }', "cor(Subject)", "LKJ(eta=2)"),
])
def test_toml_prior_changes_exactly_that_prior(tmp_path, key, table, target, shown):
    base, changed = tmp_path / "base.toml", tmp_path / "changed.toml"
    base.write_text(TOML)
    changed.write_text(TOML + f"\n[priors]\n{key} = {table}\n")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sampler checks failed")
        fits = [ml.fit_hierarchical(p, frequentist=False, progressbar=False)
                for p in (base, changed)]
    df = ml.datasets.load("sleepstudy")
    for before, after in [(fits[0].priors(), fits[1].priors()),
                          (prior_summary(base, df), prior_summary(changed, df))]:
        assert before["target"].tolist() == after["target"].tolist()
        differs = before.ne(after).any(axis=1)
        assert after.loc[differs, "target"].tolist() == [target]
        row = after.set_index("target").loc[target]
        assert row["prior"] == shown and row["source"] == key.strip('"')
        assert before.set_index("target").loc[target, "source"] == "default"


RADON = "log_radon ~ floor + (1 | county)"


@pytest.mark.parametrize(("formula", "family", "priors", "message"), [
    (RADON, "gaussian", {"flor": Prior("Normal", mu=0.0, sigma=1.0)}, "Valid targets"),
    (RADON, "gaussian", {"sigma": Prior("HalfNormal", sigma=-1.0)}, "must be positive"),
    (RADON, "gaussian", {"b": Prior("Normal", mu=0.0, sigma=0.0)}, "must be positive"),
    (RADON, "gaussian", {"cor(county)": Prior("LKJ", eta=2.0)}, "Valid targets"),
    (RADON, "gaussian", {"sd(floor | county)": Prior("HalfNormal", sigma=1.0)}, "Valid targets"),
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
     {"sigma": Prior("HalfNormal", sigma=1.0)}, "Valid targets"),
    (RADON, "gaussian", {"sd": Prior("Flat")}, "only allowed on fixed effects"),
    (RADON, "gaussian", {"sigma": Prior("Flat")}, "only allowed on fixed effects"),
    (RADON, "gaussian", {"sd": Prior("Normal", mu=0.0, sigma=1.0)}, "HalfNormal, HalfStudentT"),
    (RADON, "gaussian", {"b": Prior("Normal", sigma=1.0, scale=2.0)}, "takes parameters"),
    (RADON, "gaussian", {"b": Prior("Lognormal", mu=0.0, sigma=1.0)}, "choose one of"),
])
def test_invalid_priors_raise_spec_error(formula, family, priors, message):
    data = ml.datasets.load("cbpp" if family == "binomial" else "radon")
    with pytest.raises(SpecError, match=message) as err:  # at the spec, or once data are seen
        prior_summary(ml.ModelSpec.from_formula(formula, family=family, priors=priors), data)
    if message == "Valid targets":  # the message lists the names the model does have
        names = "Intercept, period2" if family == "binomial" else "floor, Intercept, sigma"
        assert all(name in str(err.value) for name in names.split(", "))
        assert "sd((Intercept) | " in str(err.value)


def test_flat_fixed_effect_prior_is_accepted():
    table = prior_summary(ml.ModelSpec.from_formula(RADON, priors={"b": Prior("Flat")}),
                          ml.datasets.load("radon"))
    assert table.set_index("target").loc["floor", "prior"] == "Flat()"


# ---------------------------------------------------------------- logistic: against bambi


@pytest.mark.slow
def test_logistic_posterior_matches_bambi():
    """cbpp, ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, identical priors on
    both sides; means of the fixed effects, the herd sd and the 15 herd effects within
    ``4 sqrt(mcse_a^2 + mcse_b^2)``. The priors are informative on purpose: against our fit
    with the default priors the period effects move by 16-20 times that band, and dropping
    only the sd prior moves the herd sd by 3 times it."""
    bmb = pytest.importorskip("bambi")
    df = ml.datasets.load("cbpp")
    spec = ml.ModelSpec.from_formula(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        priors={"Intercept": Prior("Normal", mu=-1.0, sigma=1.0),
                "b": Prior("Normal", mu=0.0, sigma=0.5),
                "sd": Prior("HalfNormal", sigma=0.5)},
    )
    fit = ml.fit_hierarchical(spec, df, draws=1000, tune=1000, chains=4, seed=21,
                              frequentist=False, progressbar=False)
    model = bmb.Model(
        "p(incidence, size) ~ period + (1|herd)", df, family="binomial", center_predictors=False,
        priors={"Intercept": bmb.Prior("Normal", mu=-1.0, sigma=1.0),
                "period": bmb.Prior("Normal", mu=0.0, sigma=0.5),
                "1|herd": bmb.Prior("Normal", mu=0.0, sigma=bmb.Prior("HalfNormal", sigma=0.5))},
    )
    theirs = model.fit(draws=1000, tune=1000, chains=4, random_seed=22,
                       inference_method="nutpie", progressbar=False)["posterior"].to_dataset()
    ours = fit.posterior
    pairs = {"(Intercept)": _draws(theirs["Intercept"]),
             "sd": _draws(theirs["1|herd_sigma"])}
    for level in ("2", "3", "4"):
        pairs[f"period{level}"] = _draws(theirs["period"].sel(period_dim=level))
    u_theirs = theirs["1|herd"].rename(herd__factor_dim="herd_level")
    worst = 0.0
    for name, b in pairs.items():
        a = _draws(ours["sd_herd"].isel(herd_term=0) if name == "sd"
                   else ours["b"].sel(fixed_term=name))
        tol = 4 * np.hypot(float(az.mcse(a, method="mean")), float(az.mcse(b, method="mean")))
        worst = max(worst, abs(a.mean() - b.mean()) / tol)
    u_ours = ours["u_herd"].isel(herd_term=0).sel(herd_level=u_theirs["herd_level"])
    for level in u_theirs["herd_level"].to_numpy():
        a, b = _draws(u_ours.sel(herd_level=level)), _draws(u_theirs.sel(herd_level=level))
        tol = 4 * np.hypot(float(az.mcse(a, method="mean")), float(az.mcse(b, method="mean")))
        worst = max(worst, abs(a.mean() - b.mean()) / tol)
    print(f"max |mean diff| / (4 MCSE) = {worst:.2f}")
    assert worst <= 1


# ---------------------------------------------------------------- prior predictive plot


def test_plot_prior_predictive_gaussian():
    import matplotlib

    matplotlib.use("Agg")
    from scipy.stats import gaussian_kde

    from multilevel.plots import plot_prior_predictive
    from multilevel.prior_predictive import prior_predictive

    df = ml.datasets.load("sleepstudy")
    idata = prior_predictive("Reaction ~ Days + (Days | Subject)", df, draws=30, seed=4)
    ax = plot_prior_predictive(idata, draws=12)
    replicated = [line for line in ax.get_lines() if line.get_gid() == "replicated"]
    (observed,) = [line for line in ax.get_lines() if line.get_gid() == "observed"]
    assert len(replicated) == 12
    grid = observed.get_xdata()
    np.testing.assert_allclose(observed.get_ydata(), gaussian_kde(df["Reaction"])(grid))
    first = idata["prior_predictive"]["y"].isel(chain=0, draw=0).to_numpy()
    np.testing.assert_allclose(replicated[0].get_ydata(), gaussian_kde(first)(grid))
    assert ax.get_xlabel() == "Reaction" and ax.get_title() == "Prior predictive check"
    lo, hi = ax.get_xlim()
    assert lo <= df["Reaction"].min() and hi >= df["Reaction"].max()


def test_plot_prior_predictive_logistic():
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    from multilevel.plots import plot_prior_predictive
    from multilevel.prior_predictive import prior_predictive

    df = ml.datasets.load("cbpp")
    idata = prior_predictive("cbind(incidence, size - incidence) ~ period + (1 | herd)", df,
                             draws=200, seed=4)
    if "constant_data" not in idata.children:  # prior_predictive does not store the trials
        with pytest.raises(ValueError, match="trials="):
            plot_prior_predictive(idata)
    _, ax = plt.subplots()
    assert plot_prior_predictive(idata, ax=ax, draws=150, trials=df["size"]) is ax
    bars = [p for p in ax.patches]
    rep = idata["prior_predictive"]["y"].isel(chain=0).to_numpy()[:150]
    expected, _ = np.histogram(rep.sum(axis=1) / df["size"].sum(), bins=np.linspace(0, 1, 21))
    np.testing.assert_array_equal([b.get_height() for b in bars], expected)
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "observed"]
    assert line.get_xdata()[0] == pytest.approx(df["incidence"].sum() / df["size"].sum())
    bern = ml.datasets.load("contraception")
    idata = prior_predictive("use ~ urban + (1 | district)", bern, family="bernoulli",
                             draws=40, seed=1)
    ax = plot_prior_predictive(idata, draws=40)
    assert sum(b.get_height() for b in ax.patches) == 40
    observed = ax.get_lines()[0].get_xdata()[0]
    assert observed == pytest.approx(float(np.mean(idata["observed_data"]["y"])))
