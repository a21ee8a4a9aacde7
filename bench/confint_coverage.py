"""Coverage of the 95% profile and Wald intervals of the fixed effects over simulated data.

200 data sets from ``y = 1 + 0.5 x + u_g + e`` (30 groups of 10, ``tau = 0.7``, ``sigma = 1``;
``x`` varies within groups), each fitted by REML; counts how often each interval holds the true
``(Intercept)`` and ``x``. Issue #16 asks for 0.93-0.97 (binomial sd of a coverage of 0.95 over
200 sets: 0.015). A calibration check, not part of ``make test``: run
``.venv/bin/python bench/confint_coverage.py [--sims N]``; writes ``bench/CONFINT_COVERAGE.md``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from multilevel.frequentist import fit_frequentist

TRUTH = {"(Intercept)": 1.0, "x": 0.5}


def simulate(seed: int, n_groups: int = 30, size: int = 10) -> pd.DataFrame:
    """``n_groups`` groups of ``size`` rows from the model of the module docstring."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    y = 1.0 + 0.5 * x + rng.normal(0.0, 0.7, n_groups)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{j:02d}" for j in g]})


def coverage(sims: int, n_groups: int = 30, size: int = 10) -> dict[tuple[str, str], float]:
    """Share of ``sims`` data sets whose profile / Wald 95% interval holds each true coefficient."""
    hits = {(m, t): 0 for m in ("profile", "Wald") for t in TRUTH}
    for seed in range(sims):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_frequentist("y ~ x + (1 | g)", simulate(seed, n_groups, size))
            for method in ("profile", "Wald"):
                ci = fit.confint(method).query("stat == 'coef'").set_index("term")
                for term, value in TRUTH.items():
                    hits[(method, term)] += int(ci.loc[term, "lower"] <= value <= ci.loc[term, "upper"])
    return {key: h / sims for key, h in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=200)
    args = parser.parse_args()
    hits = coverage(args.sims)
    lines = ["# Coverage of 95% fixed-effect intervals (bench/confint_coverage.py)", "",
             f"{args.sims} simulated data sets, `y ~ x + (1 | g)`, 30 groups of 10, REML fits.", "",
             "| method | term | coverage |", "|---|---|---|"]
    lines += [f"| {m} | {t} | {h:.3f} |" for (m, t), h in hits.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "CONFINT_COVERAGE.md").write_text(text)


if __name__ == "__main__":
    main()
