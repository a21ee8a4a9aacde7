"""Typed argument records of the compiled kernels: the one definition of what each takes.

Each kernel (:mod:`multilevel.engine.kernels`) takes ``theta`` and then the fields of one
record, by name: :class:`MarginalArgs` (one grouping factor), :class:`NestedArgs` (two nested
ones) and :class:`NoncenteredArgs` (any family and number of factors). A field declares its
*kind* once (:func:`arg`: ``f``/``i``/``b`` for float/int/bool, then the number of array
dimensions, none for a scalar); from it follow

* the values handed to the numba kernel from Python (:meth:`KernelArgs.values`),
* the ``int64`` header nutpie's C callback reads (:func:`pack`: four slots per field, the
  address of an array or the value of an int/bool, then its shape; a float scalar travels as a
  1-vector), and
* the slot of every field in that header (:meth:`KernelArgs.slots`, compile-time constants of
  :mod:`multilevel.engine.callbacks`).

The shared prior encoding and the centring shift of the fixed effects are made once, by
:func:`encode_priors`.

Examples
--------
>>> import numpy as np
>>> header, keep = pack(PriorCodes(np.zeros(2), np.array([0, 0]), np.zeros((2, 3)),
...                                np.array([10]), np.ones((1, 3)), 10, np.ones(3)))
>>> header.reshape(-1, 4)[:, 1:3].tolist()[:3]  # shapes of shift, b_fam, b_par
[[2, 0], [2, 0], [2, 3]]
>>> int(header[4 * PriorCodes.slots().sig_fam])  # an int travels by value
10
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from multilevel.design import Design, GroupDesign
from multilevel.design.statistics import moments
from multilevel.engine.kernels.common import FAMILY_CODES, FAMILY_PARAMS
from multilevel.model.priors import ResolvedPriors
from multilevel.spec.terms import Prior

__all__ = [
    "CrossedArgs",
    "HyperArgs",
    "KernelArgs",
    "LinearizedArgs",
    "MarginalArgs",
    "NestedArgs",
    "NoncenteredArgs",
    "PriorCodes",
    "SerialArgs",
    "arg",
    "encode_prior",
    "encode_priors",
    "pack",
]

_DTYPES = {"f": np.float64, "i": np.int64, "b": np.bool_}
SLOT = 4  # header entries per field: address or value, then up to three dimensions


def arg(kind: str) -> Any:
    """A record field of ``kind`` (``'f3'``: 3-d float array, ``'i'``: int scalar, ...)."""
    if kind[0] not in _DTYPES or not (len(kind) == 1 or kind[1:] in ("1", "2", "3")):
        raise ValueError(f"unknown argument kind {kind!r}")
    return field(metadata={"kind": kind})


@dataclass(frozen=True, eq=False)
class KernelArgs:
    """Base of the argument records: values in field order, kinds, header slots."""

    def values(self) -> tuple:
        """The fields in order, as the kernel takes them after ``theta`` (no copies)."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def kinds(cls) -> dict[str, str]:
        """Field name -> kind."""
        return {f.name: f.metadata["kind"] for f in fields(cls)}

    @classmethod
    def slots(cls) -> NamedTuple:
        """Field name -> position in the header (a namedtuple; numba reads it as constants)."""
        names = [f.name for f in fields(cls)]
        return namedtuple(f"{cls.__name__}Slots", names)(*range(len(names)))

    @classmethod
    def header_size(cls) -> int:
        """Length of the ``int64`` header of this record."""
        return SLOT * len(fields(cls))


@dataclass(frozen=True, eq=False)
class PriorCodes(KernelArgs):
    """Priors encoded for the kernels (:func:`encode_prior`), and the centring shift of the
    fixed effects (``xbar`` with 0 for the intercept; empty without an intercept)."""

    shift: np.ndarray = arg("f1")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")

    def priors(self) -> dict[str, Any]:
        """The fields as keywords for another record."""
        return {f.name: getattr(self, f.name) for f in fields(PriorCodes)}


