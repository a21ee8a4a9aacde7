"""Data larger than memory: Dask DataFrames and Parquet data sets reduced to statistics.

References, none computed by the code under test:

* the REML/ML fits from statistics (:mod:`multilevel.frequentist.profiled`) against mixedlm
  (lme4's algorithm) on the same rows in memory, to 1e-6 relative in beta, sigma and the
  variance components (one factor, two nested factors, uncorrelated slopes);
* the posterior from a Dask DataFrame (run on a ``distributed.LocalCluster`` of two workers)
  against the posterior from the same rows as pandas: every hyperparameter's mean within 4
  combined MCSE;
* a logistic model collapsed on Dask against lme4's Laplace fit of the 0/1 rows in memory
  (mixedlm): the same estimates, the log-likelihood shifted by the binomial constant;
* errors and checks give the same messages as for pandas, and whatever needs rows says so.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from multilevel import DataError, ModelSpec, SpecError, fit_hierarchical, load_fit
from multilevel.design import build_design
from multilevel.frequentist import fit_design, fit_frequentist
from multilevel.frequentist.mixed import fit_mixed
from multilevel.frequentist.profiled import STATS_FIT_ROWS

dd = pytest.importorskip("dask.dataframe")

SLOPE = "y ~ x + w + (1 + x | g)"


def _simulate(n_rows: int, n_groups: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    x, w = rng.normal(size=n_rows), rng.normal(size=n_rows)
    u0, u1 = rng.normal(0, 0.8, n_groups), rng.normal(0, 0.4, n_groups)
    y = 1.0 + 0.5 * x - 0.3 * w + u0[g] + u1[g] * x + rng.normal(0, 1.2, n_rows)
    return pd.DataFrame({"y": y, "x": x, "w": w, "g": [f"s{k:04d}" for k in g],
                         "cat": np.where(rng.random(n_rows) < 0.4, "b", "a")})


def _quiet_fit(formula, data, **kw):
    """``fit_hierarchical`` with its sampler-check warnings silenced (short test runs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_hierarchical(formula, data, progressbar=False, **kw)


def _mem_and_dask(formula: str, df: pd.DataFrame, **kw):
    """The same model fitted to ``df`` in memory and as a 3-partition Dask DataFrame."""
    return _quiet_fit(formula, df, **kw), _quiet_fit(formula, dd.from_pandas(df, npartitions=3), **kw)


def _nested(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(40), 60)
    klass = np.tile(np.repeat(np.arange(4), 15), 40)  # labels repeat in every school: nested
    x = rng.normal(size=school.size)
    u1, u2 = rng.normal(0, 0.7, 40), rng.normal(0, 0.5, (40, 4))
    y = 2 + 0.4 * x + u1[school] + u2[school, klass] + rng.normal(size=school.size)
    return pd.DataFrame({"y": y, "x": x, "school": school, "klass": klass})


def _compare_to_mixedlm(formula: str, df: pd.DataFrame, ddf, method: str) -> None:
    ours = fit_frequentist(formula, ddf, method=method)
    ref = fit_mixed(build_design(ModelSpec.from_formula(formula), df), method)
    np.testing.assert_allclose(ours.beta, ref.beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.sigma, ref.sigma, rtol=1e-6)
    for a, b in zip(ours.groups, ref.groups, strict=True):
        np.testing.assert_allclose(a.cov, b.cov, rtol=1e-5, atol=1e-7 * np.abs(b.cov).max())
    np.testing.assert_allclose(ours.loglik, ref.loglik, rtol=0, atol=1e-6)
    assert ours.loglik >= ref.loglik - 1e-9  # at least as far up as lme4's optimizer gets
    np.testing.assert_allclose(ours.cov_fixed, ref.cov_fixed, rtol=1e-5)
    r_ours, r_ref = ours.ranef_table, ref.ranef_table
    keys = ["group", "level", "term"]
    assert (r_ours[keys].to_numpy() == r_ref[keys].to_numpy()).all()
    scale = np.abs(r_ref["estimate"]).max()
    np.testing.assert_allclose(r_ours["estimate"], r_ref["estimate"], atol=1e-5 * scale)
    np.testing.assert_allclose(r_ours["cond_sd"], r_ref["cond_sd"], rtol=1e-5)
    np.testing.assert_allclose(ours.var_random, ref.var_random, rtol=1e-5)
    np.testing.assert_allclose(ours.var_fixed, ref.var_fixed, rtol=1e-8)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("formula", [SLOPE, "y ~ x + cat + (1 + x || g)", "y ~ cat + (1 | g)"])
def test_reml_from_dask_statistics_equals_mixedlm(formula: str, method: str) -> None:
    df = _simulate(6000, 60)
    _compare_to_mixedlm(formula, df, dd.from_pandas(df, npartitions=5), method)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | school/klass)",
                                     "y ~ x + (1 + x | school) + (1 | school:klass)"])
