"""Benchmark multilevel against bambi (nutpie and PyMC NUTS) on the same models, in one run.

Every (case, tool) pair runs in its own fresh Python process (``bench/worker.py``), one after
another, so timings do not share warm caches and peak memory belongs to one fit. A fit that
runs past its time limit or memory limit is killed and reported as ``timeout`` / ``memory``,
never silently skipped. Results are printed and written to ``bench/RESULTS.md``
(``bench/out/RESULTS-quick.md`` for ``--quick``); ``bench/out/run-<time>-<pid>/`` keeps the JSON,
each fit's log and the copy of ``src/multilevel`` that was measured (taken at the start, so
edits made during a long run do not change what is measured).

Usage::

    python bench/run.py                      # every case and tool, seeds 7, 11, 2024 (long)
    python bench/run.py --cases hsb82 --seeds 1,2,3,4,5
    python bench/run.py --quick              # hsb82 and sleepstudy, 2 x 200 draws
    python bench/run.py --cases hsb82 --second-fit   # also a second fit in the same process
    python bench/run.py --cases hsb82,sim_logit_50k --bambi-timeout 600
    python bench/run.py --quick --cases sim_gauss_10m   # a shrunken simulated case
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import report
import rpeers
from cases import BAMBI_TOOLS, CASES, QUICK_CASES, R_TOOLS, get_case

SAMPLING_R_TOOLS = ("rstanarm", "brms")  # --r-cases limits these; lme4 runs wherever listed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
POLL_S = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=None, help=f"comma-separated subset of {', '.join(CASES)}")
    p.add_argument("--tools", default=None, help="comma-separated subset of ours,freq,bambi_nutpie,"
                   "bambi_pymc (default: each case's own list)")
    p.add_argument("--quick", action="store_true", help="2 x 200 draws, small cases only")
    p.add_argument("--bambi-draws", type=int, default=None, help="fewer draws for bambi only")
    p.add_argument("--seeds", default="7,11,2024",
                   help="comma-separated sampler seeds; every (case, tool) runs once per seed and "
                        "the report gives medians and ranges (>= 3 seeds: one seed's ESS can be 3x "
                        "another's)")
    p.add_argument("--bambi-timeout", type=float, default=900.0, help="seconds per bambi fit")
    p.add_argument("--r-timeout", type=float, default=3600.0, help="seconds per rstanarm/brms fit")
    p.add_argument("--r-cases", default=None,
                   help="comma-separated cases the R tools run on (default: all; rstanarm takes "
                        "about 12 minutes per Hsb82 fit here)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per fit of ours/freq")
    p.add_argument("--mem-limit-gib", type=float, default=8.0, help="kill a fit above this RSS")
    p.add_argument("--profile", action="store_true", help="cProfile our fits into bench/out/")
    p.add_argument("--second-fit", action="store_true",
                   help="each Python worker fits twice (same seed) and reports the second time "
                        "too: a later fit in a session, one-time import and cache costs paid")
    p.add_argument("--out", default=None, help="Markdown report path")
    p.add_argument("--no-snapshot", action="store_true",
                   help="import src/ as it is instead of a copy taken at the start")
    args = p.parse_args(argv)
    default = QUICK_CASES if args.quick else tuple(CASES)
    args.case_list = args.cases.split(",") if args.cases else list(default)
    for name in args.case_list:
        get_case(name)  # fails early on a typo
    args.tool_list = args.tools.split(",") if args.tools else None
    args.seed_list = [int(v) for v in args.seeds.split(",")]
    return args


def _git(*cmd: str) -> str:
    out = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def source_state() -> str:
    """The commit, and how many files under src/ differ from it."""
    dirty = [line for line in _git("status", "--porcelain", "src").splitlines() if line.strip()]
    return f"{_git('rev-parse', '--short', 'HEAD')} + {len(dirty)} changed/new file(s) under src/"


def snapshot_env(enabled: bool, run_dir: Path) -> dict[str, str]:
    """Environment for the workers; with ``enabled``, ``multilevel`` is imported from a copy of
    src/ taken now, so edits made while a long run goes on do not change what is measured."""
    env = dict(os.environ)
    if enabled:
        dest = run_dir / "snapshot"
        shutil.copytree(ROOT / "src" / "multilevel", dest / "multilevel",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")]))
    return env


def _rss_mib(pid: int) -> float:
    """Current resident set size of a process in MiB (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _watch(proc: subprocess.Popen, limit_s: float, limit_mib: float) -> str:
    """Wait for the worker; kill its process group past the time or memory limit."""
    t0 = time.monotonic()
    while proc.poll() is None:
        status = ("timeout" if time.monotonic() - t0 > limit_s
                  else "memory" if _rss_mib(proc.pid) > limit_mib else None)
        if status:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session, started above
            proc.wait()
            return status
        time.sleep(POLL_S)
    return "ok" if proc.returncode == 0 else "error"


def run_one(case_name: str, tool: str, args: argparse.Namespace, seed: int) -> dict:
    """Run one worker and return its measurements (or why there are none)."""
    stem = f"{case_name}-{tool}-{seed}{'-quick' if args.quick else ''}"
    json_path, log_path = args.run_dir / f"{stem}.json", args.run_dir / f"{stem}.log"
    json_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / "worker.py"), "--case", case_name, "--tool", tool,
           "--seed", str(seed), "--json", str(json_path)]
    cmd += ["--quick"] * args.quick + ["--second-fit"] * args.second_fit
    if args.bambi_draws:
        cmd += ["--bambi-draws", str(args.bambi_draws)]
    if args.profile and tool == "ours":
        cmd += ["--profile", str(args.run_dir / f"profile-{stem}.txt")]
    limit = (args.bambi_timeout if tool in BAMBI_TOOLS else args.r_timeout if tool in R_TOOLS
             else args.timeout)
    if args.second_fit and tool not in R_TOOLS:  # two fits in the worker
        limit *= 2
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=args.env)
        status = _watch(proc, limit, args.mem_limit_gib * 1024)
    if status == "ok":
        return json.loads(json_path.read_text())
    case = get_case(case_name, quick=args.quick)
    return {"case": case_name, "tool": tool, "seed": seed, "status": status, "limit_s": limit,
            "elapsed_s": time.monotonic() - t0, "n_rows": case.n_rows, "n_groups": case.n_groups,
            "log": str(log_path.relative_to(ROOT))}


