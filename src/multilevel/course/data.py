r"""The multilevel course's computations on data alone: no model fit needed.

Snijders and Bosker's (2012) hand computations, each one call:

* :func:`center`: the group mean :math:`\bar x_{.j}` and the within-group deviation
  :math:`x_{ij} - \bar x_{.j}` (or grand-mean centring) as new columns;
* :func:`add_contextual_columns`: the ``<x>_between`` / ``<x>_within`` columns a spec made with
  ``contextual=[...]`` names, computed from ``x`` and the spec's grouping factor;
* :func:`within_between`: the total, between-group, within-group and contextual regressions;
* :func:`icc_anova`: the one-way ANOVA estimator of the intraclass correlation;
* :func:`design_effect` and :func:`effective_n`;
* :func:`check_level1_variance`: a clear error when the data fit exactly (zero residual
  variance), where a Gaussian multilevel likelihood is unbounded.

Examples
--------
>>> from multilevel import datasets
>>> wb = within_between(datasets.load("course_example"), "y", "x", "group")
>>> wb.set_index(["model", "term"])["estimate"].round(4).loc["between"].to_dict()
{'(Intercept)': 8.0, 'x_between': -1.0}
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from multilevel.design import build_design
from multilevel.design.checks import design_level1_variance
from multilevel.design.frame import add_contextual_columns, center, grouped, numeric_column
from multilevel.errors import DataError
from multilevel.spec.contextual import (
    BETWEEN_SUFFIX,
    WITHIN_SUFFIX,
    between_name,
    contextual_variables,
    within_name,
)
from multilevel.spec.io import as_spec

__all__ = [
    "BETWEEN_SUFFIX",
    "WITHIN_SUFFIX",
    "add_contextual_columns",
    "between_name",
    "center",
    "check_level1_variance",
    "contextual_variables",
    "design_effect",
    "effective_n",
    "icc_anova",
    "icc_anova_sums",
    "within_between",
    "within_name",
]


def _ols(X: np.ndarray, y: np.ndarray, names: list[str], dof: int | None = None) -> pd.DataFrame:
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = len(y) - X.shape[1] if dof is None else dof
    s2 = float(resid @ resid) / dof if dof > 0 else np.nan
    cov = s2 * np.linalg.pinv(X.T @ X)
    out = pd.DataFrame({"term": names, "estimate": coef, "std_error": np.sqrt(np.diag(cov))})
    return out.assign(r_squared=1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum()),
                      _cov=[cov] * len(names))


def within_between(df: pd.DataFrame, response: str, x: str, group: str) -> pd.DataFrame:
    r"""The total, between, within and contextual regressions of ``response`` on ``x``.

    * ``total``: OLS of :math:`y_{ij}` on :math:`x_{ij}`, ignoring the groups;
    * ``between``: OLS of the group means :math:`\bar y_{.j}` on :math:`\bar x_{.j}` (one row
      per group, unweighted);
    * ``within``: the slope :math:`\beta_W` of :math:`y_{ij} - \bar y_{.j}` on
      :math:`x_{ij} - \bar x_{.j}` (the fixed-effects regression ``y ~ x + group``; its
      standard error uses :math:`N - J - 1` degrees of freedom);
    * ``contextual``: OLS of :math:`y_{ij}` on :math:`\bar x_{.j}` and
      :math:`x_{ij} - \bar x_{.j}`, plus the row ``contextual`` :math:`= \beta_B - \beta_W`, the
      coefficient of :math:`\bar x_{.j}` in :math:`y \sim \bar x_{.j} + x_{ij}`.

    Returns a long table: model, term, estimate, std_error, r_squared. A warning says when a
    regression fits exactly (residual variance zero, standard errors 0).

    Examples
    --------
    >>> from multilevel import datasets
    >>> wb = within_between(datasets.load("course_example"), "y", "x", "group")
    >>> wb.query("model == 'contextual'")[["term", "estimate"]].round(4).values.tolist()
    [['(Intercept)', 8.0], ['x_between', -1.0], ['x_within', 1.0], ['contextual', -2.0]]
    """
    import warnings

    data = center(df, x, group)
    y = numeric_column(df, response).to_numpy()
    xb, xw = data[between_name(x)].to_numpy(), data[within_name(x)].to_numpy()
    codes = grouped(df, group).ngroup().to_numpy()
    n_groups = int(codes.max()) + 1
    ones = np.ones_like(y)
    means = np.column_stack(
        [np.bincount(codes, weights=v) / np.bincount(codes) for v in (y, df[x].to_numpy(float))]
    )
    y_dev = y - means[codes, 0]
    b, w = between_name(x), within_name(x)
    tables = {
        "total": _ols(np.column_stack([ones, df[x].to_numpy(float)]), y, ["(Intercept)", x]),
        "between": _ols(np.column_stack([np.ones(n_groups), means[:, 1]]), means[:, 0],
                        ["(Intercept)", b]),
        "within": _ols(xw[:, None], y_dev, [w], dof=len(y) - n_groups - 1),
        "contextual": _ols(np.column_stack([ones, xb, xw]), y, ["(Intercept)", b, w]),
    }
    ctx = tables["contextual"]
    cov = ctx["_cov"].iloc[0]
    extra = pd.DataFrame({
        "term": ["contextual"], "estimate": [ctx["estimate"].iloc[1] - ctx["estimate"].iloc[2]],
        "std_error": [np.sqrt(max(cov[1, 1] + cov[2, 2] - 2 * cov[1, 2], 0.0))],
        "r_squared": [ctx["r_squared"].iloc[0]],
    })
    tables["contextual"] = pd.concat([ctx, extra], ignore_index=True)
    exact = [m for m, t in tables.items() if np.isclose(t["r_squared"].iloc[0], 1.0, atol=1e-12)]
    if exact:
        warnings.warn(
            f"The {', '.join(exact)} regression(s) fit the data exactly (residual variance 0): "
            "their standard errors are 0 and a multilevel model of these data has a zero "
            "level-1 variance (see check_level1_variance).",
            UserWarning,
            stacklevel=2,
        )
    frames = [t.drop(columns="_cov").assign(model=m) for m, t in tables.items()]
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "term", "estimate", "std_error", "r_squared"]]


def icc_anova(df: pd.DataFrame, response: str, group: str) -> pd.DataFrame:
    r"""One-way ANOVA estimator of the intraclass correlation, unequal group sizes allowed.

    With :math:`N` rows in :math:`J` groups of sizes :math:`n_j` (Snijders and Bosker 2012,
    sec. 3.3.1):

    .. math::

        MSB = \frac{\sum_j n_j (\bar y_{.j} - \bar y_{..})^2}{J - 1},\quad
        MSW = \frac{\sum_{ij} (y_{ij} - \bar y_{.j})^2}{N - J},\quad
        \tilde n = \frac{N - \sum_j n_j^2 / N}{J - 1},

        \hat\tau^2 = \frac{MSB - MSW}{\tilde n},\quad \hat\sigma^2 = MSW,\quad
        \hat\rho_I = \frac{\hat\tau^2}{\hat\tau^2 + \hat\sigma^2}
                   = \frac{MSB - MSW}{MSB + (\tilde n - 1) MSW}.

    :math:`\hat\rho_I` can be negative (reported as is). ``F = MSB / MSW`` tests
    :math:`\tau^2 = 0` on :math:`(J - 1, N - J)` degrees of freedom.

    Returns one row: n_obs, n_groups, n_tilde, msb, msw, tau2, sigma2, icc, F, p_value.

    Examples
    --------
    >>> from multilevel import datasets
    >>> icc_anova(datasets.load("course_example"), "y", "group")["icc"].round(4).tolist()
    [0.4286]
    """
    y = numeric_column(df, response).to_numpy()
    codes = grouped(df, group).ngroup().to_numpy()
    n_j = np.bincount(codes).astype(float)
    N, J = float(len(y)), len(n_j)
    if J < 2 or N <= J:
        raise DataError("The ANOVA ICC needs at least two groups and more rows than groups.")
    ybar_j = np.bincount(codes, weights=y) / n_j
    msb = float(np.sum(n_j * (ybar_j - y.mean()) ** 2) / (J - 1))
    msw = float(np.sum((y - ybar_j[codes]) ** 2) / (N - J))
    return _anova_row(N, n_j, msb, msw)


def icc_anova_sums(n_j: np.ndarray, sums: np.ndarray) -> pd.DataFrame:
    """:func:`icc_anova` from per-group row counts ``n_j`` and ``(sum y, sum y^2)`` per group
    (``(J, 2)``): the same table, for data larger than memory.

    Examples
    --------
    >>> from multilevel import datasets
    >>> df = datasets.load("course_example")
    >>> g = df.groupby("group")["y"]
    >>> sums = np.column_stack([g.sum(), g.apply(lambda v: (v**2).sum())])
    >>> table = icc_anova_sums(g.size().to_numpy(), sums)
    >>> bool(np.allclose(table.drop(columns="n_obs"), icc_anova(df, "y", "group").drop(columns="n_obs")))
    True
    """
    n_j = np.asarray(n_j, dtype=float)
    N, J = float(n_j.sum()), len(n_j)
    if J < 2 or N <= J:
        raise DataError("The ANOVA ICC needs at least two groups and more rows than groups.")
    ybar_j, ybar = sums[:, 0] / n_j, sums[:, 0].sum() / N
    msb = float(np.sum(n_j * (ybar_j - ybar) ** 2) / (J - 1))
    msw = float(np.sum(sums[:, 1] - n_j * ybar_j**2) / (N - J))
    return _anova_row(N, n_j, msb, msw)


def _anova_row(N: float, n_j: np.ndarray, msb: float, msw: float) -> pd.DataFrame:
    J = len(n_j)
    n_tilde = float((N - np.sum(n_j**2) / N) / (J - 1))
    tau2 = (msb - msw) / n_tilde
    f = msb / msw if msw > 0 else np.inf
    return pd.DataFrame([{
        "n_obs": int(N), "n_groups": J, "n_tilde": n_tilde, "msb": msb, "msw": msw,
        "tau2": tau2, "sigma2": msw, "icc": (msb - msw) / (msb + (n_tilde - 1) * msw),
        "F": f, "p_value": float(stats.f.sf(f, J - 1, N - J)),
    }])


def _size(n) -> float:
    """The group size used by the design effect: n itself, or sum n_j^2 / N for sizes."""
    arr = np.asarray(n, dtype=float)
    if arr.ndim == 0:
        if arr < 1:
            raise DataError(f"A group size must be >= 1, got {float(arr)}.")
        return float(arr)
    if arr.size == 0 or np.any(arr < 1):
        raise DataError("Group sizes must be a non-empty list of counts >= 1.")
    return float(np.sum(arr**2) / np.sum(arr))


def design_effect(icc, n):
    r"""Design effect of a two-stage sample: :math:`1 + (n - 1)\rho`.

    ``n`` is one (average) group size, or the list of group sizes :math:`n_j`; then the
    unequal-size version :math:`1 + (\tilde n_w - 1)\rho` with :math:`\tilde n_w = \sum_j n_j^2
    / N = \bar n (1 + CV^2)` (Kish 1965; Eldridge, Ashby and Kerry 2006; CV the coefficient of
    variation of the sizes, population variance) is used. ``icc`` may be an array (e.g.
    posterior draws); the result has its shape.

    Examples
    --------
    >>> float(design_effect(0.1, 11))
    2.0
    >>> round(float(design_effect(0.1, [5, 15])), 6)  # sum n^2 / N = 250 / 20 = 12.5
    2.15
    """
    return 1.0 + (_size(n) - 1.0) * np.asarray(icc, dtype=float)


def effective_n(icc, n, n_total: float | None = None):
    r"""Effective sample size :math:`N / (1 + (n - 1)\rho)` (see :func:`design_effect`).

    ``n_total`` defaults to :math:`\sum_j n_j` when ``n`` lists the group sizes.

    Examples
    --------
    >>> float(effective_n(0.1, 11, n_total=220))
    110.0
    """
    if n_total is None:
        if np.ndim(n) == 0:
            raise DataError("Pass n_total (the number of rows) when n is a single group size.")
        n_total = float(np.sum(n))
    return float(n_total) / design_effect(icc, n)


def ar1_effective_n(rho, n):
    r"""Effective sample size of ``n`` equally spaced AR(1) measurements,
    :math:`n (1 - \rho) / (1 + \rho)`.

    With :math:`e_t = \rho e_{t-1} + \nu_t` the mean of ``n`` measurements has, for large
    ``n``, :math:`\operatorname{Var}(\bar Y) = \sigma^2/n \cdot (1 + \rho)/(1 - \rho)`: the
    variance of the mean of :math:`n (1 - \rho)/(1 + \rho)` independent ones. A negative
    :math:`\rho` gives more than ``n``.

    Examples
    --------
    >>> float(ar1_effective_n(0.5, 12))
    4.0
    """
    rho = np.asarray(rho, dtype=float)
    if np.any(np.abs(rho) >= 1):
        raise DataError(f"rho must lie in (-1, 1), got {rho}.")
    return np.asarray(n, dtype=float) * (1 - rho) / (1 + rho)


def check_level1_variance(design, df: pd.DataFrame | None = None, rtol: float = 1e-10) -> None:
    """Raise :class:`DataError` when a Gaussian model's residual variance is zero.

    ``design`` is a :class:`~multilevel.design.Design`, or a spec / lme4 formula with its data
    ``df``.

    If the response is reproduced exactly by the fixed effects plus a separate set of
    varying-term coefficients for every group (the least-squares fit with per-group
    coefficients leaves a residual sum of squares below ``rtol`` times the total), the
    likelihood grows without bound as sigma -> 0 (or, when no group has more rows than
    varying terms, sigma^2 is not identified): REML/ML and the posterior then report
    meaningless numbers. Checked per grouping factor in O(rows); logistic designs and known
    standard errors pass.

    Examples
    --------
    >>> from multilevel import datasets
    >>> try:
    ...     check_level1_variance("y ~ x + (1 | group)", datasets.load("course_example"))
    ... except DataError:
    ...     print("zero residual variance")
    zero residual variance
    """
    if df is not None:
        spec = as_spec(design, None)
        design = build_design(spec, add_contextual_columns(spec, df))
    design_level1_variance(design, rtol)