def test_nested_reml_from_dask_statistics_equals_mixedlm(formula: str) -> None:
    df = _nested()
    _compare_to_mixedlm(formula, df, dd.from_pandas(df, npartitions=7), "REML")


def test_large_pandas_data_take_the_statistics_path_and_equal_mixedlm() -> None:
    df = _simulate(STATS_FIT_ROWS, 400, seed=5)
    design = build_design(ModelSpec.from_formula(SLOPE), df)
    ours, ref = fit_design(design), fit_mixed(design)
    assert ours.refit is not fit_mixed  # the statistics path
    np.testing.assert_allclose(ours.beta, ref.beta, rtol=1e-6)
    np.testing.assert_allclose(ours.theta, ref.theta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.loglik, ref.loglik, atol=1e-6)


def test_statistics_equal_the_in_memory_ones_whatever_the_partitions() -> None:
    df = _simulate(3000, 30).sort_values("x")  # every group in every partition
    spec = ModelSpec.from_formula("y ~ x + cat + (1 + x | g)")
    g = df["g"].to_numpy()
    levels = np.unique(g)
    idx = np.searchsorted(levels, g)
    X = np.column_stack([np.ones(len(df)), df["x"], (df["cat"] == "b").astype(float)])
    Z, y = X[:, :2], df["y"].to_numpy()
    ref = {"ztz": np.einsum("ia,ib->iab", Z, Z), "ztx": np.einsum("ia,ib->iab", Z, X),
           "zty": Z * y[:, None]}
    for parts in (2, 9):
        d = build_design(spec, dd.from_pandas(df, npartitions=parts))
        assert d.groups[0].levels == tuple(levels) and d.fixed_names[2] == "catb"
        st = d.summary.stats
        for name, per_row in ref.items():  # summed by group with pandas, not the package
            expected = np.stack([per_row[idx == j].sum(axis=0) for j in range(len(levels))])
            np.testing.assert_allclose(getattr(st, name), expected, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(st.xtx, X.T @ X, rtol=1e-12)
        np.testing.assert_allclose(st.n, np.bincount(idx), rtol=0)


@pytest.mark.slow
def test_posterior_on_a_local_cluster_agrees_with_pandas() -> None:
    distributed = pytest.importorskip("distributed")
    df = _simulate(20000, 80, seed=3)
    before = df.copy()
    kw = dict(draws=1000, tune=1000, chains=2, seed=4, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = fit_hierarchical(SLOPE, df, **kw)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            big = fit_hierarchical(SLOPE, dd.from_pandas(df, npartitions=8), seed=9,
                                   **{k: v for k, v in kw.items() if k != "seed"})
    pd.testing.assert_frame_equal(df, before)
    assert not big.design.has_rows and big.design.n_obs == len(df)
    a, b = mem.variance_components(), big.variance_components()
    import arviz as az

    for var in ("b", "sigma", "sd_g"):
        ma = az.mcse(mem.posterior[var], method="mean")
        mb = az.mcse(big.posterior[var], method="mean")
        diff = np.abs(mem.posterior[var].mean(("chain", "draw")) - big.posterior[var].mean(("chain", "draw")))
        assert bool((diff < 4 * np.sqrt(ma**2 + mb**2)).all()), var
    # sds, correlation, sigma: mixedlm stops within ~1e-7 of the optimum in theta, which a
    # correlation near 0 turns into a larger relative difference; so 1e-6 absolute as well
    np.testing.assert_allclose(a["reml"], b["reml"], rtol=1e-6, atol=1e-6)
    # every table works without rows
    for table in (big.fixed_effects(), big.icc(), big.shrinkage(), big.design_effect(), big.r2(),
                  big.icc_methods(), big.group_effect_errors()):
        numbers = table.select_dtypes("number").drop(columns=["reml_lower", "reml_upper"],
                                                      errors="ignore")
        assert len(table) and numbers.notna().any().all()
    assert big.fixed_effects()["reml_lower"].notna().all()  # Wald: no rows to profile over
    shrink_a, shrink_b = mem.shrinkage(), big.shrinkage()
    np.testing.assert_allclose(shrink_a["no_pooling"], shrink_b["no_pooling"], atol=0.05)
    np.testing.assert_allclose(shrink_a["n"], shrink_b["n"])
    np.testing.assert_allclose(mem.icc_methods()["mean"].iloc[0], big.icc_methods()["mean"].iloc[0],
                               rtol=1e-9)
    assert "Model:" in big.summary()


def test_parquet_directory_glob_and_toml(tmp_path) -> None:
    df = _simulate(4000, 40)
    dd.from_pandas(df, npartitions=4).to_parquet(tmp_path / "pq")
    ref = fit_frequentist(SLOPE, df)
    for source in (tmp_path / "pq", str(tmp_path / "pq" / "*.parquet")):
        fit = fit_frequentist(SLOPE, source)
        np.testing.assert_allclose(fit.beta, ref.beta, rtol=1e-6)
    toml = tmp_path / "model.toml"
    toml.write_text(f'formula = "{SLOPE}"\ndata = "{tmp_path / "pq"}"\n')
    fit = _quiet_fit(toml, None, draws=200, tune=200, chains=1, seed=1)
    assert fit.design.summary.n_partitions == 4
    np.testing.assert_allclose(fit.frequentist.beta, ref.beta, rtol=1e-6)


def test_save_and_load_a_fit_without_rows(tmp_path) -> None:
    df = _simulate(3000, 30)
    fit = _quiet_fit(SLOPE, dd.from_pandas(df, npartitions=3), draws=200, tune=200, chains=2,
                     seed=2)
    again = load_fit(fit.save(tmp_path / "big.fit.zip"))
    pd.testing.assert_frame_equal(fit.fixed_effects(), again.fixed_effects())
    pd.testing.assert_frame_equal(fit.shrinkage(), again.shrinkage())
    new = df.head(5).drop(columns="y")
    pd.testing.assert_frame_equal(fit.predict(new), again.predict(new))
    assert not again.design.has_rows


def test_logistic_model_collapses_to_binomial_counts_on_dask() -> None:
    rng = np.random.default_rng(7)
    n, groups = 8000, 50
    g = rng.integers(0, groups, n)
    x = rng.integers(0, 3, n)
    sex = np.where(rng.random(n) < 0.5, "f", "m")
    eta = -0.5 + 0.6 * x + 0.4 * (sex == "m") + rng.normal(0, 0.7, groups)[g]
    df = pd.DataFrame({"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x,
                       "sex": sex, "g": g})
    formula = "y ~ x + sex + (1 | g)"
    ours = fit_frequentist(formula, dd.from_pandas(df, npartitions=4), family="bernoulli")
    ref = fit_mixed(build_design(ModelSpec.from_formula(formula, family="bernoulli"), df))
    np.testing.assert_allclose(ours.beta, ref.beta, rtol=2e-4, atol=1e-4)
    np.testing.assert_allclose(ours.theta, ref.theta, rtol=2e-4)
    counts = ours.design
    # the 0/1 rows' log-likelihood (lme4's), and BIC over the rows
    np.testing.assert_allclose(ours.loglik, ref.loglik, atol=1e-3)
    np.testing.assert_allclose(ours.bic, ref.bic, atol=2e-3)
    assert ours.nobs == len(df) and counts.n_obs < len(df) and counts.trials.sum() == len(df)
    assert "collapsed to" in counts.notes[0]
    # ICC parts weight each count by its rows: equal to the 0/1 rows' values
    np.testing.assert_allclose(ours.var_fixed, ref.var_fixed, rtol=1e-3)
    np.testing.assert_allclose(ours.var_random, ref.var_random, rtol=1e-3)


@pytest.mark.slow
def test_bayesian_logistic_fit_of_dask_counts(tmp_path) -> None:
    rng = np.random.default_rng(8)
    n, groups = 6000, 40
    g = rng.integers(0, groups, n)
    x = rng.integers(0, 3, n).astype(float)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.8, groups)[g]
    df = pd.DataFrame({"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x, "g": g})
    formula = "y ~ x + (1 | g)"
    mem, big = _mem_and_dask(formula, df, family="bernoulli", draws=600, tune=600, chains=2, seed=5)
    assert big.spec.family == "binomial" and big.design.n_rows == n
    for var in ("b", "sd_g"):
        a, b = mem.posterior[var], big.posterior[var]
        sd = float(a.std())
        assert float(np.abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))).max()) < 0.25 * sd
    ia, ib = mem.icc(), big.icc()
    np.testing.assert_allclose(ia["mean"], ib["mean"], atol=0.02)
    np.testing.assert_allclose(mem.design_effect()["n_mean"], big.design_effect()["n_mean"])
    with pytest.raises(DataError, match="whole .group, covariate. patterns"):
        big.loo()
    again = load_fit(big.save(tmp_path / "counts.fit.zip"))
    pd.testing.assert_frame_equal(again.fixed_effects(), big.fixed_effects())
    assert again.frequentist.nobs == n


