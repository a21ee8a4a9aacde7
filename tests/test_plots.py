"""Posterior plots: each is rendered to PNG and its drawn elements checked against the fit."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, StepPatch

import multilevel as ml
from multilevel.plots import (
    plot_caterpillar,
    plot_pair,
    plot_ppc,
    plot_shrinkage,
    plot_trace,
    plot_variance,
    posterior_predictive,
)

matplotlib.use("Agg")  # before any figure exists

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _fit(formula, df, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains fail the ESS checks
        return ml.fit_hierarchical(formula, df, draws=200, tune=200, chains=2, seed=1,
                                   progressbar=False, **kwargs)


@pytest.fixture(scope="module")
def sleep():
    return _fit("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp():
    return _fit(CBPP, ml.datasets.load("cbpp"), family="binomial")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _png(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _by_gid(ax, gid):
    """The lines drawn with ``gid`` (errorbar also tags its bar collections)."""
    return [a for a in ax.get_children() if a.get_gid() == gid and isinstance(a, Line2D)]


def test_trace_rows_chains_and_ranks(sleep, tmp_path):
    fig = plot_trace(sleep)
    _png(fig, tmp_path, "trace")
    trace, rank = fig.axes[0::2], fig.axes[1::2]
    assert [ax.get_ylabel() for ax in trace] == [
        "b[(Intercept)]", "b[Days]", "sd_Subject[(Intercept)]", "sd_Subject[Days]",
        "cor_Subject[(Intercept),Days]", "sigma",
    ]
    sigma = sleep.posterior["sigma"].transpose("chain", "draw").to_numpy()
    lines = trace[-1].get_lines()
    assert len(lines) == 2  # one per chain, no divergences in this fit
    np.testing.assert_array_equal(lines[1].get_ydata(), sigma[1])
    steps = [p for p in rank[0].patches if isinstance(p, StepPatch)]
    assert [p.get_data().values.sum() for p in steps] == [200, 200]
    assert (trace[0].get_title(), rank[0].get_title()) == ("trace", "rank (all chains pooled)")
    assert _legend(trace[0]) == ["chain 0", "chain 1"]


def test_trace_marks_divergences_and_selects(sleep, tmp_path):
    idata = sleep.idata.copy(deep=True)
    stats = idata["sample_stats"].to_dataset()
    flags = np.zeros((2, 200), dtype=bool)
    flags[0, [5, 17]] = flags[1, 40] = True
    idata["sample_stats"] = stats.assign(diverging=(("chain", "draw"), flags))
    fit = dataclasses.replace(sleep, idata=idata)
    fig = plot_trace(fit, var_names=["sd_Subject", "sigma"])
    _png(fig, tmp_path, "trace_div")
    assert len(fig.axes) == 6
    for ax in fig.axes[0::2]:
        (rug,) = _by_gid(ax, "divergences")
        assert rug.get_xdata().tolist() == [5, 17, 40]
    assert "divergent (3)" in _legend(fig.axes[0])
    with pytest.raises(KeyError, match="sd_nope"):
        plot_trace(sleep, var_names="sd_nope")


def test_caterpillar_intervals_sorted_with_reml(sleep, tmp_path):
    ax = plot_caterpillar(sleep, term="Days")
    _png(ax.figure, tmp_path, "caterpillar")
    rows = sleep.shrinkage("Subject").query("term == 'Days'").sort_values("partial_mean")
    (intervals,) = [c for c in ax.collections if isinstance(c, LineCollection)
                    and c.get_gid() == "posterior_interval"]
    segs = np.array(intervals.get_segments())
    assert segs.shape[0] == 18
    np.testing.assert_allclose(segs[:, 0, 0], rows["partial_lower"])
    np.testing.assert_allclose(segs[:, 1, 0], rows["partial_upper"])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rows["level"])
    (blup,) = _by_gid(ax, "frequentist")  # the conditional modes, offset below each interval
    np.testing.assert_allclose(blup.get_xdata(), rows["blup"])
    np.testing.assert_allclose(blup.get_ydata(), np.arange(18) - 0.35)
    assert "REML conditional mode ± 1.96 cond. sd" in _legend(ax)
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("Subject", "Days: group coefficient")


def test_caterpillar_thins_labels_and_reuses_ax(cbpp):
    fig, ax = plt.subplots()
    assert plot_caterpillar(cbpp, max_labels=5, ax=ax) is ax
    assert len(ax.get_yticklabels()) == 5  # 15 herds, every 3rd labelled
    assert any(t.startswith("Laplace conditional mode") for t in _legend(ax))
    with pytest.raises(KeyError, match="no varying term 'Days'"):
        plot_caterpillar(cbpp, term="Days")
    with pytest.raises(KeyError, match="No grouping factor 'farm'"):
        plot_caterpillar(cbpp, group="farm")


def test_shrinkage_arrows_by_group_size(cbpp, tmp_path):
    ax = plot_shrinkage(cbpp)
    _png(ax.figure, tmp_path, "shrinkage")
    table = cbpp.shrinkage("herd")
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 15
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "trials in group (log scale)"
    no_pool, partial = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(no_pool.get_offsets()[:, 1], table["no_pooling"])
    np.testing.assert_allclose(partial.get_offsets()[:, 1], table["partial_mean"])
    trials = cbpp.design.trials
    size = np.bincount(cbpp.design.groups[0].index, weights=trials)
    np.testing.assert_allclose(partial.get_offsets()[:, 0], size, rtol=0.1)  # ties jittered
    assert len(set(no_pool.get_sizes())) > 1  # sized by n_j
    (pooled,) = [ln for ln in ax.get_lines() if ln.get_label() == "complete pooling"]
    assert pooled.get_ydata()[0] == pytest.approx(table["complete_pooling"].iloc[0])
    assert _legend(ax) == ["no pooling (own data)", "partial pooling (posterior mean)",
                           "complete pooling"]


def test_shrinkage_equal_sizes_sorted_by_group(sleep):
    ax = plot_shrinkage(sleep, term="Days")  # every subject has 10 rows: x = sorted groups
    rows = sleep.shrinkage("Subject").query("term == 'Days'")
    assert ax.get_xscale() == "linear"
    assert len([p for p in ax.patches if isinstance(p, FancyArrowPatch)]) == 18
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == list(rows.sort_values("no_pooling")["level"])


def test_shrinkage_undefined_no_pooling_and_no_frequentist(tmp_path):
    df = ml.datasets.load("cbpp").copy()
    df.loc[df["herd"].astype(str) == "8", "incidence"] = 0  # one row, no cases: MLE is -inf
    fit = _fit(CBPP, df, family="binomial", frequentist=False)
    table = fit.shrinkage("herd")
    assert table["no_pooling"].isna().sum() == 1
    ax = plot_shrinkage(fit)
    _png(ax.figure, tmp_path, "shrinkage_nan")
    assert len([p for p in ax.patches if isinstance(p, FancyArrowPatch)]) == 14
    assert "partial pooling only: no-pooling estimate undefined (1)" in _legend(ax)
    only = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    assert only.get_offsets()[0, 1] == pytest.approx(table.loc[7, "partial_mean"])
    ax = plot_caterpillar(fit)
    assert not _by_gid(ax, "frequentist")  # no REML/Laplace bars without a frequentist fit
    fig = plot_variance(fit)
    assert not any(_by_gid(a, "frequentist") for a in fig.axes)


def test_variance_marks_reml_estimates(sleep, tmp_path):
    fig = plot_variance(sleep)
    _png(fig, tmp_path, "variance")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [
        "sd Subject: (Intercept)", "sd Subject: Days", "cor Subject: (Intercept),Days",
        "sd Residual", "ICC (adjusted) Subject", "ICC (conditional) all", "ICC (at_x0) Subject",
    ]
    vc = sleep.variance_components()
    icc = sleep.icc().set_index(["group", "type"])
    expected = [
        *vc.query("stat == 'sd' and group == 'Subject'")["reml"],
        vc.query("stat == 'cor'")["reml"].item(),
        vc.query("stat == 'sd' and group == 'Residual'")["reml"].item(),
        icc.loc[("Subject", "adjusted"), "reml"],
        icc.loc[("all", "conditional"), "reml"],
        icc.loc[("Subject", "at_x0"), "reml"],
    ]
    for ax, value in zip(panels, expected, strict=True):
        (line,) = _by_gid(ax, "frequentist")
        assert line.get_xdata()[0] == pytest.approx(value)
        assert any(t.startswith("REML ") for t in _legend(ax))
    (mean,) = [ln for ln in panels[4].get_lines() if ln.get_label() == "posterior mean"]
    assert mean.get_xdata()[0] == pytest.approx(icc.loc[("Subject", "adjusted"), "mean"])


def test_variance_logistic_and_given_axes(cbpp):
    fig, axes = plt.subplots(1, 4)
    assert plot_variance(cbpp, axes=axes) is fig
    assert [ax.get_title() for ax in axes[:3]] == [
        "sd herd: (Intercept)", "ICC (adjusted) herd", "ICC (conditional) all"
    ]
    assert not axes[3].get_visible()
    (line,) = _by_gid(axes[0], "frequentist")
    vc = cbpp.variance_components().query("stat == 'sd'")
    assert line.get_xdata()[0] == pytest.approx(vc["laplace"].item())
    assert line.get_label().startswith("Laplace")
    with pytest.raises(ValueError, match="Need 3 axes"):
        plot_variance(cbpp, axes=[axes[0]])


def test_ppc_gaussian_densities(sleep, tmp_path):
    ax = plot_ppc(sleep, draws=30, seed=0)
    _png(ax.figure, tmp_path, "ppc")
    assert len(_by_gid(ax, "replicated")) == 30
    assert len(_by_gid(ax, "observed")) == 1
    assert _legend(ax) == ["replicated y (30 draws)", "observed y"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Reaction", "density")
    y_rep = posterior_predictive(sleep, draws=30, seed=0)
    np.testing.assert_array_equal(y_rep, posterior_predictive(sleep, draws=30, seed=0))
    assert y_rep.shape == (30, 180)
    y = sleep.design.y
    assert abs(y_rep.mean() - y.mean()) < 10  # replicates centred on the data (ms)
    assert y_rep.std(axis=1).mean() == pytest.approx(y.std(), rel=0.15)


def test_ppc_logistic_proportions(cbpp, tmp_path):
    ax = plot_ppc(cbpp, seed=1)
    _png(ax.figure, tmp_path, "ppc_binomial")
    (points,) = _by_gid(ax, "groups")
    g = cbpp.design.groups[0]
    observed = np.bincount(g.index, cbpp.design.y) / np.bincount(g.index, cbpp.design.trials)
    np.testing.assert_allclose(points.get_xdata(), observed)
    assert len(points.get_ydata()) == 15
    assert "observed = replicated" in _legend(ax)
    assert ax.get_xlabel() == "observed proportion per herd"
    y_rep = posterior_predictive(cbpp, draws=50, seed=1)
    assert np.all((y_rep >= 0) & (y_rep <= cbpp.design.trials) & (y_rep % 1 == 0))


def test_pair_plot(sleep, cbpp, tmp_path):
    fig = plot_pair(sleep)
    _png(fig, tmp_path, "pair")
    grid = np.array(fig.axes).reshape(3, 3)
    assert [ax.axison for ax in grid[0]] == [True, False, False]
    scatter = [c for c in grid[2, 0].collections if isinstance(c, PathCollection)]
    assert len(scatter[0].get_offsets()) == 400
    assert grid[2, 0].get_ylabel() == "cor Subject: (Intercept),Days"
    assert grid[2, 1].get_xlabel() == "sd Subject: Days"
    reml = sleep.variance_components().query("stat == 'sd' and group == 'Subject'")["reml"]
    diag = [_by_gid(grid[i, i], "frequentist")[0].get_xdata()[0] for i in range(2)]
    np.testing.assert_allclose(diag, reml)
    assert len(plot_pair(cbpp, group="herd").axes) == 1
