"""AR(1) speed: the Blackmore fit (945 rows, 231 girls), Bayesian and REML, against nlme and brms.

Model: ``log_exercise ~ age * group + (age | subject) + ar1(age | subject)``.

* ours, Bayesian: ``fit_hierarchical(..., seed=s, frequentist=False)`` with the defaults (4 chains
  x 1000 draws after 1000 tuning steps), seeds 1, 2, 3 after one warm-up fit (numba's compile
  cache); minimum bulk ESS over the hyperparameters (b, sds, correlation, sigma, phi) and ESS/s;
* ours, the default call (with the REML fit beside it), same seeds;
* ours, REML alone (``fit_frequentist``), three runs;
* nlme 3.1 ``lme(..., correlation = corAR1(form = ~ age | subject))``, REML, three runs (when
  ``Rscript`` with nlme is present);
* brms ``ar(time = age, gr = subject)`` (backend rstan, 4 x 2000 iterations, seeds 1-3, compiled
  once) when brms is installed. brms's ``ar()`` steps by *position* within a girl, not by
  nlme's integer time difference (ages 8, 10, 12, 14, 15.92 are lags 2, 2, 2, 1 in nlme and 1,
  1, 1, 1 in brms): the models differ, so only speed and ESS are set side by side.

Writes ``bench/AR1.md``. Run: ``.venv/bin/python bench/ar1.py``
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

import multilevel as ml
from multilevel.frequentist import fit_frequentist

FORMULA = "log_exercise ~ age * group + (age | subject) + ar1(age | subject)"
SEEDS = (1, 2, 3)
DATA = Path(ml.__file__).parent / "datasets" / "data" / "blackmore.csv"
HYPER = ["b", "sd_subject", "cor_subject", "sigma", "phi"]

NLME = """suppressPackageStartupMessages(library(nlme))
d <- read.csv("{path}"); d$group <- factor(d$group, levels = c("control", "patient"))
f <- function() lme(log_exercise ~ age * group, random = ~ age | subject, data = d,
                    correlation = corAR1(form = ~ age | subject), method = "REML")
m <- f()
t <- sapply(1:3, function(i) system.time(f())[["elapsed"]])
cat(jsonlite::toJSON(list(times = t, logLik = as.numeric(logLik(m))), auto_unbox = TRUE,
                     digits = NA))
"""

BRMS = """suppressPackageStartupMessages({{library(brms); library(rstan)}})
d <- read.csv("{path}"); d$group <- factor(d$group, levels = c("control", "patient"))
t0 <- system.time(m <- brm(log_exercise ~ age * group + (age | subject) +
                            ar(time = age, gr = subject, p = 1), data = d, chains = 4,
                            iter = 2000, cores = 2, seed = 1, refresh = 0, backend = "rstan",
                            silent = 2))[["elapsed"]]
out <- list(compile_and_first = t0, runs = list())
for (s in c({seeds})) {{
  t <- system.time(u <- update(m, seed = s, refresh = 0, silent = 2, cores = 2,
                               recompile = FALSE))[["elapsed"]]
  arr <- as.array(u)
  pars <- grep("^(b_|sd_|cor_|sigma|ar\\\\[)", dimnames(arr)[[3]], value = TRUE)
  ess <- min(sapply(pars, function(p) rstan::ess_bulk(arr[, , p])))
  phi <- mean(arr[, , "ar[1]"])
  out$runs[[length(out$runs) + 1]] <- list(seed = s, seconds = t, ess = ess, phi = phi)
}}
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def _min_ess(fit) -> float:
    post = fit.idata["posterior"].to_dataset()
    names = [n for n in HYPER if n in post]
    ess = az.ess(post[names])
    vals = [float(np.nanmin(ess[n].values)) for n in names]
    return min(vals)


