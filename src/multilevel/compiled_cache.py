"""One freshness stamp for all of the package's numba code cached on disk.

numba keeps a function compiled with ``cache=True`` while *its own* source file is unchanged. A
function whose machine code includes another module's code (every kernel inlines
:mod:`multilevel.engine.kernels.common`; the nutpie callbacks compile in the kernels and the
argument records' slot numbers) keeps running the old code after only that other module
changed. With the editable install that ``make demo`` makes, a ``git pull`` that changes a
kernel but not its callers would leave a stale log-density in use, silently.

Importing this module (``multilevel/__init__.py`` does it before anything else) puts cache
locators in front of numba's own that stamp every cached function of this package with one
hash of all its numba sources: every module that imports numba, and the argument records
(:mod:`multilevel.engine.args`). A change to any of them recompiles each function at its next
use. Functions of other packages keep numba's locators. Where numba no longer offers the hook
(``CacheImpl._locator_classes``; ``_CacheImpl`` before numba 0.61), nothing changes and
numba's per-file stamps apply.

Examples
--------
>>> from multilevel.engine.kernels.marginal import logp_grad
>>> isinstance(logp_grad._cache._impl.locator, LOCATORS)
True
>>> logp_grad._cache._impl.locator.get_source_stamp() == package_stamp()
True
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

__all__ = ["LOCATORS", "installed", "package_stamp", "source_stamp", "stamped_sources"]

PACKAGE_DIR = Path(__file__).resolve().parent
#: Modules whose values numba compiles in as constants without importing numba themselves.
EXTRA_SOURCES = ("engine/args.py",)
_NUMBA_IMPORTS = (b"import numba", b"from numba")


def stamped_sources(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's modules that import numba, and :data:`EXTRA_SOURCES`, sorted."""
    found = {p for p in package_dir.rglob("*.py")
             if any(line.lstrip().startswith(_NUMBA_IMPORTS)
                    for line in p.read_bytes().splitlines())}
    return sorted(found | {package_dir / extra for extra in EXTRA_SOURCES})


def source_stamp(paths: list[Path]) -> str:
    """sha256 over the names and bytes of ``paths``."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def package_stamp() -> str:
    """The stamp of this installation's numba sources (computed once per process)."""
    return source_stamp(stamped_sources())


def _numba_class(name: str) -> type:
    """numba's class ``name`` (public since numba 0.61, underscored before)."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


def _in_package(py_file: str) -> bool:
    return Path(py_file).resolve().is_relative_to(PACKAGE_DIR)


class _PackageStamp:
    """Locator mixin: only this package's files, all with :func:`package_stamp`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return package_stamp()


class PackageUserProvidedLocator(_PackageStamp, _numba_class("UserProvidedCacheLocator")):
    """numba's ``NUMBA_CACHE_DIR`` locator with the package stamp."""


class PackageInTreeLocator(_PackageStamp, _numba_class("InTreeCacheLocator")):
    """numba's ``__pycache__`` locator with the package stamp."""


class PackageUserWideLocator(_PackageStamp, _numba_class("UserWideCacheLocator")):
    """numba's user-wide cache locator (read-only installs) with the package stamp."""


LOCATORS = (PackageUserProvidedLocator, PackageInTreeLocator, PackageUserWideLocator)


def _install() -> bool:
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if not isinstance(classes, list):
        return False
    if not any(cls in classes for cls in LOCATORS):
        classes[:0] = LOCATORS
    return True


#: Whether the package's locators are in use (False: numba's per-file stamps apply).
installed = _install()
