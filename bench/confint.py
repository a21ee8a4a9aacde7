"""Profile-interval speed: ours against lme4 on sleepstudy and Hsb82, in the same run.

Times ``fit_frequentist(...).confint("profile")`` (the fit excluded, a warm-up call first so the
compiled deviance is cached) and, when ``Rscript`` with lme4 is on the PATH, lme4's
``confint(m, method = "profile")`` on the same data, each three times; reports medians and the
ratio. Writes ``bench/CONFINT.md``.

Run: ``.venv/bin/python bench/confint.py``
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import multilevel as ml
from multilevel.frequentist import fit_frequentist

CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "sleepstudy.csv", ""),
    "hsb82": ("mAch ~ meanses + cses + sector + (1 + cses | school)", "hsb82", "Hsb82.csv",
              'd$sector <- factor(d$sector, levels = c("Public", "Catholic"))'),
}
DATA = Path(ml.__file__).parent / "datasets" / "data"
R_SCRIPT = """suppressPackageStartupMessages(library(lme4))
d <- read.csv("{path}"); {prep}
m <- lmer({formula}, d)
t <- sapply(1:3, function(i) system.time(suppressWarnings(confint(m, method = "profile")))[["elapsed"]])
cat(jsonlite::toJSON(t))
"""


def ours(formula: str, dataset: str) -> list[float]:
    fit = fit_frequentist(formula, ml.datasets.load(dataset))
    fit_frequentist(formula, ml.datasets.load(dataset)).confint("profile")  # compile, cache
    times = []
    for _ in range(3):
        fresh = fit_frequentist(formula, ml.datasets.load(dataset))
        t = time.perf_counter()
        fresh.confint("profile")
        times.append(time.perf_counter() - t)
    del fit
    return times


def lme4(formula: str, csv: str, prep: str) -> list[float] | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_SCRIPT.format(path=DATA / csv, prep=prep, formula=formula))
    out = subprocess.run(["Rscript", f.name], capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def main() -> None:
    lines = ["# Profile intervals: ours vs lme4 (bench/confint.py)", "",
             "Median of 3 runs of `confint(method = 'profile')` on this machine (the fit itself "
             "excluded; ours after one warm-up call that compiles and caches the deviance).", "",
             "| case | ours s (range) | lme4 s (range) | lme4 / ours (medians) |",
             "|---|---|---|---|"]
    for name, (formula, dataset, csv, prep) in CASES.items():
        o = ours(formula, dataset)
        r = lme4(formula, csv, prep) or [float("nan")]
        a, b = statistics.median(o), statistics.median(r)
        lines.append(f"| {name} `{formula}` | {a:.2f} ({min(o):.2f}-{max(o):.2f}) | "
                     f"{b:.2f} ({min(r):.2f}-{max(r):.2f}) | {b / a:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "CONFINT.md").write_text(text)


if __name__ == "__main__":
    main()
