"""Installed versions of the packages a fit depends on (stored with every fit).

Examples
--------
>>> sorted(package_versions())[:3]
['arviz', 'mixedlm', 'multilevel']
"""

from __future__ import annotations

from importlib.metadata import version

__all__ = ["PACKAGES", "package_versions"]

PACKAGES = ("multilevel", "pymc", "pytensor", "arviz", "nutpie", "mixedlm", "numpy", "pandas")


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (``'not installed'`` for a missing one)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except Exception:  # not installed, or unreadable metadata: a fit never fails on this
            out[name] = "not installed"
    return out
