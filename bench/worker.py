"""Fit one case with one tool in this (fresh) process and write the measurements as JSON.

``run.py`` starts one worker per (case, tool), so peak memory (``ru_maxrss``) belongs to one fit
and no tool profits from another's warm caches or imports. The clock starts after the imports
and the data are in memory and stops when the fit object is returned: model building,
compilation (or loading the cached compiled log-density), sampling and post-processing are
all inside it, as a user waits for them.

With ``--second-fit`` the same fit runs once more in the same process, the same seed: the time
of a later fit in a session (imports done, numba and PyTensor caches loaded, dask imported by
xarray), reported beside the first.

Tools: ``ours`` is the default call as users make it (the REML/Laplace fit beside the
posterior), ``ours_bayes`` the Bayesian part alone (``frequentist=False``), ``freq`` the
frequentist fit alone, ``bambi_*`` bambi, ``rstanarm`` / ``brms`` the R peers (``rpeers.py``).

Usage::

    python bench/worker.py --case hsb82 --tool ours --seed 7 --json out.json [--quick] [--profile P]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from dataclasses import replace
from typing import Any

import metrics
import pandas as pd
from cases import get_case

T_START = time.perf_counter()


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size so far in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def _fit_ours(case, df, draws: int, frequentist: bool = True):
    import multilevel

    fit = multilevel.fit_hierarchical(
        case.formula, df, family=case.family, draws=draws, tune=case.tune, chains=case.chains,
        seed=case.seed, frequentist=frequentist, progressbar=False,
    )
    return fit.idata, {"parameterization": fit.parameterization}


def _fit_freq(case, df, draws: int):
    from multilevel.frequentist import fit_frequentist

    fit = fit_frequentist(case.formula, df, family=case.family)
    return None, {"method": fit.method, "converged": fit.converged}


def _fit_bambi(case, df, draws: int, method: str):
    import bambi as bmb

    model = bmb.Model(case.formula, df, family=case.family)
    idata = model.fit(
        draws=draws, tune=case.tune, chains=case.chains, inference_method=method,
        random_seed=case.seed, progressbar=False,
    )
    return idata, {}


def _import(tool: str) -> None:
    """Import what the tool needs before the clock starts (shared by both sides alike)."""
    import multilevel  # noqa: F401  (also imports pymc)

    if tool.startswith("bambi"):
        import bambi  # noqa: F401


def run_fit(case, tool: str, df, draws: int):
    """Fit and time; returns (idata or None, extra info, wall seconds)."""
    t0 = time.perf_counter()
    if tool in ("ours", "ours_bayes"):
        idata, info = _fit_ours(case, df, draws, frequentist=tool == "ours")
    elif tool == "freq":
        idata, info = _fit_freq(case, df, draws)
    else:
        idata, info = _fit_bambi(case, df, draws, tool.removeprefix("bambi_"))
    return idata, info, time.perf_counter() - t0


def efficiency(idata, tool: str, wall: float) -> dict[str, Any]:
    """Min bulk ESS over the hyperparameters, ESS per second of wall time, divergences."""
    if idata is None:
        return {}
    cols = metrics.ours_hyper(idata) if tool.startswith("ours") else metrics.bambi_hyper(idata)
    ess, worst, every = metrics.min_bulk_ess(cols)
    return {
        "min_ess": ess, "min_ess_param": worst, "ess_per_s": ess / wall,
        "divergences": metrics.divergences(idata), "ess": every,
    }


def measure_r(case, tool: str, seed: int) -> dict[str, Any]:
    """An R peer's fit of the case (``rpeers.py``); R measures its own wall time."""
    import rpeers

    df = case.load()
    response = case.formula.split("~")[0].strip()
    if case.family == "bernoulli" and not pd.api.types.is_numeric_dtype(df[response]):
        levels = (list(df[response].cat.categories) if isinstance(df[response].dtype, pd.CategoricalDtype)
                  else sorted(df[response].unique()))
        df = df.assign(**{response: (df[response] == levels[1]).astype(int)})  # R: 2nd level = 1
    factors = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    r = rpeers.fit_r(tool, case.formula, case.family, df, factors or [case.group], seed)
    sampled = ({"draws": 1000, "tune": 1000, "chains": 4, "ess_per_s": r["min_ess"] / r["wall_s"]}
               if "min_ess" in r else {})
    return {"case": case.name, "tool": tool, "status": "ok", "seed": seed, "n_rows": len(df),
            "n_groups": int(df[case.group].nunique()), **sampled, **r}


def second_fit(case, tool: str, df, draws: int) -> dict[str, Any]:
    """The same fit again in this process (a later fit in a user's session)."""
    idata, _, wall = run_fit(case, tool, df, draws)
    eff = efficiency(idata, tool, wall)
    return {"wall2_s": wall, "ess_per_s2": eff.get("ess_per_s")}


def measure(case_name: str, tool: str, quick: bool, bambi_draws: int | None,
            seed: int | None = None, again: bool = False) -> dict[str, Any]:
    """Load the data, fit, and collect every number the report needs."""
    warnings.filterwarnings("ignore")
    case = get_case(case_name, quick=quick)
    if seed is not None:
        case = replace(case, seed=seed)
    if tool in ("rstanarm", "brms", "lme4"):
        return measure_r(case, tool, case.seed)
    draws = bambi_draws if (bambi_draws and tool.startswith("bambi")) else case.draws
    _import(tool)
    import_s, rss_import = time.perf_counter() - T_START, _rss_mib()
    t0 = time.perf_counter()
    df = case.load()
    data_s, rss_data = time.perf_counter() - t0, _rss_mib()
    idata, info, wall = run_fit(case, tool, df, draws)
    groups = df[case.group].nunique()
    first = efficiency(idata, tool, wall)
    del idata
    return {
        "case": case.name, "tool": tool, "status": "ok", "seed": case.seed, "n_rows": len(df),
        "n_groups": int(groups),
        "draws": draws, "tune": case.tune, "chains": case.chains, "wall_s": wall,
        "import_s": import_s, "data_s": data_s, "rss_after_import_mib": rss_import,
        "rss_after_data_mib": rss_data, "peak_rss_mib": _rss_mib(),
        "peak_rss_children_mib": _rss_mib(resource.RUSAGE_CHILDREN),
        "multilevel_from": sys.modules["multilevel"].__file__,
        **first, **info,
        **(second_fit(case, tool, df, draws) if again and tool != "freq" else {}),
    }


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--bambi-draws", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None, help="the sampler seed (default: the case's)")
    parser.add_argument("--profile", default=None, help="write cProfile statistics here")
    parser.add_argument("--second-fit", action="store_true",
                        help="fit again in this process and report that time too")
    args = parser.parse_args()
    call = (args.case, args.tool, args.quick, args.bambi_draws, args.seed, args.second_fit)
    if args.profile:
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            result = measure(*call)
        with open(args.profile, "w") as fh:
            pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(60)
    else:
        result = measure(*call)
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
