"""Command line: ``multilevel fit spec.toml`` and ``multilevel demo``.

Bad paths and bad specs end with a one-line error and exit code 2, never a traceback.

Examples
--------
>>> build_parser().parse_args(["fit", "models/radon.toml", "--draws", "200"]).draws
200
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from multilevel.errors import DataError, SpecError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``multilevel`` command."""
    parser = argparse.ArgumentParser(
        prog="multilevel", description="Bayesian multilevel models with an lme4-equal REML comparison."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit one TOML spec and write a report")
    fit.add_argument("spec", help="path to a TOML model spec (see models/)")
    fit.add_argument("--data", help="CSV file to fit instead of the data the spec names")
    fit.add_argument("--out", help="report path (.html or .txt; default reports/<name>.html)")
    fit.add_argument("--draws", type=int, help="posterior draws per chain (default: the spec's)")
    fit.add_argument("--tune", type=int, help="tuning steps per chain (default: the spec's)")
    fit.add_argument("--chains", type=int, help="number of chains (default: the spec's)")
    fit.add_argument("--seed", type=int, help="random seed (default: the spec's)")
    fit.add_argument("--sampler", choices=["nutpie", "pymc"], help="NUTS implementation")
    fit.add_argument("--no-frequentist", action="store_true", help="skip the REML/ML/Laplace fit")
    demo = sub.add_parser("demo", help="fit every spec in a folder and write the reports")
    demo.add_argument("--models", default="models", help="folder of TOML specs (default: models)")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.add_argument("--draws", type=int, help="override draws per chain")
    return parser


def _fit_and_write(spec_path: Path, out: Path, args: argparse.Namespace) -> Path:
    from multilevel.design import load_data
    from multilevel.fit import fit_hierarchical
    from multilevel.report import write_report
    from multilevel.spec.io import load_spec

    spec = load_spec(spec_path)
    df = load_data(spec, getattr(args, "data", None))
    fit = fit_hierarchical(
        spec, df, draws=args.draws, tune=getattr(args, "tune", None),
        chains=getattr(args, "chains", None), seed=getattr(args, "seed", None),
        sampler=getattr(args, "sampler", None),
        frequentist=not getattr(args, "no_frequentist", False), progressbar=False,
    )
    write_report(fit, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``multilevel`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fit":
            spec_path = Path(args.spec)
            out = Path(args.out) if args.out else Path("reports") / f"{spec_path.stem}.html"
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                _fit_and_write(spec_path, out, args)
            print(f"wrote {out}")
            return 0
        folder = Path(args.models)
        specs = sorted(folder.glob("*.toml"))
        if not specs:
            raise SpecError(f"No *.toml specs in {str(folder)!r}.")
        for spec_path in specs:
            out = Path(args.out) / f"{spec_path.stem}.html"
            print(f"fitting {spec_path} ...", flush=True)
            _fit_and_write(spec_path, out, args)
            print(f"  wrote {out} and {out.with_suffix('.txt')}", flush=True)
        return 0
    except (SpecError, DataError, OSError) as err:
        print(f"multilevel: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