def warm_up(env: dict[str, str], run_dir: Path, case_names: list[str]) -> float:
    """One small fit of ours per case (``--quick`` size), so the compiled log-density of every
    sampler path the run uses is in numba's disk cache (once per install), as an installed
    package would have it: a cold cache would otherwise land on the first seed of the first
    case of each path (a marginal Gaussian, a non-centered logistic, ...)."""
    t0 = time.monotonic()
    for name in case_names:
        cmd = [sys.executable, str(HERE / "worker.py"), "--case", name, "--tool", "ours",
               "--quick", "--json", str(run_dir / f"warmup-{name}.json")]
        subprocess.run(cmd, capture_output=True, check=False, env=env)
    return time.monotonic() - t0


def _progress(r: dict) -> str:
    wall = r.get("wall_s", r.get("elapsed_s", float("nan")))
    extra = f" ESS/s={r['ess_per_s']:.3g} div={r['divergences']}" if "ess_per_s" in r else ""
    return f"  {r['case']:<16} {r['tool']:<13} {r.get('seed', ''):<6} {r['status']:<8} {wall:8.1f} s{extra}"


def run_all(args: argparse.Namespace) -> list[dict]:
    """Every requested (case, tool, seed), one fresh process each; the seeds of one case and
    tool run in a row, the tools of one case one after another (so they share the machine's
    state as closely as a serial run allows). R tools without R are skipped with a note."""
    results = []
    for name in args.case_list:
        case = get_case(name, quick=args.quick)
        tools = [t for t in case.tools if args.tool_list is None or t in args.tool_list]
        for tool in tools:
            if tool in SAMPLING_R_TOOLS and args.r_cases and name not in args.r_cases.split(","):
                args.skipped.append(f"{tool} not run on {name} in this run (--r-cases)")
                continue
            if tool in R_TOOLS:
                ok, why = rpeers.available(tool)
                if not ok:
                    args.skipped.append(f"{tool} skipped: {why}")
                    continue
            for seed in args.seed_list:
                results.append(run_one(name, tool, args, seed))
                print(_progress(results[-1]), flush=True)
    return results


