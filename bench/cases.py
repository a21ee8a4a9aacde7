"""The benchmark cases: model, data, sampler settings, and which tools fit them.

Tools: ``ours`` (``multilevel.fit_hierarchical`` as users call it, the frequentist fit beside the
posterior), ``ours_bayes`` (the Bayesian part alone, ``frequentist=False``), ``freq`` (our
REML/Laplace fit, :func:`multilevel.frequentist.fit_frequentist`), ``bambi_nutpie`` and
``bambi_pymc`` (bambi 0.21 with ``inference_method='nutpie'`` and with PyMC's default NUTS), and
the R peers ``rstanarm`` and ``brms`` (``rpeers.py``, when R and the packages are installed), and
``lme4`` (REML / Laplace in R), the peer of ``freq``.

``--quick`` keeps the same models but with 2 chains x 200 draws (200 tune) and shrinks the
simulated data (:attr:`Case.quick_rows`, :attr:`Case.quick_groups`), so the harness runs in
minutes.

Examples
--------
>>> get_case("hsb82").formula
'mAch ~ meanses + cses + sector + (1 + cses | school)'
>>> get_case("sim_gauss_10m", quick=True).n_rows
100000
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import simulate

__all__ = ["ALL_TOOLS", "BAMBI_TOOLS", "CASES", "QUICK_CASES", "R_TOOLS", "Case", "get_case"]

BAMBI_TOOLS = ("bambi_nutpie", "bambi_pymc")
R_TOOLS = ("rstanarm", "brms", "lme4")
ALL_TOOLS = ("ours", "ours_bayes", "freq", *BAMBI_TOOLS, *R_TOOLS)
QUICK_SETTINGS = {"draws": 200, "tune": 200, "chains": 2}


@dataclass(frozen=True)
class Case:
    """One model on one dataset, fitted by each of ``tools`` with the same settings."""

    name: str
    formula: str
    family: str
    source: str  # 'hsb82', 'sleepstudy' (bundled) or a generator name in simulate.py
    group: str  # the grouping column (with crossed factors: the one with the most levels)
    tools: tuple[str, ...] = ALL_TOOLS
    n_rows: int | None = None  # simulated cases only
    n_groups: int | None = None
    quick_rows: int | None = None
    quick_groups: int | None = None
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 2024

    def load(self) -> pd.DataFrame:
        """The case's data (bundled, or simulated with the generator's fixed seed)."""
        if self.n_rows is None:
            return simulate.load_bundled(self.source)
        return getattr(simulate, self.source)(n_rows=self.n_rows, n_groups=self.n_groups)

    def quick(self) -> Case:
        """The same case with fewer draws and (for simulated data) fewer rows."""
        rows = self.quick_rows if self.n_rows is not None else None
        groups = self.quick_groups if self.n_rows is not None else None
        return replace(self, n_rows=rows, n_groups=groups, **QUICK_SETTINGS)


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("hsb82", "mAch ~ meanses + cses + sector + (1 + cses | school)", "gaussian", "hsb82", "school"),
        Case("sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian", "sleepstudy", "Subject"),
        Case("contraception", "use ~ urban + age + livch + (1 + urban | district)", "bernoulli",
             "contraception", "district"),
        Case(
            "sim_gauss_200k", "y ~ x + (1 + x | g)", "gaussian", "sim_gauss_slope", "g",
            n_rows=200_000, n_groups=2_000, quick_rows=5_000, quick_groups=100,
            tools=("ours", "ours_bayes", "freq", *BAMBI_TOOLS, "lme4"),
        ),
        Case(
            "sim_logit_50k", "y ~ x + (1 + x | g)", "bernoulli", "sim_logit_slope", "g",
            n_rows=50_000, n_groups=500, quick_rows=2_000, quick_groups=40,
            tools=("ours", "ours_bayes", "freq", *BAMBI_TOOLS),
        ),
        Case(
            "insteval", "y ~ service + (1 | s) + (1 | d) + (1 | dept)", "gaussian", "insteval", "s",
            tools=("ours", "ours_bayes", "freq", "bambi_nutpie", "lme4"),
        ),
        Case(
            "sim_gauss_10m", "y ~ x + (1 | g)", "gaussian", "sim_gauss_intercept", "g",
            tools=("ours", "freq"), n_rows=10_000_000, n_groups=2_000,
            quick_rows=100_000, quick_groups=200,
        ),
    )
}
QUICK_CASES = ("hsb82", "sleepstudy")


def get_case(name: str, *, quick: bool = False) -> Case:
    """The case called ``name``, shrunk by :meth:`Case.quick` when ``quick``."""
    if name not in CASES:
        raise SystemExit(f"unknown case {name!r}: choose from {', '.join(CASES)}")
    case = CASES[name]
    return case.quick() if quick else case
