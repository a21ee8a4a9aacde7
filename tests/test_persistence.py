"""Fits round-trip through save/load_fit, and the same data + spec + seed give the same draws."""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import multilevel as ml
from multilevel import DataError, datasets
from multilevel.fit import load_fit
from multilevel.results.persistence import data_fingerprint

SAMPLER = {"draws": 50, "tune": 50, "chains": 2, "seed": 11, "progressbar": False}
TABLES = ("fixed_effects", "variance_components", "icc", "shrinkage", "diagnostics", "priors",
          "compare")


def quiet_fit(*args, **kwargs) -> ml.HierarchicalFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: convergence warnings are expected
        return ml.fit_hierarchical(*args, **{**SAMPLER, **kwargs})


@pytest.fixture(scope="module")
def sleep_fit():
    return quiet_fit("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp_fit():
    return quiet_fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                     datasets.load("cbpp"))


@pytest.fixture(scope="module")
def hsb_fit():
    """Categorical predictor and factor in R's level order, rows dropped for NaN."""
    df = datasets.load("hsb82").iloc[:1200].copy()
    df.loc[[3, 50, 700], "cses"] = np.nan
    return quiet_fit("mAch ~ sector + cses + (1 + cses | school)", df, missing="drop")


def assert_same_fit(loaded: ml.HierarchicalFit, fit: ml.HierarchicalFit) -> None:
    assert loaded.model is None
    assert loaded.spec == fit.spec
    assert loaded.parameterization == fit.parameterization
    assert loaded.notes == fit.notes
    assert repr(loaded) == repr(fit)
    assert dict(loaded.idata.attrs) == dict(fit.idata.attrs)
    xr.testing.assert_identical(loaded.posterior, fit.posterior)
    assert data_fingerprint(loaded.design) == data_fingerprint(fit.design)
    assert loaded.design.dropped_rows == fit.design.dropped_rows
    for name in TABLES:
        if name == "compare" and fit.frequentist is None:
            continue
        pd.testing.assert_frame_equal(getattr(loaded, name)(), getattr(fit, name)(), obj=name)
    assert loaded.summary() == fit.summary()


@pytest.mark.parametrize("name", ["sleep_fit", "cbpp_fit", "hsb_fit"])
def test_round_trip_answers_every_summary_identically(name, request, tmp_path):
    fit = request.getfixturevalue(name)
    path = fit.save(tmp_path / "fit.zip")
    assert path.is_file()
    assert_same_fit(load_fit(path), fit)


def test_parameterizations_covered(sleep_fit, cbpp_fit):
    assert sleep_fit.parameterization == "marginal"
    assert cbpp_fit.parameterization == "linearized"


def test_dropped_rows_survive(hsb_fit, tmp_path):
    assert hsb_fit.design.dropped_rows == 3
    loaded = load_fit(hsb_fit.save(tmp_path / "hsb.zip"))
    assert "3 rows with missing values dropped" in loaded.summary()
    assert loaded.design.groups[0].levels == hsb_fit.design.groups[0].levels
    assert loaded.design.fixed_names == hsb_fit.design.fixed_names


def test_round_trip_without_frequentist(sleep_fit, tmp_path):
    fit = dataclasses.replace(sleep_fit, frequentist=None, notes=("a note",))
    loaded = load_fit(fit.save(tmp_path / "nofreq.zip"))
    assert loaded.frequentist is None and loaded.notes == ("a note",)
    assert_same_fit(loaded, fit)


def test_other_major_version_warns(sleep_fit, tmp_path):
    idata = sleep_fit.idata.copy()
    versions = ml.fit.package_versions() | {"pymc": "5.0.0", "arviz": "0.20.0"}
    idata.attrs = dict(sleep_fit.idata.attrs) | {"multilevel_versions": json.dumps(versions)}
    path = dataclasses.replace(sleep_fit, idata=idata).save(tmp_path / "old.zip")
    with pytest.warns(UserWarning, match="sampled with") as record:
        loaded = load_fit(path)
    messages = " ".join(str(w.message) for w in record)
    assert "sampled with pymc 5.0.0" in messages and "sampled with arviz 0.20.0" in messages
    pd.testing.assert_frame_equal(loaded.fixed_effects(), sleep_fit.fixed_effects())


def test_same_versions_do_not_warn(sleep_fit, tmp_path, recwarn):
    load_fit(sleep_fit.save(tmp_path / "same.zip"))
    assert not [w for w in recwarn if "sampled with" in str(w.message)]


def test_altered_data_fail_the_fingerprint(sleep_fit, tmp_path):
    frame = sleep_fit.design.frame.copy()
    frame.loc[0, "Reaction"] += 1.0
    altered = dataclasses.replace(sleep_fit, design=dataclasses.replace(sleep_fit.design,
                                                                        frame=frame))
    with pytest.raises(DataError, match="fingerprint"):
        load_fit(altered.save(tmp_path / "altered.zip"))


def test_not_a_fit_file(sleep_fit, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fit(tmp_path / "missing.zip")
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    with pytest.raises(DataError, match="not a saved multilevel fit"):
        load_fit(junk)
    with zipfile.ZipFile(other := tmp_path / "other.zip", "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(DataError, match="not a saved multilevel fit"):
        load_fit(other)
    with pytest.raises(DataError, match="directory"):
        sleep_fit.save(tmp_path)


# --- determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "data", "parameterization"),
    [
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "marginal"),
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "noncentered"),
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "noncentered"),
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "linearized"),
    ],
)
def test_same_seed_same_draws_nutpie(formula, data, parameterization):
    df = datasets.load(data)
    a = quiet_fit(formula, df, parameterization=parameterization, frequentist=False)
    b = quiet_fit(formula, df, parameterization=parameterization, frequentist=False)
    assert a.parameterization == parameterization
    xr.testing.assert_equal(a.posterior, b.posterior)  # attributes hold timings
    c = quiet_fit(formula, df, parameterization=parameterization, frequentist=False, seed=12)
    assert not a.posterior["b"].equals(c.posterior["b"])


def test_same_seed_same_draws_pymc():
    df = datasets.load("sleepstudy")
    kwargs = {"sampler": "pymc", "frequentist": False, "draws": 30, "tune": 30}
    a = quiet_fit("Reaction ~ Days + (1 | Subject)", df, **kwargs)
    b = quiet_fit("Reaction ~ Days + (1 | Subject)", df, **kwargs)
    xr.testing.assert_equal(a.posterior, b.posterior)  # attributes hold timings
