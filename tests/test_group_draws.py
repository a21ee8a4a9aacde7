"""``group_draws='summary'``: per-level summaries of the group effects instead of every draw.

References: the summaries against ``np.quantile``/``mean``/``std`` of the same draws redrawn by
:func:`multilevel.engine.recovery.effect_draws` (so the chunked pass and the redraws agree
exactly), and the tables of a summary fit against those of a full fit of the same model and
seed (different random streams for the effects: equal within Monte Carlo error).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multilevel import DataError, SpecError, datasets, fit_hierarchical, load_fit, naming
from multilevel.engine import recovery
from multilevel.engine.recovery import effect_draws, summary_labels

FORMULA = "mAch ~ meanses + cses + sector + (1 + cses | school)"
KW = dict(draws=500, tune=500, chains=2, seed=3, progressbar=False)


@pytest.fixture(scope="module")
def fits():
    df = datasets.load("hsb82")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = fit_hierarchical(FORMULA, df, group_draws="full", **KW)
        summ = fit_hierarchical(FORMULA, df, group_draws="summary", **KW)
    return df, full, summ


def test_summaries_are_the_statistics_of_the_redrawn_draws(fits) -> None:
    _, _, summ = fits
    g = summ.design.groups[0]
    u = effect_draws(summ.idata, summ.design, g.factor, np.arange(g.n_levels))
    stored = summ.idata[naming.GROUP_SUMMARIES][naming.effect_name(g.factor)]
    labels = summary_labels()
    qs = [float(s[1:]) for s in labels[2:]]
    np.testing.assert_allclose(stored.sel(summary="mean"), u.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stored.sel(summary="sd"), u.std(axis=0, ddof=1), rtol=1e-12)
    expected = np.moveaxis(np.quantile(u, qs, axis=0), 0, -1)
    np.testing.assert_allclose(stored.to_numpy()[..., 2:], expected, rtol=1e-12, atol=1e-12)
    # a subset redraws the same values as the whole
    some = np.array([150, 3, 77])
    np.testing.assert_array_equal(effect_draws(summ.idata, summ.design, g.factor, some), u[:, some])


def test_tables_agree_with_full_draws(fits) -> None:
    df, full, summ = fits
    assert any("group_draws='summary'" in n for n in summ.notes)
    a, b = full.shrinkage(), summ.shrinkage()
    sd = (a["partial_upper"] - a["partial_lower"]).to_numpy() / 3.92  # of each coefficient
    mc = sd * np.sqrt(2 / 300)  # two independent runs, an effective size of at least 300
    np.testing.assert_array_less(np.abs(a["partial_mean"] - b["partial_mean"]), 4 * mc)
    for col in ("partial_lower", "partial_upper"):  # a 2.5% quantile: ~2.7 times the mean's error
        np.testing.assert_array_less(np.abs(a[col] - b[col]), 4 * 2.7 * mc)
    ea, eb = full.group_effect_errors(), summ.group_effect_errors()
    np.testing.assert_allclose(ea["posterior_sd"], eb["posterior_sd"], rtol=0.15)
    new = df.iloc[::400].drop(columns="mAch")
    pa, pb = full.predict(new, seed=1), summ.predict(new, seed=1)
    np.testing.assert_array_less(np.abs(pa["mean"] - pb["mean"]), 4 * pa["sd"] * np.sqrt(2 / 300))
    np.testing.assert_allclose(pb["mean"], summ.predict(new, seed=1)["mean"], rtol=0)  # repeatable


def test_what_needs_every_draw_says_so(fits, tmp_path) -> None:
    _, _, summ = fits
    with pytest.raises(DataError, match="group_draws='full'"):
        summ.loo()
    with pytest.raises(DataError, match=r"central intervals \[0.5, 0.8, 0.89, 0.9, 0.95, 0.99\]"):
        summ.shrinkage(prob=0.7)
    again = load_fit(summ.save(tmp_path / "summary.fit.zip"))
    assert again.shrinkage().equals(summ.shrinkage())
    new = datasets.load("hsb82").head(5)
    np.testing.assert_array_equal(again.predict(new, seed=2)["mean"], summ.predict(new, seed=2)["mean"])


def test_auto_switches_by_size_and_options_are_checked(monkeypatch) -> None:
    df = datasets.load("sleepstudy")
    kw = dict(draws=100, tune=100, chains=1, seed=1, progressbar=False, frequentist=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = fit_hierarchical("Reaction ~ Days + (Days | Subject)", df, **kw)
        monkeypatch.setattr(recovery, "GROUP_DRAWS_BYTES", 1000)
        big = fit_hierarchical("Reaction ~ Days + (Days | Subject)", df, **kw)
    assert naming.effect_name("Subject") in small.posterior
    assert naming.effect_name("Subject") not in big.posterior
    assert naming.GROUP_SUMMARIES in big.idata.children
    with pytest.raises(SpecError, match="group_draws='every' is not an option"):
        fit_hierarchical("Reaction ~ Days + (1 | Subject)", df, group_draws="every", **kw)
    with pytest.raises(SpecError, match="integrated out"):
        fit_hierarchical("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         datasets.load("cbpp"), group_draws="summary", **kw)


def test_nested_factors_summarised_and_redrawn_consistently() -> None:
    from simulate import nested

    df, _ = nested(n_schools=300, n_classes=3, n_per=4, seed=2)  # > one chunk of outer levels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_hierarchical("y ~ x + (1 | school) + (1 | school:klass)", df, draws=200,
                               tune=200, chains=1, seed=4, progressbar=False, group_draws="summary")
    for g in fit.design.groups:
        u = effect_draws(fit.idata, fit.design, g.factor, np.arange(g.n_levels))
        stored = fit.idata[naming.GROUP_SUMMARIES][naming.effect_name(g.factor)]
        np.testing.assert_allclose(stored.sel(summary="mean"), u.mean(axis=0), rtol=1e-12, atol=1e-14)
    table = fit.shrinkage()
    assert set(table["group"]) == {"school", "school:klass"} and table["partial_mean"].notna().all()


def test_summary_means_follow_the_exact_conditional_mean_in_every_chunk() -> None:
    """Over 600 groups (three chunks), the summary mean of each group effect equals the average
    over draws of its exact conditional mean ``(Sigma^-1 + Z_j'Z_j / sigma^2)^-1 Z_j'(y_j -
    X_j b) / sigma^2``, computed here group by group from the DataFrame, within 4.5 Monte Carlo
    errors (the posterior sd, at least the conditional one, over sqrt(draws); 1,200 values)."""
    rng = np.random.default_rng(12)
    n_groups, per = 600, 5
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    u = rng.normal(0, [0.7, 0.3], (n_groups, 2))
    y = 1 + 0.5 * x + u[g, 0] + u[g, 1] * x + rng.normal(size=g.size)
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_hierarchical("y ~ x + (1 + x | g)", df, draws=300, tune=300, chains=1, seed=3,
                               progressbar=False, frequentist=False, group_draws="summary")
    post = fit.posterior
    b = post["b"].to_numpy().reshape(-1, 2)
    sig = post["sigma"].to_numpy().ravel()
    sd = post["sd_g"].to_numpy().reshape(-1, 2)
    cor = post["cor_g"].to_numpy().reshape(-1, 2, 2)[:, 0, 1]
    levels = np.array(fit.design.groups[0].levels).astype(int)
    mean = np.zeros((n_groups, 2))
    for s in range(len(sig)):
        cov = np.array([[sd[s, 0] ** 2, cor[s] * sd[s, 0] * sd[s, 1]],
                        [cor[s] * sd[s, 0] * sd[s, 1], sd[s, 1] ** 2]])
        prec = np.linalg.inv(cov)
        for j, level in enumerate(levels):
            rows = g == level
            Z = np.column_stack([np.ones(rows.sum()), x[rows]])
            r = y[rows] - b[s, 0] - b[s, 1] * x[rows]
            mean[j] += np.linalg.solve(prec + Z.T @ Z / sig[s] ** 2, Z.T @ r / sig[s] ** 2)
    mean /= len(sig)
    stored = fit.idata[naming.GROUP_SUMMARIES][naming.effect_name("g")]
    err = stored.sel(summary="sd").to_numpy() / np.sqrt(len(sig))
    np.testing.assert_array_less(np.abs(stored.sel(summary="mean").to_numpy() - mean), 4.5 * err)
