"""Hand the cached numba log-densities to nutpie as C callbacks, so chains run in parallel.

nutpie's ``from_pyfunc`` calls a Python function for every gradient: the chains then share the
GIL (they run one after another) and each call costs ~15 us of Python overhead, which for a
small marginal model is most of the work. Here the log-density is instead a numba ``cfunc``
with the C signature nutpie's Rust sampler calls directly (the one nutpie's own numba backend
uses): ``int64 logp(uint64 dim, double *x, double *grad, double *logp, void *user_data)``.

The ``cfunc`` is generic and cached on disk like the kernels it wraps. A fit's arrays reach it
through ``user_data``: an ``int64`` header with, for every argument of the kernel, four slots
``(address or scalar value, shape...)``; :func:`pack` builds it and keeps the arrays alive.
The sampler stores the unconstrained vector ``theta``; the problem's vectorised
``constrained`` maps all draws to the named variables afterwards.

Return codes follow nutpie's: ``0`` ok, ``3`` non-finite gradient, ``4`` non-finite log-density,
``1`` an exception (all recoverable: the step is rejected as a divergence).

Examples
--------
>>> import numpy as np
>>> header, keep = pack((np.arange(3.0), 2.5, True), "f1 f b")
>>> header.reshape(-1, 4)[:, 1:].tolist()  # shapes; the scalar float travels as a 1-vector
[[3, 0, 0], [1, 0, 0], [0, 0, 0]]
>>> int(header[8])  # a bool travels by value
1
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import xarray as xr
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from multilevel.builders.fastlogp import logp_grad
from multilevel.builders.fastnc import nc_logp_grad
from multilevel.builders.fastnested import nested_logp_grad
from multilevel.spec import SamplerSettings

__all__ = ["KERNEL_ARGS", "THETA", "pack", "run_nutpie"]

#: Name of the unconstrained vector in nutpie's raw output (never reaches the user).
THETA = "theta_unconstrained"

#: Argument kinds of each kernel after ``theta`` (``f``/``i``/``b`` float/int/bool; a digit is
#: the number of array dimensions, none a scalar).
KERNEL_ARGS = {
    "marginal": "f1 f3 f3 f2 f2 f1 f f i1 f2 i1 f2 i f1 f b",
    "noncentered": "f1 f2 f1 f1 f2 i1 i2 i1 i1 b1 i2 i1 f2 i1 f2 i1 f1 i i f1",
    "nested": "f1 f3 f3 f2 f3 f3 f3 f2 i1 f2 f1 f f i1 f2 i1 f2 i f1 f1 b1",
}
_DTYPES = {"f": np.float64, "i": np.int64, "b": np.bool_}


def pack(args: Sequence[Any], kinds: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The ``int64`` header for ``args`` (see module docstring) and the arrays it points to."""
    kinds_list = kinds.split()
    if len(kinds_list) != len(args):
        raise ValueError(f"{len(args)} arguments for {len(kinds_list)} kinds")
    header = np.zeros(4 * len(args), dtype=np.int64)
    keep: list[np.ndarray] = []
    for k, (arg, kind) in enumerate(zip(args, kinds_list, strict=True)):
        if kind in ("i", "b"):
            header[4 * k] = int(arg)
            continue
        arr = np.ascontiguousarray(np.atleast_1d(arg), dtype=_DTYPES[kind[0]])
        ndim = int(kind[1:]) if len(kind) > 1 else 1
        if arr.ndim != ndim:
            raise ValueError(f"argument {k}: expected {ndim} dimensions, got {arr.ndim}")
        keep.append(arr)
        header[4 * k] = arr.ctypes.data
        header[4 * k + 1:4 * k + 1 + ndim] = arr.shape
    return header, keep


@intrinsic
def _as_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


@numba.njit(inline="always")
def _f1(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1],), np.float64)


@numba.njit(inline="always")
def _f2(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1], h[4 * k + 2]), np.float64)


@numba.njit(inline="always")
def _f3(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1], h[4 * k + 2], h[4 * k + 3]), np.float64)


@numba.njit(inline="always")
def _i1(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1],), np.int64)


@numba.njit(inline="always")
def _i2(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1], h[4 * k + 2]), np.int64)


@numba.njit(inline="always")
def _b1(h, k):
    return numba.carray(_as_pointer(h[4 * k]), (h[4 * k + 1],), np.bool_)


@numba.njit(inline="always")
def _finish(lp, grad, out, logp_, dim):
    for i in range(dim):
        out[i] = grad[i]
        if not np.isfinite(grad[i]):
            return 3
    logp_[0] = lp
    return 0 if np.isfinite(lp) else 4


