"""Cross-check against bambi 0.21 on one shared model: radon ``log_radon ~ floor + (1 | county)``.

The same priors are set explicitly on both sides (bambi's ``center_predictors=False`` so that
its ``Intercept`` prior is on the same, uncentered intercept):

=====================  ==================================  ==================================
parameter              multilevel target                   bambi name
=====================  ==================================  ==================================
intercept              ``Intercept``: Normal(1, 5)         ``Intercept``
floor                  ``b``: Normal(0, 0.2)               ``floor``
residual sd            ``sigma``: HalfNormal(1)            ``sigma``
county sd              ``sd``: HalfNormal(0.15)            ``1|county_sigma`` (hyperprior)
county effects         ``u_county`` (deviations)           ``1|county``
=====================  ==================================  ==================================

* Both PyMC models (multilevel's non-centered one and bambi's) give the same log density,
  Jacobians of the log transforms included, at random unconstrained points: an exact check
  that the priors and the likelihood are the same model.
* NUTS on multilevel's default (marginal) model and on bambi's (non-centered) model give the
  same posterior means and sds of the intercept, floor, sigma, the county sd and all 85 county
  effects, within ``4 sqrt(mcse_a^2 + mcse_b^2)``.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

import multilevel as ml
from multilevel.design import build_design
from multilevel.model import build_model

bmb = pytest.importorskip("bambi")

FORMULA = "log_radon ~ floor + (1 | county)"
BAMBI_FORMULA = "log_radon ~ floor + (1|county)"
# Informative on purpose, so that a prior ignored on either side moves the posterior by far
# more than Monte Carlo error: against the package's default priors, the floor effect's posterior
# mean moves from -0.663 to -0.592 (1.1 posterior sd; 12x the 4-MCSE band) and the county sd's
# from 0.320 to 0.295 (4x the band).
FLOOR_SD = 0.2
TAU_SD = 0.15


def _specs():
    spec = ml.ModelSpec.from_formula(FORMULA, priors={
        "Intercept": ml.Prior("Normal", mu=1.0, sigma=5.0),
        "b": ml.Prior("Normal", mu=0.0, sigma=FLOOR_SD),
        "sigma": ml.Prior("HalfNormal", sigma=1.0),
        "sd": ml.Prior("HalfNormal", sigma=TAU_SD),
    })
    bambi_priors = {
        "Intercept": bmb.Prior("Normal", mu=1.0, sigma=5.0),
        "floor": bmb.Prior("Normal", mu=0.0, sigma=FLOOR_SD),
        "sigma": bmb.Prior("HalfNormal", sigma=1.0),
        "1|county": bmb.Prior("Normal", mu=0.0, sigma=bmb.Prior("HalfNormal", sigma=TAU_SD)),
    }
    return spec, bambi_priors


@pytest.fixture(scope="module")
def radon():
    return ml.datasets.load("radon")


def test_same_log_density_as_bambi(radon):
    spec, bambi_priors = _specs()
    design = build_design(spec, radon)
    ours = build_model(design, parameterization="noncentered")
    theirs = bmb.Model(BAMBI_FORMULA, radon, priors=bambi_priors, center_predictors=False)
    theirs.build()
    model_b = theirs.backend.model
    levels = list(design.groups[0].levels)
    bambi_levels = list(model_b.coords["county__factor_dim"])
    order = [levels.index(lev) for lev in bambi_levels]
    logp_ours, logp_theirs = ours.compile_logp(), model_b.compile_logp()
    rng = np.random.default_rng(0)
    for _ in range(5):
        b = rng.normal([1.3, -0.6], 0.3)
        log_sd, log_sigma = rng.normal(np.log(0.3), 0.5), rng.normal(np.log(0.7), 0.3)
        z = rng.normal(size=len(levels))
        point_ours = {
            "b": b, "sd_county_log__": np.array([log_sd]), "z_county": z[:, None],
            "sigma_log__": np.array(log_sigma),
        }
        point_theirs = {
            "Intercept": np.array(b[0]), "floor": np.array(b[1]),
            "sigma_log__": np.array(log_sigma), "1|county_sigma_log__": np.array(log_sd),
            "1|county_offset": z[order],
        }
        assert set(point_theirs) == {v.name for v in model_b.value_vars}
        np.testing.assert_allclose(logp_ours(point_ours), logp_theirs(point_theirs), rtol=1e-10)


def _check(a, b, name: str) -> None:
    """``a``, ``b``: ``(chain, draw, ...)`` numpy arrays; means and sds within 4 MCSE."""
    for method, stat in (("mean", np.mean), ("sd", np.std)):
        diff = stat(a, axis=(0, 1)) - stat(b, axis=(0, 1))
        mcse_a, mcse_b = (np.asarray(az.mcse(x, method=method)) for x in (a, b))
        tol = 4 * np.sqrt(mcse_a**2 + mcse_b**2)
        ratio = float(np.max(np.abs(diff) / tol))
        print(f"{name} {method}: max |diff| / (4 MCSE) = {ratio:.2f}")
        assert ratio <= 1, f"{name} {method}: max |diff| / (4 MCSE) = {ratio:.2f}"


@pytest.mark.slow
def test_posterior_matches_bambi(radon):
    spec, bambi_priors = _specs()
    fit = ml.fit_hierarchical(spec, radon, draws=1000, tune=1000, chains=4, seed=31,
                              frequentist=False, progressbar=False)
    assert fit.parameterization == "marginal"
    priors = fit.priors().set_index("target")["source"]
    assert priors.to_dict() == {"Intercept": "Intercept", "floor": "b", "sigma": "sigma",
                                "sd((Intercept) | county)": "sd"}
    model = bmb.Model(BAMBI_FORMULA, radon, priors=bambi_priors, center_predictors=False)
    idata = model.fit(draws=1000, tune=1000, chains=4, random_seed=32,
                      inference_method="nutpie", progressbar=False)
    theirs = idata["posterior"].to_dataset()
    ours = fit.posterior

    def arr(da):
        return da.transpose("chain", "draw", ...).to_numpy()

    _check(arr(ours["b"].sel(fixed_term="(Intercept)")), arr(theirs["Intercept"]), "Intercept")
    _check(arr(ours["b"].sel(fixed_term="floor")), arr(theirs["floor"]), "floor")
    _check(arr(ours["sigma"]), arr(theirs["sigma"]), "sigma")
    _check(arr(ours["sd_county"].isel(county_term=0)), arr(theirs["1|county_sigma"]), "sd")
    u_theirs = theirs["1|county"].rename(county__factor_dim="county_level")
    u_ours = ours["u_county"].isel(county_term=0).sel(county_level=u_theirs["county_level"])
    _check(arr(u_ours), arr(u_theirs), "u_county")
