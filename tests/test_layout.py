"""The data path runs once per fit: one design, one set of sufficient statistics, and the
frequentist fit on the same design; the engine's argument records are the one definition of
what each compiled kernel takes.

The counters wrap the real functions wherever a module of the package holds them, so a call
from any stage (sampling, recovery, diagnostics, sensitivity, the frequentist fit, tables) is
counted, not only calls through one import.
"""

from __future__ import annotations

import inspect
import re
import sys
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import multilevel as ml
from multilevel.design import build
from multilevel.design import statistics as design_statistics
from multilevel.engine import callbacks
from multilevel.engine.args import MarginalArgs, NestedArgs, NoncenteredArgs
from multilevel.frequentist import mixed


@pytest.fixture
def counted(monkeypatch):
    """Counts calls of the design builder, the statistics and the mixedlm adapter."""
    targets = {
        "build_design": build.build_design,
        "sufficient_stats": design_statistics.sufficient_stats,
        "nested_stats": design_statistics.nested_stats,
        "fit_mixed": mixed.fit_mixed,
    }
    calls: Counter[str] = Counter()

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    for module in [m for name, m in sys.modules.items() if name.startswith("multilevel")]:
        for attr, value in list(vars(module).items()):
            for name, real in targets.items():
                if value is real:
                    monkeypatch.setattr(module, attr, counting(name, real))
    return calls


def _fit(formula, df, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ml.fit_hierarchical(formula, df, draws=100, tune=100, chains=2, seed=3,
                                   progressbar=False, **kwargs)


def _use_every_table(fit):
    for table in (fit.fixed_effects, fit.variance_components, fit.icc, fit.shrinkage,
                  fit.diagnostics, fit.compare):
        assert len(table()) > 0


def test_one_design_and_one_set_of_statistics_per_marginal_fit(counted):
    fit = _fit("Reaction ~ Days + (Days | Subject)", ml.datasets.load("sleepstudy"))
    assert fit.parameterization == "marginal"
    _use_every_table(fit)
    # fit_mixed twice: the REML fit, and lme4's ML refit that the profile intervals use
    assert counted == {"build_design": 1, "sufficient_stats": 1, "fit_mixed": 2}


def test_nested_statistics_are_computed_once(counted):
    rng = np.random.default_rng(4)
    school = np.repeat(np.arange(12), 12)
    klass = np.repeat(np.arange(48), 3)
    y = rng.normal(size=12)[school] + 0.5 * rng.normal(size=48)[klass] + rng.normal(size=144)
    df = pd.DataFrame({"y": y, "school": school.astype(str), "klass": (klass % 4).astype(str)})
    fit = _fit("y ~ 1 + (1 | school/klass)", df)
    assert fit.parameterization == "marginal"
    _use_every_table(fit)
    assert counted == {"build_design": 1, "nested_stats": 1, "fit_mixed": 2}  # REML + ML refit


def test_linearized_fit_builds_one_design_and_no_statistics(counted):
    fit = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", ml.datasets.load("cbpp"))
    assert fit.parameterization == "linearized"
    _use_every_table(fit)
    assert counted == {"build_design": 1, "fit_mixed": 1}


ACCESSOR = {"f": "_flt", "i": "_int", "b": "_bool"}


@pytest.mark.parametrize("record", [MarginalArgs, NestedArgs, NoncenteredArgs])
def test_records_name_the_kernel_parameters_in_order(record):
    kernel = callbacks.KERNELS[{v: k for k, v in callbacks.RECORDS.items()}[record]]
    params = list(inspect.signature(kernel.py_func).parameters)
    assert params[0] == "theta"
    assert params[1:] == list(record.kinds())


@pytest.mark.parametrize("kernel", sorted(callbacks.RECORDS))
def test_callbacks_read_every_field_with_the_accessor_of_its_kind(kernel):
    """Each C callback unpacks field ``name`` from slot ``_X.name`` with the accessor of the
    kind the record declares (``f3`` -> ``_f3``, ``f`` -> ``_flt``), into a local ``name``."""
    record = callbacks.RECORDS[kernel]
    source = inspect.getsource(callbacks._RAW[kernel])
    reads = re.findall(r"^\s+(\w+) = (_\w+)\(h, _\w\.(\w+)\)$", source, flags=re.M)
    assert [local for local, _, _ in reads] == list(record.kinds())
    for local, accessor, slot in reads:
        kind = record.kinds()[slot]
        assert local == slot
        assert accessor == ACCESSOR.get(kind, f"_{kind}"), (local, accessor, kind)
    call = re.search(r"lp, grad = \w+\(\s*x, ([^)]*)\)", source).group(1)
    assert [a.strip() for a in call.split(",") if a.strip()] == list(record.kinds())



def test_no_source_file_over_450_lines():
    """Small modules: every file of the package stays under 450 lines."""
    from pathlib import Path

    root = Path(ml.__file__).parent
    sizes = {p.relative_to(root).as_posix(): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > 450} == {}