@dataclass(frozen=True, eq=False)
class MarginalArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.marginal.logp_grad`: one factor's sufficient
    statistics, the priors, the LKJ ``eta`` and whether the factor is correlated."""

    shift: np.ndarray = arg("f1")
    ztz: np.ndarray = arg("f3")
    ztx: np.ndarray = arg("f3")
    zty: np.ndarray = arg("f2")
    xtx: np.ndarray = arg("f2")
    xty: np.ndarray = arg("f1")
    yty: float = arg("f")
    n_total: float = arg("f")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")
    eta: float = arg("f")
    correlated: bool = arg("b")


@dataclass(frozen=True, eq=False)
class HyperArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.hyper.hyper_logp_grad`: one factor's sufficient
    statistics, the fixed effects' normal prior as means and precisions (0: flat), the sd and
    residual-sd priors, the LKJ ``eta`` and whether the factor is correlated."""

    ztz: np.ndarray = arg("f3")
    ztx: np.ndarray = arg("f3")
    zty: np.ndarray = arg("f2")
    xtx: np.ndarray = arg("f2")
    xty: np.ndarray = arg("f1")
    yty: float = arg("f")
    n_total: float = arg("f")
    b_mean: np.ndarray = arg("f1")
    b_prec: np.ndarray = arg("f1")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")
    eta: float = arg("f")
    correlated: bool = arg("b")


@dataclass(frozen=True, eq=False)
class NestedArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.nested.nested_logp_grad`: per outer group and per cell
    statistics (:class:`multilevel.design.statistics.NestedStats`), the priors, and per factor
    the LKJ ``eta`` and whether it is correlated (outer first)."""

    shift: np.ndarray = arg("f1")
    g1: np.ndarray = arg("f3")
    z1x: np.ndarray = arg("f3")
    z1y: np.ndarray = arg("f2")
    a2: np.ndarray = arg("f3")
    c12: np.ndarray = arg("f3")
    z2x: np.ndarray = arg("f3")
    z2y: np.ndarray = arg("f2")
    cell_start: np.ndarray = arg("i1")
    xtx: np.ndarray = arg("f2")
    xty: np.ndarray = arg("f1")
    yty: float = arg("f")
    n_total: float = arg("f")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")
    eta: np.ndarray = arg("f1")
    correlated: np.ndarray = arg("b1")


@dataclass(frozen=True, eq=False)
class SerialArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.serial.serial_logp_grad`: one factor's AR(1)/CAR(1)
    statistics (:class:`multilevel.design.serial.SerialStats`), the priors, the LKJ ``eta``,
    whether the factor is correlated, and ``phi``'s range and prior (family code and
    parameters)."""

    shift: np.ndarray = arg("f1")
    s0z: np.ndarray = arg("f3")
    s0x: np.ndarray = arg("f2")
    cell_group: np.ndarray = arg("i1")
    cell_lag_index: np.ndarray = arg("i1")
    cell_dz: np.ndarray = arg("f3")
    cell_cz: np.ndarray = arg("f3")
    lags: np.ndarray = arg("f1")
    lag_count: np.ndarray = arg("f1")
    lag_dx: np.ndarray = arg("f3")
    lag_cx: np.ndarray = arg("f3")
    n_total: float = arg("f")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")
    eta: float = arg("f")
    correlated: bool = arg("b")
    phi_lo: float = arg("f")
    phi_hi: float = arg("f")
    phi_fam: int = arg("i")
    phi_par: np.ndarray = arg("f1")


@dataclass(frozen=True, eq=False)
class NoncenteredArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.noncentered.nc_logp_grad`: the (collapsed) rows
    (``XT``, ``ZT``: the fixed-effect matrix and every factor's varying-term columns side by
    side, transposed: a column per row), every factor's index, terms and layout in ``theta``,
    the priors and the family code (0 Gaussian, 1 binomial, 2 Gaussian with known standard
    errors in ``trials``)."""

    shift: np.ndarray = arg("f1")
    XT: np.ndarray = arg("f2")
    y: np.ndarray = arg("f1")
    trials: np.ndarray = arg("f1")
    ZT: np.ndarray = arg("f2")
    z_start: np.ndarray = arg("i1")
    idx: np.ndarray = arg("i2")
    q: np.ndarray = arg("i1")
    levels: np.ndarray = arg("i1")
    correlated: np.ndarray = arg("b1")
    layout: np.ndarray = arg("i2")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sd_start: np.ndarray = arg("i1")
    eta_lkj: np.ndarray = arg("f1")
    family: int = arg("i")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")


@dataclass(frozen=True, eq=False)
class LinearizedArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.linearized.lin_logp_grad`: the (collapsed) binomial
    rows of one grouping factor (``XT``, ``ZT``: the fixed-effect and varying-term matrices
    transposed, a column per row), the pilot's Gaussian approximation per group (``A``, ``c``,
    ``D``), the fixed effects' affine map (``beta0``, ``M``) and the priors."""

    XT: np.ndarray = arg("f2")
    y: np.ndarray = arg("f1")
    trials: np.ndarray = arg("f1")
    ZT: np.ndarray = arg("f2")
    idx: np.ndarray = arg("i1")
    q: int = arg("i")
    correlated: bool = arg("b")
    A: np.ndarray = arg("f3")
    c: np.ndarray = arg("f2")
    D: np.ndarray = arg("f3")
    beta0: np.ndarray = arg("f1")
    M: np.ndarray = arg("f2")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    eta: float = arg("f")


