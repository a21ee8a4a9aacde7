"""TOML model specs: read them, and turn whatever the user passed into a :class:`ModelSpec`.

A spec file names a formula *or* a builder, and optionally the family, priors, level orders,
sampler settings and the data it goes with (a bundled dataset name or a CSV path relative to
the file)::

    name = "sleepstudy_slope"
    data = "sleepstudy"
    formula = "Reaction ~ Days + (Days | Subject)"
    family = "gaussian"

    [priors]
    sigma = { dist = "HalfNormal", sigma = 100.0 }

    [sampler]
    draws = 1000
    seed = 1

or, with a builder::

    [builder]
    kind = "varying_intercept"
    response = "log_radon"
    group = "county"
    predictors = ["floor"]

TOML is data: the formula goes through the same whitelist as any formula, and unknown keys are
errors that list the valid ones.

Examples
--------
>>> from multilevel import ModelSpec
>>> spec = ModelSpec.from_formula("y ~ x + (1 + x | g)", name="demo")
>>> spec_from_toml(spec.to_toml()) == spec
True
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path
from typing import Any

from multilevel import datasets
from multilevel.errors import SpecError
from multilevel.spec.model import ModelSpec
from multilevel.spec.named import (
    meta_analysis,
    multilevel_logistic,
    varying_intercept,
    varying_slope,
)
from multilevel.spec.terms import Prior, SamplerSettings

__all__ = ["as_spec", "load_spec", "spec_from_toml"]

_BUILDERS = {
    "varying_intercept": varying_intercept,
    "varying_slope": varying_slope,
    "multilevel_logistic": multilevel_logistic,
    "meta_analysis": meta_analysis,
}
_TOP_KEYS = {"name", "data", "formula", "family", "builder", "priors", "sampler", "levels"}
_SAMPLER_KEYS = set(SamplerSettings.__dataclass_fields__)


#: Longest TOML spec accepted, in characters.
MAX_TOML_CHARS = 100_000


def _unknown(keys: set[str], valid: set[str], where: str) -> None:
    extra = keys - valid
    if extra:
        raise SpecError(
            f"Unknown key(s) {sorted(extra)} in {where}; valid keys: {', '.join(sorted(valid))}."
        )


def _table(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(
            f"'{key}' in the spec file must be a table ([{key}] with key = value lines), got "
            f"{value!r}."
        )
    return value


def _text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"'{key}' in the spec file must be a string, got {value!r}.")
    return value


def _priors(table: dict[str, Any]) -> dict[str, Prior]:
    out = {}
    for target, entry in table.items():
        if not isinstance(entry, dict) or "dist" not in entry:
            raise SpecError(
                f"Prior for {target!r} must be a table like {{ dist = \"HalfNormal\", sigma = 1 }}."
            )
        params = {k: v for k, v in entry.items() if k != "dist"}
        for key, value in params.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SpecError(f"Prior parameter {key!r} for {target!r} must be a number.")
        out[target] = Prior(str(entry["dist"]), **params)
    return out


def spec_from_toml(text: str, *, base: Path | None = None) -> ModelSpec:
    """Build a spec from TOML text; ``base`` resolves a relative data path."""
    if not isinstance(text, str):
        raise SpecError(f"TOML text must be a string, got {type(text).__name__}.")
    if len(text) > MAX_TOML_CHARS:
        raise SpecError(
            f"The TOML spec is {len(text):,} characters long; the limit is {MAX_TOML_CHARS:,} (a "
            "spec is a formula, priors and settings). Check that this is the spec file."
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"Cannot parse the TOML spec: {err}. Check quotes, brackets and '='.") from None
    _unknown(set(doc), _TOP_KEYS, "the spec file")
    if ("formula" in doc) == ("builder" in doc):
        raise SpecError("A spec file needs exactly one of 'formula' or a [builder] table.")
    sampler = _table(doc, "sampler")
    _unknown(set(sampler), _SAMPLER_KEYS, "[sampler]")
    common: dict[str, Any] = {
        "priors": _priors(_table(doc, "priors")),
        "sampler": SamplerSettings(**sampler),
        "levels": _table(doc, "levels"),
        "name": _text(doc, "name"),
    }
    data = _text(doc, "data")
    if data is not None and base is not None and data.lower() not in datasets.names():
        data = str((base / data).resolve())
    common["data"] = data
    family = _text(doc, "family")
    if "formula" in doc:
        formula = _text(doc, "formula")
        return ModelSpec.from_formula(formula, family=family or "gaussian", **common)
    return _from_builder(_table(doc, "builder"), family, common)


def _from_builder(table: dict[str, Any], family: str | None, common: dict[str, Any]) -> ModelSpec:
    builder = dict(table)
    kind = builder.pop("kind", None)
    if kind not in _BUILDERS:
        raise SpecError(f"[builder] kind must be one of {', '.join(_BUILDERS)}, got {kind!r}.")
    params = inspect.signature(_BUILDERS[kind]).parameters
    valid = {k for k, p in params.items() if p.kind is not p.VAR_KEYWORD}
    _unknown(set(builder), valid, f"[builder] for {kind}")
    try:
        spec = _BUILDERS[kind](**builder, **common)
    except TypeError as err:
        raise SpecError(f"Bad arguments for builder {kind!r}: {err}.") from None
    if family is not None and family != spec.family:
        raise SpecError(f"family {family!r} does not match builder {kind!r} ({spec.family}).")
    return spec
def load_spec(path: str | Path) -> ModelSpec:
    """Read a TOML spec file (``models/*.toml``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.toml"
    >>> _ = p.write_text('formula = "y ~ x + (1 | g)"')
    >>> load_spec(p).to_formula()
    'y ~ 1 + x + (1 | g)'
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"Spec file {str(path)!r} does not exist (or is not a file).")
    if path.stat().st_size > 4 * MAX_TOML_CHARS:  # not read at all: bytes, up to 4 per character
        raise SpecError(f"The spec file {str(path)!r} is {path.stat().st_size:,} bytes; the limit "
                        f"is {MAX_TOML_CHARS:,} characters. Check that this is the spec file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"Cannot read the spec file {str(path)!r}: {err}.") from None
    try:
        return spec_from_toml(text, base=path.parent)
    except SpecError as err:
        raise SpecError(f"{err} (in {str(path)!r})") from None


def as_spec(spec: ModelSpec | str | Path, family: str | None = None) -> ModelSpec:
    """Accept a :class:`ModelSpec`, an lme4 formula or a path to a TOML spec."""
    if isinstance(spec, ModelSpec):
        if family is not None and family != spec.family:
            raise SpecError(f"family={family!r} conflicts with the spec's {spec.family!r}.")
        return spec
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith(".toml")):
        loaded = load_spec(spec)
        return as_spec(loaded, family)
    if isinstance(spec, str):
        return ModelSpec.from_formula(spec, family=family or "gaussian")
    raise SpecError(
        f"spec must be a ModelSpec, an lme4 formula string or a .toml path, got "
        f"{type(spec).__name__}."
    )

