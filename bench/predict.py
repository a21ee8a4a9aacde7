"""Prediction speed and memory: 10^6 new rows from the 200k-row varying-slope fit.

Fits ``sim_gauss_200k`` (``y ~ x + (1 + x | g)``, 200,000 rows, 2,000 groups; 4 chains x 1,000
draws, as in :mod:`cases`), then summarizes ``fit.predict`` on 10^6 new rows (``x`` standard
normal, ``g`` one of the fitted groups, 1% in 100 new groups whose effects are drawn) three
times with different newdata seeds. Reports the median wall time and the peak resident memory
during prediction above the resident memory after the fit (Linux: the peak is reset through
``/proc/self/clear_refs`` before each call). Targets (issue #15): < 20 s and < 1 GB.

Run: ``.venv/bin/python bench/predict.py [--rows N] [--quick]``; writes ``bench/PREDICT.md``
(``--quick``: 5,000-row fit, 10^5 new rows, no file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from cases import get_case

import multilevel as ml


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def newdata(fit, n_rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    levels = np.asarray(fit.design.groups[0].levels, dtype=object)
    g = levels[rng.integers(0, len(levels), n_rows)]
    new = rng.random(n_rows) < 0.01
    g[new] = np.array([f"new{k}" for k in range(100)], dtype=object)[rng.integers(0, 100, new.sum())]
    return pd.DataFrame({"x": rng.standard_normal(n_rows), "g": g})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    case = get_case("sim_gauss_200k", quick=args.quick)
    rows = 100_000 if args.quick else args.rows
    df = case.load()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ml.fit_hierarchical(case.formula, df, draws=case.draws, tune=case.tune,
                                  chains=case.chains, seed=case.seed, progressbar=False)
    fit_s = time.perf_counter() - t0
    fit.predict(newdata(fit, 1_000, 0), seed=0)  # compile the numba kernels outside the timing
    times, peaks = [], []
    for seed in (1, 2, 3):
        nd = newdata(fit, rows, seed)
        base = _rss_mb("VmRSS")
        _reset_peak()
        t = time.perf_counter()
        table = fit.predict(nd, seed=seed)
        times.append(time.perf_counter() - t)
        peaks.append(_rss_mb("VmHWM") - base)
        assert len(table) == rows and np.isfinite(table["upper"]).all()
        del table, nd
    draws = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    lines = [
        "# Prediction benchmark (bench/predict.py)",
        "",
        f"Case `{case.name}`: `{case.formula}`, {len(df):,} rows, "
        f"{fit.design.groups[0].n_levels:,} groups, {draws:,} posterior draws "
        f"(fit {fit_s:.1f} s). `fit.predict(newdata)` on {rows:,} new rows (1% in 100 new "
        f"groups, effects drawn), three newdata seeds, on {os.cpu_count()} CPU cores.",
        "",
        "| seed | wall s | peak RSS above the fit's, MB |",
        "|---|---|---|",
        *[f"| {s} | {t:.2f} | {p:.0f} |" for s, t, p in zip((1, 2, 3), times, peaks, strict=True)],
        f"| **median** | **{statistics.median(times):.2f}** | **{statistics.median(peaks):.0f}** |",
        "",
        "Targets (issue #15): < 20 s and < 1 GB. Values summarized: "
        f"{rows * draws:.2e} (never held at once).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        (Path(__file__).parent / "PREDICT.md").write_text(text)


if __name__ == "__main__":
    main()