@dataclass(frozen=True, eq=False)
class CrossedArgs(KernelArgs):
    """:func:`multilevel.engine.kernels.crossed.crossed_logp_grad`: the cross-products of a
    Gaussian model with one scalar term per grouping factor (``X'X``, ``X'y``, ``y'y``, the
    number of rows; each level's ``Z'X``, ``Z'y``, ``Z'Z`` at its ``zeta`` position; every pair
    of factors' ``C_fg = Z_f'Z_g`` in compressed rows), the parameter layout with each
    factor's number of levels, the order the factors are taken in and which are sampled
    conditionally (the others non-centered), the fixed effects' affine map (``beta0``, ``M``)
    and the priors."""

    XtX: np.ndarray = arg("f2")
    Xty: np.ndarray = arg("f1")
    yty: float = arg("f")
    n_total: float = arg("f")
    NX: np.ndarray = arg("f2")
    ny: np.ndarray = arg("f1")
    nsq: np.ndarray = arg("f1")
    layout: np.ndarray = arg("i2")
    order: np.ndarray = arg("i1")
    conditional: np.ndarray = arg("b1")
    cr_start: np.ndarray = arg("i2")
    cr_ptr: np.ndarray = arg("i1")
    cr_col: np.ndarray = arg("i1")
    cr_val: np.ndarray = arg("f1")
    beta0: np.ndarray = arg("f1")
    M: np.ndarray = arg("f2")
    b_fam: np.ndarray = arg("i1")
    b_par: np.ndarray = arg("f2")
    sd_fam: np.ndarray = arg("i1")
    sd_par: np.ndarray = arg("f2")
    sig_fam: int = arg("i")
    sig_par: np.ndarray = arg("f1")


def pack(record: KernelArgs) -> tuple[np.ndarray, list[np.ndarray]]:
    """The ``int64`` header of ``record`` (module docstring) and the arrays it points to, which
    the caller keeps alive while the header is in use."""
    kinds = record.kinds()
    header = np.zeros(record.header_size(), dtype=np.int64)
    keep: list[np.ndarray] = []
    for k, (name, value) in enumerate(zip(kinds, record.values(), strict=True)):
        kind = kinds[name]
        if kind in ("i", "b"):
            header[SLOT * k] = int(value)
            continue
        arr = np.ascontiguousarray(np.atleast_1d(value), dtype=_DTYPES[kind[0]])
        ndim = int(kind[1:]) if len(kind) > 1 else 1
        if arr.ndim != ndim:
            raise ValueError(f"{type(record).__name__}.{name}: expected {ndim} dimensions, got {arr.ndim}")
        keep.append(arr)
        header[SLOT * k] = arr.ctypes.data
        header[SLOT * k + 1:SLOT * k + 1 + ndim] = arr.shape
    return header, keep


def encode_prior(prior: Prior) -> tuple[int, np.ndarray]:
    """A prior as the kernels read it: family code and up to three parameters.

    Examples
    --------
    >>> code, params = encode_prior(Prior("Normal", sigma=2.0))
    >>> code, params.tolist()
    (0, [0.0, 2.0, 0.0])
    """
    params = np.zeros(3)
    if prior.dist == "Uniform":  # phi only: flat inside the bounds the kernel maps onto
        return FAMILY_CODES["Flat"], params
    names = FAMILY_PARAMS[prior.dist]
    defaults = {"mu": 0.0, "alpha": 0.0} if prior.dist in ("Normal", "StudentT", "Cauchy") else {}
    for k, name in enumerate(names):
        params[k] = prior.kwargs.get(name, defaults.get(name, np.nan))
    return FAMILY_CODES[prior.dist], params


def encode_priors(design: Design, priors: ResolvedPriors, groups: list[GroupDesign] | tuple,
                  *, sigma: bool = True) -> PriorCodes:
    """Fixed-effect, sd (of ``groups``, in order) and residual-sd priors, and the centring
    shift; ``sigma=False`` for models without a residual sd (logistic, known SEs)."""
    fixed = [priors.intercept if n == "(Intercept)" else priors.fixed[n] for n in design.fixed_names]
    b_codes = [encode_prior(pr) for pr in fixed]
    sd_codes = [encode_prior(pr) for g in groups for pr in priors.sd[g.factor].values()]
    sig_fam, sig_par = encode_prior(priors.sigma) if sigma else (0, np.zeros(3))
    has_intercept = design.fixed_names[0] == "(Intercept)"
    shift = moments(design).x_mean if has_intercept else np.zeros(0)
    if has_intercept:
        shift[0] = 0.0
    return PriorCodes(
        shift=shift,
        b_fam=np.array([c for c, _ in b_codes], dtype=np.int64), b_par=np.array([v for _, v in b_codes]),
        sd_fam=np.array([c for c, _ in sd_codes], dtype=np.int64),
        sd_par=np.array([v for _, v in sd_codes]), sig_fam=int(sig_fam), sig_par=sig_par,
    )