def test_continuous_covariate_in_a_logistic_model_on_dask_is_refused(monkeypatch) -> None:
    import multilevel.design.collapse as part

    monkeypatch.setattr(part, "MAX_PATTERNS", 500)  # 2,000 rows with a continuous covariate
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.integers(0, 2, 2000), "z": rng.normal(size=2000),
                       "g": rng.integers(0, 20, 2000)})
    with pytest.raises(DataError, match=r"needs the rows in memory.*2,000 rows"):
        fit_frequentist("y ~ z + (1 | g)", dd.from_pandas(df, npartitions=2), family="bernoulli")


def test_checks_give_the_pandas_messages() -> None:
    df = _simulate(2000, 20)
    df.loc[[3, 50, 700], "x"] = np.nan
    ddf = dd.from_pandas(df, npartitions=4)
    with pytest.raises(DataError) as pandas_err:
        build_design(ModelSpec.from_formula(SLOPE), df)
    with pytest.raises(DataError) as dask_err:
        build_design(ModelSpec.from_formula(SLOPE), ddf)
    assert str(pandas_err.value) == str(dask_err.value)
    with pytest.warns(UserWarning, match="dropped 3 of 2000 rows"):
        d = build_design(ModelSpec.from_formula(SLOPE), ddf, missing="drop")
    assert d.n_obs == 1997 and d.dropped_rows == 3
    const = dd.from_pandas(_simulate(500, 10).assign(k=1.0), npartitions=2)
    with pytest.raises(DataError, match="Predictor 'k' is constant"):
        build_design(ModelSpec.from_formula("y ~ k + (1 | g)"), const)
    with pytest.raises(DataError, match="Column 'z' used by the model is not in the data"):
        build_design(ModelSpec.from_formula("y ~ z + (1 | g)"), ddf)


