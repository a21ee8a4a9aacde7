"""A/B timing of two versions of the source on the same cases and seeds, interleaved.

For a change that must not slow anything down (a refactor): every (case, seed) is fitted by the
base revision and by the working tree, one after the other (which one first alternates from
pair to pair), each in a fresh process, with the
default call users make (``fit_hierarchical(formula, df, seed=s)``, REML beside it, 4 chains x
1000 draws). Both numba caches are warmed first, so no compile time is measured. Prints, and
writes to ``bench/out/ab-<time>.md``, the wall time and the minimum bulk ESS of the
hyperparameters per seed, and the median and range per case and version. Identical ESS means
identical draws: the change did not alter the numbers.

Usage::

    python bench/ab.py --base HEAD~1
    python bench/ab.py --base f62188e --cases hsb82,sim_gauss_200k --seeds 7,11,2024
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _worker(case_name: str, seed: int) -> None:
    """Fit one case in this process and print one JSON line (run with ``--worker``)."""
    sys.path.insert(0, str(HERE))
    import metrics
    from cases import get_case

    import multilevel

    case = get_case(case_name)
    df = case.load()
    start = time.perf_counter()
    fit = multilevel.fit_hierarchical(case.formula, df, family=case.family, draws=1000, tune=case.tune,
                                      chains=case.chains, seed=seed, progressbar=False)
    wall = time.perf_counter() - start
    ess, _, _ = metrics.min_bulk_ess(metrics.ours_hyper(fit.idata))
    print(json.dumps({"wall": wall, "ess": ess, "source": multilevel.__file__}))


def _run(src: Path, case: str, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, __file__, "--worker", case, str(seed)], env=env,
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["source"].startswith(str(src)):
        raise SystemExit(f"imported {result['source']}, not the tree under {src}")
    return result


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="HEAD", help="git revision to compare the working tree with")
    p.add_argument("--cases", default="hsb82,sim_gauss_200k")
    p.add_argument("--seeds", default="7,11,2024")
    p.add_argument("--worker", nargs=2, metavar=("CASE", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]))
        return
    cases, seeds = args.cases.split(","), [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {f"base {args.base}": base / "src", "working tree": ROOT / "src"}
        for src in trees.values():  # compile (or load) both numba caches before timing
            _run(src, cases[0], 1)
        rows = []
        pairs = [(case, seed) for case in cases for seed in seeds]
        for k, (case, seed) in enumerate(pairs):  # ABBA: alternate which version runs first
            order = list(trees.items()) if k % 2 == 0 else list(trees.items())[::-1]
            for label, src in order:
                r = _run(src, case, seed)
                rows.append({"case": case, "seed": seed, "version": label, **r})
                print(f"{case:16s} seed {seed:5d}  {label:22s} wall {r['wall']:6.2f} s  "
                      f"min ESS {r['ess']:7.1f}", flush=True)
    lines = ["| case | version | wall s, median [range] | min bulk ESS, median [range] |",
             "|---|---|---|---|"]
    for case in cases:
        for label in trees:
            sel = [r for r in rows if r["case"] == case and r["version"] == label]
            lines.append(f"| {case} | {label} | {_summary([r['wall'] for r in sel])} | "
                         f"{_summary([r['ess'] for r in sel])} |")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    text = (f"# A/B timing, {stamp}\n\nSeeds {args.seeds}; default call (REML beside), "
            f"4 chains x 1000 draws; interleaved, fresh process per fit.\n\n" + "\n".join(lines) + "\n")
    out = HERE / "out" / f"ab-{stamp}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print("\n" + text + f"\nwritten to {out}")


if __name__ == "__main__":
    main()
