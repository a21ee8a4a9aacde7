"""Data for the benchmarks: the bundled datasets and simulated data with fixed seeds.

Every generator is a pure function of its arguments (same arguments, same frame) and returns a
pandas DataFrame whose grouping column ``g`` is a Categorical built from integer codes, so even
the 10-million-row frame costs only its numeric columns plus one int32 code per row.

Examples
--------
>>> df = sim_gauss_slope(n_rows=1_000, n_groups=10)
>>> df.shape, df["g"].cat.categories.size
((1000, 3), 10)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["load_bundled", "sim_gauss_intercept", "sim_gauss_slope", "sim_logit_slope"]

CHUNK_ROWS = 1_000_000


def load_bundled(name: str) -> pd.DataFrame:
    """A dataset bundled with ``multilevel`` (``hsb82``, ``sleepstudy``, ...)."""
    from multilevel import datasets

    return datasets.load(name)


def _groups(codes: np.ndarray, n_groups: int) -> pd.Categorical:
    """Grouping factor from integer codes, labelled ``g0000``, ``g0001``, ..."""
    width = len(str(n_groups - 1))
    labels = [f"g{k:0{width}d}" for k in range(n_groups)]
    return pd.Categorical.from_codes(codes, categories=labels)


def _correlated_effects(rng, n_groups: int, sds: tuple[float, float], cor: float) -> np.ndarray:
    """Group effects (n_groups, 2) with the given sds and correlation."""
    cov = np.array([[sds[0] ** 2, cor * sds[0] * sds[1]], [cor * sds[0] * sds[1], sds[1] ** 2]])
    return rng.multivariate_normal(np.zeros(2), cov, size=n_groups)


def _balanced_codes(rng, n_rows: int, n_groups: int) -> np.ndarray:
    """Every group gets ``n_rows // n_groups`` rows (give or take one), in shuffled order."""
    codes = np.arange(n_rows, dtype=np.int32) % n_groups
    rng.shuffle(codes)
    return codes


def sim_gauss_slope(n_rows: int = 200_000, n_groups: int = 2_000, seed: int = 20240601) -> pd.DataFrame:
    """Gaussian correlated varying intercept and slope: ``y ~ x + (1 + x | g)``.

    True values: intercept 1.0, slope 0.5, group sds 1.0 and 0.5 with correlation 0.3,
    residual sd 2.0; ``x`` is standard normal.
    """
    rng = np.random.default_rng(seed)
    codes = _balanced_codes(rng, n_rows, n_groups)
    u = _correlated_effects(rng, n_groups, (1.0, 0.5), 0.3)
    x = rng.standard_normal(n_rows)
    y = 1.0 + 0.5 * x + u[codes, 0] + u[codes, 1] * x + 2.0 * rng.standard_normal(n_rows)
    return pd.DataFrame({"y": y, "x": x, "g": _groups(codes, n_groups)})


def sim_logit_slope(n_rows: int = 50_000, n_groups: int = 500, seed: int = 20240602) -> pd.DataFrame:
    """Bernoulli correlated varying intercept and slope on a binary ``x``: ``y ~ x + (1 + x | g)``.

    True values (logit scale): intercept -0.5, slope 1.0, group sds 0.8 and 0.5 with
    correlation -0.3. ``x`` is 0/1 with probability 1/2, so the rows collapse into at most
    ``2 * n_groups`` binomial cells.
    """
    rng = np.random.default_rng(seed)
    codes = _balanced_codes(rng, n_rows, n_groups)
    u = _correlated_effects(rng, n_groups, (0.8, 0.5), -0.3)
    x = rng.integers(0, 2, size=n_rows).astype(float)
    eta = -0.5 + 1.0 * x + u[codes, 0] + u[codes, 1] * x
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "g": _groups(codes, n_groups)})


def sim_gauss_intercept(
    n_rows: int = 10_000_000, n_groups: int = 2_000, seed: int = 20240603
) -> pd.DataFrame:
    """Gaussian varying intercept ``y ~ x + (1 | g)``, generated in chunks of one million rows.

    True values: intercept 1.0, slope 0.5, group sd 1.0, residual sd 2.0. The arrays are
    allocated once and filled chunk by chunk, so the generator's peak is the final columns
    (8 + 8 + 4 bytes a row) plus one chunk of temporaries.
    """
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(n_groups)
    x = np.empty(n_rows)
    y = np.empty(n_rows)
    codes = np.empty(n_rows, dtype=np.int32)
    for start in range(0, n_rows, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n_rows)
        k = stop - start
        c = rng.integers(0, n_groups, size=k, dtype=np.int32)
        codes[start:stop] = c
        x[start:stop] = rng.standard_normal(k)
        y[start:stop] = rng.standard_normal(k)
        y[start:stop] *= 2.0
        y[start:stop] += 1.0 + 0.5 * x[start:stop] + u[c]
    return pd.DataFrame({"y": y, "x": x, "g": _groups(codes, n_groups)}, copy=False)