def ours_bayes(df, frequentist: bool) -> list[tuple[float, float, float]]:
    out = []
    for s in SEEDS:
        t = time.perf_counter()
        fit = ml.fit_hierarchical(FORMULA, df, seed=s, frequentist=frequentist, progressbar=False)
        sec = time.perf_counter() - t
        out.append((sec, _min_ess(fit), float(fit.posterior["phi"].mean())))
    return out


def ours_reml(df) -> tuple[list[float], float]:
    fit_frequentist(FORMULA, df)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fit = fit_frequentist(FORMULA, df)
        times.append(time.perf_counter() - t)
    return times, fit.loglik


def _rscript(code: str, timeout: float) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(code)
    try:
        run = subprocess.run(["Rscript", f.name], capture_output=True, text=True, check=False,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if run.returncode != 0:
        print(run.stderr[-2000:])
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def _med(xs) -> str:
    xs = list(xs)
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    warnings.simplefilter("ignore")
    df = ml.datasets.load("blackmore")
    ml.fit_hierarchical(FORMULA, df, seed=0, draws=100, tune=100, progressbar=False)  # warm-up
    bayes = ours_bayes(df, frequentist=False)
    default = ours_bayes(df, frequentist=True)
    reml, loglik = ours_reml(df)
    nlme = _rscript(NLME.format(path=DATA), 600)
    brms = _rscript(BRMS.format(path=DATA, seeds=", ".join(map(str, SEEDS))), 3600)
    raw = Path(__file__).parent / "out" / "ar1_raw.json"
    raw.parent.mkdir(exist_ok=True)
    raw.write_text(json.dumps({"ours_bayes": bayes, "ours_default": default, "ours_reml": reml,
                               "nlme": nlme, "brms": brms}, indent=1))
    lines = [
        "# AR(1): Blackmore, 945 rows, 231 girls (bench/ar1.py)", "",
        f"`{FORMULA}`; this 2-core machine; medians over seeds {SEEDS} with (min-max).", "",
        "| fit | seconds | min bulk ESS (hyperparameters) | ESS/s | phi (posterior mean) |",
        "|---|---|---|---|---|",
        f"| ours, Bayesian only (4 x 1000) | {_med(b[0] for b in bayes)} | "
        f"{_med(b[1] for b in bayes)} | {_med(b[1] / b[0] for b in bayes)} | "
        f"{_med(b[2] for b in bayes)} |",
        f"| ours, default call (+ REML) | {_med(b[0] for b in default)} | "
        f"{_med(b[1] for b in default)} | {_med(b[1] / b[0] for b in default)} | "
        f"{_med(b[2] for b in default)} |",
    ]
    if brms is not None:
        runs = brms["runs"]
        lines.append(
            f"| brms `ar(time = age, gr = subject)` (4 x 2000, rstan; compile + first fit "
            f"{brms['compile_and_first']:.0f} s) | {_med(r['seconds'] for r in runs)} | "
            f"{_med(r['ess'] for r in runs)} | {_med(r['ess'] / r['seconds'] for r in runs)} | "
            f"{_med(r['phi'] for r in runs)} (a different model: lags by position) |")
    else:
        lines.append("| brms | not run (R package brms not installed) | | | |")
    lines += ["", "| REML | seconds (3 runs) | logLik |", "|---|---|---|",
              f"| ours `fit_frequentist` | {_med(reml)} | {loglik:.4f} |"]
    if nlme is not None:
        lines.append(f"| nlme `lme(..., corAR1)` | {_med(nlme['times'])} | {nlme['logLik']:.4f} |")
    else:
        lines.append("| nlme | not run (Rscript with nlme not found) | |")
    if brms is not None:
        ratio = (statistics.median(b[1] / b[0] for b in bayes)
                 / statistics.median(r["ess"] / r["seconds"] for r in brms["runs"]))
        lines += ["", f"ESS/s, ours (Bayesian only) / brms: {ratio:.0f}x (medians)."]
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "AR1.md").write_text(text)


if __name__ == "__main__":
    main()
