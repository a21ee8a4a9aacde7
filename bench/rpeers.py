"""The R peers of a benchmark case: rstanarm (``stan_lmer`` / ``stan_glmer``, precompiled Stan)
and brms (``brm``, backend rstan, compiled per model), run through ``Rscript``; and lme4
(``lmer`` REML / ``glmer`` Laplace, lme4's defaults), the peer of our frequentist fit, timed the
same way with no ESS.

Each fit runs 4 chains x 2000 iterations (1000 warm-up), ``cores`` = the machine's cores, the
case's seed. The wall time is taken inside R around the fitting call alone (brms's compilation
included: a user waits for it), after the packages and the data are loaded. The minimum bulk ESS
(``rstan::ess_bulk``) runs over the hyperparameters: fixed effects, group-level sds (brms) or
covariance entries (rstanarm's ``Sigma[...]``), correlations (brms) and sigma; group effects,
``lp__`` and ``lprior`` are left out. Divergences are counted after warm-up.

:func:`available` says whether ``Rscript`` and the packages are there; without them the runner
skips the R tools with a note.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

__all__ = ["R_TOOLS", "available", "fit_r"]

R_TOOLS = ("rstanarm", "brms", "lme4")

_SCRIPT = r"""
suppressMessages({library(jsonlite); library(rstan); library(%(pkg)s)})
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = TRUE)
for (g in strsplit("%(factors)s", ",")[[1]]) df[[g]] <- factor(df[[g]])
cores <- parallel::detectCores()
t0 <- Sys.time()
%(fit)s
wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
arr <- as.array(%(stanfit)s)
keep <- dimnames(arr)[[3]]
keep <- keep[!grepl("%(drop)s", keep)]
ess <- sapply(keep, function(p) rstan::ess_bulk(arr[, , p]))
sf <- %(stanfit)s
div <- sum(sapply(rstan::get_sampler_params(sf, inc_warmup = FALSE), function(s) sum(s[, "divergent__"])))
ess <- ess[is.finite(ess)]
writeLines(toJSON(list(wall_s = wall, min_ess = min(ess), min_ess_param = names(ess)[which.min(ess)],
                       divergences = div, ess = as.list(ess), r_version = R.version.string,
                       pkg_version = as.character(packageVersion("%(pkg)s"))),
                  auto_unbox = TRUE, digits = NA), args[2])
"""

_LME4 = r"""
suppressMessages({library(jsonlite); library(lme4)})
args <- commandArgs(trailingOnly = TRUE)
df <- read.csv(args[1], stringsAsFactors = TRUE)
for (g in strsplit("%(factors)s", ",")[[1]]) df[[g]] <- factor(df[[g]])
t0 <- Sys.time()
%(fit)s
wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
writeLines(toJSON(list(wall_s = wall, loglik = as.numeric(logLik(fit)), r_version = R.version.string,
                       pkg_version = as.character(packageVersion("lme4"))),
                  auto_unbox = TRUE, digits = NA), args[2])
"""


def available(tool: str) -> tuple[bool, str]:
    """Whether ``Rscript`` and the tool's R packages can be used, and why not."""
    if shutil.which("Rscript") is None:
        return False, "Rscript not found (apt-get install r-base-core)"
    pkgs = ("library(jsonlite); library(lme4)" if tool == "lme4"
            else f"library(rstan); library(jsonlite); library({tool})")
    out = subprocess.run(["Rscript", "-e", f"suppressMessages({{{pkgs}}})"], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return False, f"R packages missing ({out.stderr.strip().splitlines()[-1:]}); " \
                      "apt-get install r-cran-rstanarm r-cran-brms"
    return True, ""


def _call(tool: str, formula: str, family: str, seed: int) -> tuple[str, str, str]:
    fam = {"gaussian": "gaussian()", "bernoulli": "binomial(link = 'logit')"}[family]
    if tool == "lme4":  # the frequentist peer of our freq tool: REML / Laplace
        call = "lmer(" if family == "gaussian" else f"glmer(family = {fam}, formula = "
        return f"fit <- {call}{formula}, data = df)", "", ""
    if tool == "rstanarm":
        fn = "stan_lmer" if family == "gaussian" else "stan_glmer"
        extra = "" if family == "gaussian" else f", family = {fam}"
        fit = (f"fit <- {fn}({formula}, data = df{extra}, chains = 4, iter = 2000, seed = {seed}, "
               "cores = cores, refresh = 0)")
        return fit, "fit$stanfit", r"^b\[|^mean_PPD$|^log-posterior$"
    brms_family = "gaussian()" if family == "gaussian" else "bernoulli()"
    fit = (f"fit <- brm({formula}, data = df, family = {brms_family}, chains = 4, iter = 2000, "
           f"seed = {seed}, cores = cores, refresh = 0, backend = 'rstan', silent = 2)")
    return fit, "fit$fit", r"^r_|^lp__$|^lprior$|^z_|^L_|^Intercept$"


def fit_r(tool: str, formula: str, family: str, df: pd.DataFrame, factors: list[str],
          seed: int, limit_s: float = 3600.0) -> dict:
    """Fit with an R peer; returns wall_s, min_ess, min_ess_param, divergences, ess, versions."""
    fit, stanfit, drop = _call(tool, formula, family, seed)
    template = _LME4 if tool == "lme4" else _SCRIPT
    script = template % {"pkg": tool, "factors": ",".join(factors), "fit": fit, "stanfit": stanfit,
                         "drop": drop.replace("\\", "\\\\")}
    with tempfile.TemporaryDirectory() as tmp:
        csv, out, src = Path(tmp) / "data.csv", Path(tmp) / "out.json", Path(tmp) / "fit.R"
        df.to_csv(csv, index=False)
        src.write_text(script)
        t0 = time.perf_counter()
        proc = subprocess.run(["Rscript", str(src), str(csv), str(out)], capture_output=True,
                              text=True, timeout=limit_s, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{tool} failed: {proc.stderr[-2000:]}")
        result = json.loads(out.read_text())
    result["process_s"] = time.perf_counter() - t0
    return result
