"""Which NUTS should be the default? Our fits with nutpie vs PyMC's own sampler, per model kind.

Wall time includes everything a user waits for (PyMC compiles its graph; the nutpie path uses the
cached numba log-densities). Writes ``bench/SAMPLERS.md``. Run: ``python bench/samplers.py``.
"""

from __future__ import annotations

import platform
import time
import warnings
from pathlib import Path

import multilevel as ml

CASES = [
    ("gaussian varying slope", "sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian"),
    ("binomial varying intercept", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
     "binomial"),
    ("logistic varying slope", "contraception",
     "use ~ urban + age + I(age^2) + livch + (1 + urban | district)", "bernoulli"),
]


def run_case(data: str, formula: str, family: str, sampler: str) -> dict[str, object]:
    """One fit (4 chains x 1000 draws, 1000 tune): wall time, min bulk ESS, divergences."""
    df = ml.datasets.load(data)
    start = time.perf_counter()
    fit = ml.fit_hierarchical(formula, df, family=family, sampler=sampler, seed=3,
                              progressbar=False, frequentist=False)
    wall = time.perf_counter() - start
    checks = fit.diagnostics().set_index("check")["value"]
    ess = float(checks["ess_bulk"])
    return {"sampler": sampler, "parameterization": fit.parameterization, "wall": wall,
            "ess": ess, "ess_s": ess / wall, "div": int(checks["divergences"])}


def main() -> None:
    """Run every case with both samplers and write the table."""
    warnings.simplefilter("ignore")
    lines = ["# NUTS implementation per model kind", "",
             f"Machine: {platform.processor() or platform.machine()}, Python "
             f"{platform.python_version()}; 4 chains x 1000 draws after 1000 tuning, seed 3.", "",
             "| model | data | sampler | parameterization | wall s | min bulk ESS | ESS/s | div |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, data, formula, family in CASES:
        for sampler in ("nutpie", "pymc"):
            r = run_case(data, formula, family, sampler)
            lines.append(f"| {kind} | {data} | {r['sampler']} | {r['parameterization']} | "
                         f"{r['wall']:.1f} | {r['ess']:.0f} | {r['ess_s']:.1f} | {r['div']} |")
            print(lines[-1], flush=True)
    out = Path(__file__).with_name("SAMPLERS.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