@pytest.mark.parametrize(("formula", "match"), [
    ("y ~ scale(x) + (1 | g)", "each partition of a Dask DataFrame would compute differently"),
    ("y ~ x + (1 | g) + (1 | cat)", "Crossed grouping factors"),
    ("y ~ x + (1 | g) + ar1(x | g)", "needs each series' rows in time order"),
])
def test_models_that_need_rows_are_refused_clearly(formula: str, match: str) -> None:
    ddf = dd.from_pandas(_simulate(500, 10), npartitions=2)
    with pytest.raises((SpecError, DataError), match=match):
        build_design(ModelSpec.from_formula(formula), ddf)


def test_what_needs_rows_says_so() -> None:
    df = _simulate(1500, 15)
    fit = _quiet_fit(SLOPE, dd.from_pandas(df, npartitions=3), draws=100, tune=100, chains=1,
                     seed=1)
    for call in (fit.loo, fit.plot_ppc, fit.predict):
        with pytest.raises(DataError, match="needs the rows in memory.*1,500 rows of a Dask"):
            call()
    with pytest.raises(DataError, match="needs the rows in memory"):
        fit.frequentist.confint("profile")
    assert fit.frequentist.confint("Wald")["lower"].notna().any()


def test_new_data_on_float_group_ids_find_their_groups(tmp_path) -> None:
    df = _simulate(3000, 30).assign(g=lambda d: d["g"].str[1:].astype(float))  # 7.0, 12.0, ...
    mem, big = _mem_and_dask(SLOPE, df, draws=300, tune=300, chains=2, seed=6)
    new = df.head(8).drop(columns="y")
    a = mem.predict(new, new_levels="error", seed=1)
    b = big.predict(new, new_levels="error", seed=1)  # every level is known: no error
    assert bool((np.abs(a["mean"] - b["mean"]) < 4 * a["sd"] * np.sqrt(2 / 300)).all())
    np.testing.assert_allclose(big.frequentist.predict(new), mem.frequentist.predict(new), rtol=1e-6)


def test_csv_names_with_glob_characters_stay_csv(tmp_path) -> None:
    from multilevel.design import load_data

    path = tmp_path / "runs[2024].csv"
    _simulate(100, 5).to_csv(path, index=False)
    spec = ModelSpec.from_formula(SLOPE)
    assert isinstance(load_data(spec, path), pd.DataFrame)


def test_report_of_a_fit_without_rows(tmp_path) -> None:
    from multilevel.report import write_report

    df = _simulate(1500, 15)
    fit = _quiet_fit(SLOPE, dd.from_pandas(df, npartitions=2), draws=100, tune=100, chains=1,
                     seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = write_report(fit, tmp_path / "r.html").read_text()
    assert "Fitted from the sufficient statistics of 1,500 rows" in text
    assert "Posterior predictive check" not in text and "Caterpillar" in text
