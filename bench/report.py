"""Tables of benchmark results: the per-fit table, the targets, machine information, RESULTS.md.

Ratios are always taken within one run: ``ESS/s x`` is our ESS per second divided by the
tool's, ``wall x`` the tool's wall time divided by ours (both > 1 when we are faster).

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
COLUMNS = ("case", "rows", "groups", "tool", "status", "wall s", "min bulk ESS", "worst param",
           "ESS/s", "div", "ESS/s x", "wall x", "peak RSS MiB")


def _fmt(value: Any) -> str:
    """Numbers with about 3-4 significant digits; ``None``/NaN as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def _ratio(ours: dict | None, other: dict, key: str, invert: bool) -> float | None:
    a = (ours or {}).get(key)
    b = other.get(key)
    if not a or not b or other is ours:
        return None
    return b / a if invert else a / b


def _row(r: dict, ours: dict | None) -> list[str]:
    ok = r.get("status") == "ok"
    wall = r.get("wall_s") if ok else None
    if r.get("status") == "timeout":
        wall_txt = f"> {r['limit_s']:.0f}"
        wall_ratio = f"> {r['limit_s'] / ours['wall_s']:.1f}" if ours and ours.get("wall_s") else "-"
    else:
        wall_txt = _fmt(wall)
        wall_ratio = _fmt(_ratio(ours, r, "wall_s", True)) if r["tool"].startswith("bambi") else ""
    ess_ratio = _fmt(_ratio(ours, r, "ess_per_s", False)) if r["tool"].startswith("bambi") else ""
    return [
        r["case"], _fmt(r.get("n_rows")), _fmt(r.get("n_groups")), r["tool"], r["status"], wall_txt,
        _fmt(r.get("min_ess")), r.get("min_ess_param", "-") or "-", _fmt(r.get("ess_per_s")),
        _fmt(r.get("divergences")), ess_ratio, wall_ratio, _fmt(r.get("peak_rss_mib")),
    ]


def _by_case(results: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in results:
        out.setdefault(r["case"], {})[r["tool"]] = r
    return out


def results_table(results: list[dict]) -> list[list[str]]:
    """One row per (case, tool), with ratios against our fit of the same case."""
    rows = []
    for tools in _by_case(results).values():
        ours = tools.get("ours")
        ours = ours if ours and ours.get("status") == "ok" else None
        rows += [_row(r, ours) for r in tools.values()]
    return rows


def _target(name: str, check, tools: dict[str, dict]) -> list[str]:
    try:
        met, detail = check(tools)
    except (KeyError, TypeError, ZeroDivisionError) as err:
        return [name, "not measured", f"missing result ({err})"]
    return [name, "met" if met else "MISSED", detail]


def _ess_ratio(tools: dict, other: str) -> float:
    if tools[other]["status"] != "ok":
        raise KeyError(f"{other} {tools[other]['status']}")
    return tools["ours"]["ess_per_s"] / tools[other]["ess_per_s"]


def _hsb(t):
    ratio, div = _ess_ratio(t, "bambi_nutpie"), t["ours"]["divergences"]
    return ratio >= 10 and div == 0, f"ESS/s {ratio:.2f}x bambi+nutpie, {div} divergences"


def _gauss200k(t):
    wall, ratio = t["ours"]["wall_s"], _ess_ratio(t, "bambi_nutpie")
    return wall < 30 and ratio >= 30, f"wall {wall:.1f} s, ESS/s {ratio:.2f}x bambi+nutpie"


def _logit(t):
    ratio = _ess_ratio(t, "bambi_nutpie")
    return ratio >= 3, f"ESS/s {ratio:.2f}x bambi+nutpie"


def _big(t):
    rss = t["ours"]["peak_rss_mib"]
    return rss <= 2048, f"peak RSS {rss:.0f} MiB (wall {t['ours']['wall_s']:.1f} s)"


NO_TARGET = ["-", "-", "no target covers these cases"]
TARGETS = (
    ("hsb82", "hsb82: ESS/s >= 10x bambi+nutpie, 0 divergences", _hsb),
    ("sim_gauss_200k", "sim_gauss_200k: wall < 30 s and ESS/s >= 30x bambi+nutpie", _gauss200k),
    ("sim_logit_50k", "sim_logit_50k: ESS/s >= 3x bambi+nutpie", _logit),
    ("sim_gauss_10m", "sim_gauss_10m: peak RSS <= 2 GiB", _big),
)


def targets_table(results: list[dict]) -> list[list[str]]:
    """The issue's targets, each met / MISSED / not measured, for the cases that were run."""
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
        "# Benchmarks: multilevel vs bambi\n",
        "Generated by `python bench/run.py` (`make bench`); do not edit by hand.\n",
        "## Run\n", _md_table(("setting", "value"), list(meta.items())) + "\n",
        "## Results\n", _md_table(COLUMNS, results_table(results)) + "\n",
        "## Targets (issue \"Speed by design\")\n",
        _md_table(("target", "status", "measured"), targets_table(results) or [NO_TARGET]) + "\n",
        "## Machine\n", _md_table(("item", "value"), list(machine.items())) + "\n",
        "## Notes\n", notes,
    ]
    return "\n".join(parts)
