"""Tables of benchmark results: the per-fit table, the targets, machine information, RESULTS.md.

Ratios are always taken within one run and one seed: ``ESS/s x`` is our ESS per second divided
by the tool's, ``wall x`` the tool's wall time divided by ours (both > 1 when we are faster);
the tables give the median over seeds and the min-max range.

Examples
--------
>>> _fmt(1234.5), _fmt(0.01234), _fmt(None)
('1234', '0.0123', '-')
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["machine_info", "markdown", "results_table", "targets_table"]

PACKAGES = ("multilevel", "bambi", "pymc", "pytensor", "nutpie", "numba", "arviz", "mixedlm",
            "formulae", "numpy", "pandas")
COLUMNS = ("case", "rows", "groups", "tool", "ok/seeds", "wall s", "min bulk ESS", "worst param",
           "ESS/s", "div", "ESS/s x", "wall x", "peak RSS MiB")
SECOND_COLUMNS = ("2nd fit wall s", "2nd fit ESS/s x")
RATIO_TOOLS = ("ours_bayes", "bambi_nutpie", "bambi_pymc", "rstanarm", "brms", "lme4")
BASE = {"lme4": "freq"}  # the tool of ours each peer is paired with (default: ours)


def _fmt(value: Any) -> str:
    """Numbers with about 3-4 significant digits; ``None``/NaN as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _spread(values: list[float]) -> str:
    """``median (min-max)`` of the per-seed values."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return _fmt(values[0])
    return f"{_fmt(_median(values))} ({_fmt(min(values))}-{_fmt(max(values))})"


def _by_case(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """case -> tool -> the runs of every seed."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        out.setdefault(r["case"], {}).setdefault(r["tool"], []).append(r)
    return out


def paired_ratios(runs: dict[str, list[dict]], tool: str, key: str, invert: bool) -> list[float]:
    """Per seed: ours' ``key`` over the tool's (or the tool's over ours with ``invert``), for the
    seeds where both ran; ours is :data:`BASE`'s tool for the peer (default ``ours``)."""
    base = BASE.get(tool, "ours")
    ours = {r.get("seed"): r for r in runs.get(base, []) if r.get("status") == "ok"}
    out = []
    for r in runs.get(tool, []):
        o = ours.get(r.get("seed"))
        if o and r.get("status") == "ok" and r.get(key) and o.get(key):
            out.append(r[key] / o[key] if invert else o[key] / r[key])
    return out


def _row(tool: str, runs: list[dict], by_tool: dict[str, list[dict]]) -> list[str]:
    ok = [r for r in runs if r.get("status") == "ok"]
    first = runs[0]
    worst = sorted({r.get("min_ess_param") or "-" for r in ok}) or ["-"]
    statuses = sorted({r["status"] for r in runs if r.get("status") != "ok"})
    ratio = tool in RATIO_TOOLS
    return [
        first["case"], _fmt(first.get("n_rows")), _fmt(first.get("n_groups")), tool,
        f"{len(ok)}/{len(runs)}" + (f" ({', '.join(statuses)})" if statuses else ""),
        _spread([r.get("wall_s") for r in ok]), _spread([r.get("min_ess") for r in ok]),
        ", ".join(worst[:2]), _spread([r.get("ess_per_s") for r in ok]),
        _fmt(max((r.get("divergences") or 0) for r in ok)) if ok and "divergences" in ok[0] else "-",
        _spread(paired_ratios(by_tool, tool, "ess_per_s", False)) if ratio else "",
        _spread(paired_ratios(by_tool, tool, "wall_s", True)) if ratio else "",
        _fmt(_median([r.get("peak_rss_mib") for r in ok])),
        _spread([r.get("wall2_s") for r in ok]),
        _spread(paired_ratios(by_tool, tool, "ess_per_s2", False)) if ratio else "",
    ]


def columns(results: list[dict]) -> tuple[str, ...]:
    """The table's header: :data:`COLUMNS`, and the second-fit columns when measured."""
    return COLUMNS + (SECOND_COLUMNS if any("wall2_s" in r for r in results) else ())


def results_table(results: list[dict]) -> list[list[str]]:
    """One row per (case, tool): medians and ranges over seeds, ratios against ours."""
    rows = []
    for tools in _by_case(results).values():
        rows += [_row(tool, runs, tools) for tool, runs in tools.items()]
    width = len(columns(results))
    return [row[:width] for row in rows]


def _target(name: str, check, tools: dict[str, list[dict]]) -> list[str]:
    try:
        met, detail = check(tools)
    except (KeyError, TypeError, ZeroDivisionError, ValueError) as err:
        return [name, "not measured", f"missing result ({err})"]
    return [name, "met" if met else "MISSED", detail]


