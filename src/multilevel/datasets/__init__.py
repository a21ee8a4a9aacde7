"""Small example datasets bundled with the package (sources in ``SOURCES.md`` beside this file).

Factor columns come back as pandas Categoricals in R's level order, so the first level is the
treatment-contrast reference exactly as in the lme4 fits of the same data.

Examples
--------
>>> from multilevel import datasets
>>> datasets.names()  # doctest: +NORMALIZE_WHITESPACE
['blackmore', 'cbpp', 'contraception', 'course_example', 'eight_schools', 'hsb82', 'insteval',
 'radon', 'sleepstudy']
>>> df = datasets.load("hsb82")
>>> df.shape, list(df["sector"].cat.categories)
((7185, 8), ['Public', 'Catholic'])
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

import pandas as pd

from multilevel.errors import DataError

__all__ = ["load", "names"]

_FILES = {
    "blackmore": "blackmore.csv",
    "cbpp": "cbpp.csv",
    "contraception": "Contraception.csv",
    "course_example": "course_example.csv",
    "eight_schools": "eight_schools.csv",
    "hsb82": "Hsb82.csv",
    "insteval": "InstEval.csv.gz",
    "radon": "radon.csv",
    "sleepstudy": "sleepstudy.csv",
}


def names() -> list[str]:
    """Names accepted by :func:`load`."""
    return sorted(_FILES)


@cache
def _levels() -> dict[str, dict[str, list[str]]]:
    return json.loads(files(__name__).joinpath("levels.json").read_text())


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a new DataFrame (a fresh copy on every call).

    Parameters
    ----------
    name : str
        One of :func:`names` (case-insensitive).

    Examples
    --------
    >>> load("sleepstudy").columns.tolist()
    ['Reaction', 'Days', 'Subject']
    """
    key = name.lower()
    if key not in _FILES:
        raise DataError(f"No bundled dataset {name!r}: choose one of {', '.join(names())}.")
    name_ = _FILES[key]
    with files(__name__).joinpath("data", name_).open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip" if name_.endswith(".gz") else None)
    for col, levels in _levels().get(key, {}).items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return df