def _marginal_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (64,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        lp, grad = logp_grad(
            x, _f1(h, 0), _f3(h, 1), _f3(h, 2), _f2(h, 3), _f2(h, 4), _f1(h, 5), _f1(h, 6)[0],
            _f1(h, 7)[0], _i1(h, 8), _f2(h, 9), _i1(h, 10), _f2(h, 11), h[48], _f1(h, 13),
            _f1(h, 14)[0], h[60] != 0,
        )
    except Exception:  # noqa: BLE001 - nutpie's convention: report, the step is rejected
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _noncentered_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (80,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        lp, grad = nc_logp_grad(
            x, _f1(h, 0), _f2(h, 1), _f1(h, 2), _f1(h, 3), _f2(h, 4), _i1(h, 5), _i2(h, 6),
            _i1(h, 7), _i1(h, 8), _b1(h, 9), _i2(h, 10), _i1(h, 11), _f2(h, 12), _i1(h, 13),
            _f2(h, 14), _i1(h, 15), _f1(h, 16), h[68], h[72], _f1(h, 19),
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _nested_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (84,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        lp, grad = nested_logp_grad(
            x, _f1(h, 0), _f3(h, 1), _f3(h, 2), _f2(h, 3), _f3(h, 4), _f3(h, 5), _f3(h, 6),
            _f2(h, 7), _i1(h, 8), _f2(h, 9), _f1(h, 10), _f1(h, 11)[0], _f1(h, 12)[0], _i1(h, 13),
            _f2(h, 14), _i1(h, 15), _f2(h, 16), h[68], _f1(h, 18), _f1(h, 19), _b1(h, 20),
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _identity_raw(dim, n_expanded, x_, out_, user_data):  # pragma: no cover - runs compiled
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (n_expanded,))
    for i in range(dim):
        out[i] = x[i]
    return 0


_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                        types.CPointer(types.double), types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)
_RAW = {"marginal": _marginal_raw, "noncentered": _noncentered_raw, "nested": _nested_raw}


@functools.cache
def _cfuncs(kernel: str):
    """Compile (first use after install) or load from numba's disk cache."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=numba.NumbaWarning)
        return (numba.cfunc(_LOGP_SIG, cache=True)(_RAW[kernel]),
                numba.cfunc(_EXPAND_SIG, cache=True)(_identity_raw))


def run_nutpie(problem, kernel: str, variables, coords, settings: SamplerSettings,
               *, progressbar: bool = True):
    """NUTS by nutpie over ``problem`` (``ndim``, ``args``, ``constrained``, ``initial_point``)
    with the compiled ``kernel`` (a key of :data:`KERNEL_ARGS`); ``variables`` are
    ``(name, shape, dims)`` of the stored draws. Returns nutpie's ArviZ data with the
    posterior group holding those variables."""
    import nutpie
    from nutpie.compile_pymc import CompiledPyMCModel

    header, keep = pack(problem.args, KERNEL_ARGS[kernel])
    logp_c, expand_c = _cfuncs(kernel)
    n = problem.ndim
    compiled = CompiledPyMCModel(
        dims={THETA: ("theta_dim",)}, _coords={"theta_dim": np.arange(n)}, _n_dim=n,
        _shapes={THETA: (n,)}, compiled_logp_func=logp_c, compiled_expand_func=expand_c,
        initial_point_func=lambda seed: problem.initial_point(np.random.default_rng(seed)),
        shared_data={str(k): a for k, a in enumerate([header, *keep])}, shared_var_keys={},
        user_data=header, n_expanded=n, shape_info=([THETA], [slice(0, n)], [(n,)]),
        logp_func=None, expand_func=None,
    )
    seed = settings.seed if settings.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    idata = nutpie.sample(
        compiled, draws=settings.draws, tune=settings.tune, chains=settings.chains, seed=seed,
        target_accept=settings.target_accept, progress_bar=progressbar,
    )
    theta = idata["posterior"][THETA].transpose("chain", "draw", "theta_dim")
    values = problem.constrained(theta.values)
    data = {}
    for name, shape, dims in variables:
        full = ("chain", "draw", *(dims or [f"{name}_dim_{i}" for i in range(len(shape))]))
        data[name] = (full, np.asarray(values[name]).reshape(theta.shape[:2] + tuple(shape)))
    posterior = xr.Dataset(
        data, coords={"chain": theta["chain"].values, "draw": theta["draw"].values,
                      **{k: v for k, v in coords.items()}},
        attrs=idata["posterior"].attrs,
    )
    idata["posterior"] = xr.DataTree(posterior)
    return idata