def _ess_ratio(tools: dict, other: str) -> float:
    ratios = paired_ratios(tools, other, "ess_per_s", False)
    if not ratios:
        raise KeyError(f"{other} has no run paired with ours")
    return _median(ratios)


def _hsb(t):
    bambi, div = _ess_ratio(t, "bambi_nutpie"), max(r["divergences"] for r in t["ours"])
    detail = f"median ESS/s {bambi:.2f}x bambi+nutpie, {div} divergences"
    try:
        rstan = _ess_ratio(t, "rstanarm")
    except KeyError:
        return False, detail + "; rstanarm not measured"
    return bambi >= 10 and rstan >= 300 and div == 0, detail + f", {rstan:.0f}x rstanarm"


def _gauss200k(t):
    wall, ratio = _median([r["wall_s"] for r in t["ours"]]), _ess_ratio(t, "bambi_nutpie")
    return wall < 15 and ratio >= 200, f"median wall {wall:.1f} s, ESS/s {ratio:.1f}x bambi+nutpie"


def _logit(t):
    ratio = _ess_ratio(t, "bambi_nutpie")
    return ratio >= 20, f"median ESS/s {ratio:.2f}x bambi+nutpie"


def _insteval(t):
    reml = _median(paired_ratios(t, "lme4", "wall_s", False))  # freq wall / lme4 wall
    if reml is None:
        raise KeyError("lme4 has no run paired with freq")
    bayes = t.get("bambi_nutpie", [])
    done = [r for r in bayes if r.get("status") == "ok"]
    if done and len(done) == len(bayes):
        versus = f"ours ESS/s {_ess_ratio(t, 'bambi_nutpie'):.1f}x bambi+nutpie"
    else:
        statuses = ", ".join(sorted({r["status"] for r in bayes})) or "not run"
        versus = f"bambi+nutpie: {statuses} ({len(done)}/{len(bayes)} finished)"
    return reml <= 0.2, f"REML wall {reml:.2f}x lme4's (median); {versus}"


def _big(t):
    rss = max(r["peak_rss_mib"] for r in t["ours"])
    return rss <= 2048, f"peak RSS {rss:.0f} MiB"


NO_TARGET = ["-", "-", "no target covers these cases"]
TARGETS = (
    ("hsb82", "hsb82: ESS/s >= 10x bambi+nutpie and >= 300x rstanarm, 0 divergences", _hsb),
    ("sim_gauss_200k", "sim_gauss_200k: wall < 15 s and ESS/s >= 200x bambi+nutpie", _gauss200k),
    ("contraception", "contraception: ESS/s >= 20x bambi+nutpie", _logit),
    ("sim_logit_50k", "sim_logit_50k: ESS/s >= 20x bambi+nutpie", _logit),
    ("insteval", "insteval: REML wall <= 0.2x lme4's; Bayesian fit against bambi+nutpie "
     "(900 s cap, no ratio target)", _insteval),
    ("sim_gauss_10m", "sim_gauss_10m: peak RSS <= 2 GiB", _big),
)


def targets_table(results: list[dict]) -> list[list[str]]:
    """The issue's targets, each met / MISSED / not measured, judged on medians over seeds."""
    by_case = _by_case(results)
    return [_target(name, check, by_case[case]) for case, name, check in TARGETS if case in by_case]


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _ram_gib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """nproc, CPU model, RAM, Python, load average and package versions."""
    info = {
        "nproc": _run(["nproc"]), "cpu": _cpu_model(), "ram": f"{_ram_gib():.1f} GiB",
        "python": platform.python_version(), "load average (1/5/15 min)": str(os.getloadavg()),
    }
    info.update({name: _version(name) for name in PACKAGES})
    return info


def _md_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header, rows) -> str:
    """A fixed-width plain text table for the terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*map(str, r)) for r in [header, *rows])


def markdown(results: list[dict], machine: dict[str, str], meta: dict[str, str], notes: str) -> str:
    """The whole RESULTS.md."""
    parts = [
        "# Benchmarks: multilevel vs bambi, rstanarm and brms\n",
        "Generated by `python bench/run.py` (`make bench`); do not edit by hand.\n",
        "## Run\n", _md_table(("setting", "value"), list(meta.items())) + "\n",
        "## Results\n", _md_table(columns(results), results_table(results)) + "\n",
        "## Targets (issue 19, medians over seeds)\n",
        _md_table(("target", "status", "measured"), targets_table(results) or [NO_TARGET]) + "\n",
        "## Machine\n", _md_table(("item", "value"), list(machine.items())) + "\n",
        "## Notes\n", notes,
    ]
    return "\n".join(parts)