def notes(results: list[dict], args: argparse.Namespace, warmup_s: float) -> str:
    """Methods and caveats for RESULTS.md, with the numbers that belong to them."""
    lines = [
        f"- Seeds {', '.join(map(str, args.seed_list))}: every (case, tool) ran once per seed. The "
        "tables give the median over seeds and the min-max range; ratios are medians over ratios "
        "of the same seed, and the targets judge those medians.",
        "- *ours* is the default call as users make it (`fit_hierarchical(formula, df, seed=s, "
        "draws=1000, tune=1000, chains=4)`: the REML/Laplace fit beside the posterior, exact group "
        "effects, prior sensitivity, diagnostics); *ours_bayes* the same with `frequentist=False`.",
        "- rstanarm / brms: 4 chains x 2000 iterations (1000 warm-up), `cores` = the machine's "
        "cores, timed inside R around the fitting call (brms's compilation included); min bulk ESS "
        "by `rstan::ess_bulk` over fixed effects, group-level sds or covariances, correlations and "
        "sigma.",
        *[f"- {line}" for line in args.skipped],
        "- Each (case, tool, seed) ran in its own fresh Python process, one at a time. *wall s* starts "
        "after imports and data loading and ends when the fit returns: model build, compilation "
        "(for ours: loading the numba log-density cached on disk), warm-up, sampling and "
        "post-processing (ours: exact draws of the group effects). Ours builds the readable PyMC "
        "model only when `fit.model` is first read (the compiled kernels sample the same "
        "density), which the benchmark does not do. The first fit in a process also pays "
        "one-time costs: numba's start-up and cache loads (about 0.7-0.9 s here) and the import "
        "of dask.array that xarray makes on its first array check when dask is installed "
        "(0.6-0.8 s); bambi's first fit pays the latter too.",
        *(["- *2nd fit*: the same fit (same seed) again in the same process, as a later fit in a "
           "user's session; its ESS/s ratio pairs our second fit with the tool's second fit."]
          if args.second_fit else []),
        f"- Before the cases, one small fit of ours per case (`--quick` size) warmed numba's disk "
        f"cache for every sampler path ({warmup_s:.1f} s in all, once per install), as an "
        "installed package would have it.",
        "- *min bulk ESS*: smallest bulk ESS (ArviZ) over the hyperparameters: fixed effects, "
        "group sds, correlations (off-diagonal) and sigma. bambi 0.21 fits varying terms as "
        "independent (no correlation parameter), so its minimum runs over one fewer kind of "
        "parameter - a slightly easier model than ours.",
        "- *ESS/s x* = our ESS/s / the tool's; *wall x* = the tool's wall / ours (> 1: ours "
        "faster). *div*: divergent transitions after warm-up.",
        "- *freq*: our REML (Gaussian) / Laplace (logistic) fit via mixedlm, timed the same way. "
        "*lme4*: `lmer` (REML) / `glmer` (Laplace) with lme4's defaults, timed inside R around "
        "the fitting call; its *wall x* is lme4's wall / freq's (> 1: freq faster).",
        f"- Time limits: {args.bambi_timeout:.0f} s per bambi fit, {args.timeout:.0f} s for ours "
        f"and freq; memory limit {args.mem_limit_gib:.0f} GiB RSS. *timeout* / *memory* rows "
        "were killed at the limit.",
        "- Peak RSS is the worker's own `ru_maxrss` (PyMC's chain processes not included).",
        "- The machine was shared with other work during the run, so absolute times are noisy; "
        "the ratios compare fits from the same run.",
    ]
    if args.bambi_draws:
        lines.append(f"- bambi ran {args.bambi_draws} draws per chain (ESS/s stays comparable).")
    for r in results:
        if r["case"] == "sim_gauss_10m" and r["tool"] == "ours" and r["status"] == "ok":
            gen = r["rss_after_data_mib"] - r["rss_after_import_mib"]
            lines.append(
                f"- sim_gauss_10m: the process held {r['rss_after_import_mib']:.0f} MiB after "
                f"imports; the generator raised the peak by {gen:.0f} MiB (data made in "
                f"{r['data_s']:.1f} s); the fit took the peak to {r['peak_rss_mib']:.0f} MiB."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, print the tables and write the Markdown report."""
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    args.run_dir = OUT / f"run-{stamp}-{os.getpid()}"  # concurrent runs never share files
    args.run_dir.mkdir(parents=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_start = str(os.getloadavg())
    source = source_state()
    args.env = snapshot_env(not args.no_snapshot, args.run_dir)
    args.skipped = []
    warmup_s = warm_up(args.env, args.run_dir, args.case_list)
    results = run_all(args)
    meta = {"started": started, "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "load average at start": load_start, "mode": "quick" if args.quick else "full",
            "cases": ", ".join(args.case_list), "seeds": args.seeds,
            "source measured": source + (
                "" if args.no_snapshot else " (a copy taken at the start of the run)"),
            "command": " ".join(["python bench/run.py", *(argv or sys.argv[1:])])}
    (args.run_dir / "results.json").write_text(json.dumps(results, indent=1))
    print("\n" + report.text_table(report.columns(results), report.results_table(results)))
    targets = report.targets_table(results)
    if targets:
        print("\n" + report.text_table(("target", "status", "measured"), targets))
    path = Path(args.out) if args.out else (OUT / "RESULTS-quick.md" if args.quick else HERE / "RESULTS.md")
    path.write_text(report.markdown(results, report.machine_info(), meta, notes(results, args, warmup_s)))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
