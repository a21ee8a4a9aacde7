"""The package-wide stamp on numba's disk cache (:mod:`multilevel.compiled_cache`).

A kernel that inlines another module's code must be recompiled when only that other module
changes; numba alone would keep the stale machine code. These tests check that every cached
function of the package carries the package stamp, that the stamp covers every module that
imports numba (found here by parsing the imports, not by the module's text search), that it
moves with any byte of any of them, and that a stale cache entry is really replaced.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba

from multilevel import compiled_cache
from multilevel.compiled_cache import LOCATORS, PACKAGE_DIR, package_stamp, source_stamp, stamped_sources


def _imports_numba(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "numba" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "numba":
            return True
    return False


def test_stamp_covers_every_module_that_compiles():
    by_ast = {p for p in PACKAGE_DIR.rglob("*.py") if _imports_numba(p)}
    stamped = set(stamped_sources())
    assert by_ast <= stamped
    assert PACKAGE_DIR / "engine" / "args.py" in stamped  # record slots compiled in as constants
    assert {p.name for p in by_ast} >= {"common.py", "marginal.py", "noncentered.py", "callbacks.py"}


def test_every_cached_function_of_the_package_carries_the_stamp():
    assert compiled_cache.installed
    modules = ["multilevel.engine.kernels.common", "multilevel.engine.kernels.marginal",
               "multilevel.engine.kernels.noncentered", "multilevel.engine.kernels.nested",
               "multilevel.engine.kernels.serial", "multilevel.engine.kernels.linearized",
               "multilevel.engine.linearized", "multilevel.design.statistics",
               "multilevel.results.rowstats", "multilevel.frequentist.deviance"]
    seen = 0
    for name in modules:
        for obj in vars(importlib.import_module(name)).values():
            cache = getattr(obj, "_cache", None)
            if isinstance(obj, numba.core.registry.CPUDispatcher) and cache is not None \
                    and hasattr(cache, "_impl"):
                locator = cache._impl.locator
                assert isinstance(locator, LOCATORS), (name, obj)
                assert locator.get_source_stamp() == package_stamp()
                seen += 1
    assert seen >= 20
    from multilevel.engine.callbacks import cfuncs

    for cfunc in cfuncs("marginal"):  # the nutpie callbacks, compiled with cache=True too
        assert isinstance(cfunc._cache._impl.locator, LOCATORS)


def test_stamp_moves_with_any_byte(tmp_path):
    files = [tmp_path / "a.py", tmp_path / "b.py"]
    for f, text in zip(files, ("x = 1\n", "y = 2\n"), strict=True):
        f.write_text(text)
    before = source_stamp(files)
    assert source_stamp(files) == before
    files[1].write_text("y = 3\n")
    assert source_stamp(files) != before


def test_functions_outside_the_package_keep_numbas_locators(tmp_path, monkeypatch):
    (tmp_path / "outside_mod.py").write_text(textwrap.dedent("""
        import numba

        @numba.njit(cache=True)
        def twice(x):
            return 2 * x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("outside_mod")
    assert mod.twice(2) == 4
    assert not isinstance(mod.twice._cache._impl.locator, LOCATORS)


def test_a_changed_dependency_recompiles_the_cached_caller(tmp_path):
    """A copy of the package whose inlined helper changes but whose caller's file does not:
    the caller must compute with the new helper on the next run (numba's own per-file stamp
    would keep the old machine code)."""
    pkg = tmp_path / "multilevel"
    subprocess.run(["cp", "-r", str(PACKAGE_DIR), str(pkg)], check=True)
    for cache in pkg.rglob("__pycache__"):
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    probe = textwrap.dedent("""
        import numpy as np
        from multilevel.engine.kernels import marginal

        # recover_draws inlines common.py's helpers: M = I + 3I = 4I, u = M^-1 (1, 1) = 0.25,
        # exact in floating point
        beta = np.zeros((1, 1)); lam = np.eye(2)[None]; sigma = np.ones(1)
        ztz = 3 * np.eye(2)[None]; ztx = np.zeros((1, 2, 1)); zty = np.ones((1, 2))
        eps = np.zeros((1, 1, 2))
        print(float(marginal.recover_draws(beta, lam, sigma, ztz, ztx, zty, eps)[0, 0, 0]))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run() -> float:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=env, check=True, cwd=tmp_path)
        return float(out.stdout.strip().splitlines()[-1])

    first = run()
    assert first == 0.25
    assert run() == first  # loaded from the cache the first run wrote
    common = pkg / "engine" / "kernels" / "common.py"
    text = common.read_text()
    old = ("        out[a] = acc\n\n\n@numba.njit(cache=True, nogil=True, inline=\"always\")\n"
           "def cross_residual")
    assert old in text  # the end of matvec
    common.write_text(text.replace(old, old.replace("out[a] = acc", "out[a] = 2 * acc"), 1))
    assert run() == 0.5  # w = Lambda'c doubled: marginal.py's cached code was replaced
