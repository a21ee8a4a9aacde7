"""Where the lme4 reference fits live: ``../shared/reference`` when it is checked out beside the
repository (the authoritative copy), else the snapshot in ``tests/reference/lme4_shared`` (so the
reference checks never silently skip on a machine without ``shared/``)."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_SHARED = _ROOT.parent / "shared" / "reference"
_SNAPSHOT = Path(__file__).resolve().parent / "reference" / "lme4_shared"

REFERENCE = _SHARED if (_SHARED / "cases.json").is_file() else _SNAPSHOT
