"""nutpie's C callbacks for the compiled kernels: the header of an argument record, unpacked.

nutpie's ``from_pyfunc`` calls a Python function for every gradient: the chains then share the
GIL (they run one after another) and each call costs ~15 us of Python overhead, which for a
small marginal model is most of the work. Here the log-density is instead a numba ``cfunc``
with the C signature nutpie's Rust sampler calls directly (the one nutpie's own numba backend
uses): ``int64 logp(uint64 dim, double *x, double *grad, double *logp, void *user_data)``.

``user_data`` is the ``int64`` header of the kernel's argument record
(:func:`multilevel.engine.args.pack`); each callback reads every field at the slot the record
assigns it (``_M.ztz``, ...) with the accessor of its kind, into a local of the field's name, and
passes the locals to the kernel in the record's order (the tests check that every record's
field names are the kernel's parameter names, in order), so the record is the one place where
arguments are ordered. The ``cfunc`` is generic and cached
on disk like the kernels it wraps (this module imports the records: a change to a record
changes this module's compiled constants only after the cache is cleared, so records and
callbacks live side by side and the tests compare every callback with its kernel).

Return codes follow nutpie's: ``0`` ok, ``3`` non-finite gradient, ``4`` non-finite log-density,
``1`` an exception (all recoverable: the step is rejected as a divergence).

Examples
--------
>>> sorted(RECORDS)
['crossed', 'hyper', 'linearized', 'marginal', 'nested', 'noncentered', 'serial']
"""

from __future__ import annotations

import functools
import warnings

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from multilevel.engine.args import (
    SLOT,
    CrossedArgs,
    HyperArgs,
    LinearizedArgs,
    MarginalArgs,
    NestedArgs,
    NoncenteredArgs,
    SerialArgs,
)
from multilevel.engine.kernels.crossed import crossed_logp_grad
from multilevel.engine.kernels.hyper import hyper_logp_grad
from multilevel.engine.kernels.linearized import lin_logp_grad
from multilevel.engine.kernels.marginal import logp_grad
from multilevel.engine.kernels.nested import nested_logp_grad
from multilevel.engine.kernels.noncentered import nc_logp_grad
from multilevel.engine.kernels.serial import serial_logp_grad

__all__ = ["KERNELS", "RECORDS", "cfuncs"]

_S = SLOT
_M = MarginalArgs.slots()
_N = NestedArgs.slots()
_C = NoncenteredArgs.slots()
_R = SerialArgs.slots()
_H = HyperArgs.slots()
_L = LinearizedArgs.slots()
_X = CrossedArgs.slots()
_M_SIZE = MarginalArgs.header_size()
_N_SIZE = NestedArgs.header_size()
_C_SIZE = NoncenteredArgs.header_size()
_R_SIZE = SerialArgs.header_size()
_H_SIZE = HyperArgs.header_size()
_L_SIZE = LinearizedArgs.header_size()
_X_SIZE = CrossedArgs.header_size()


@intrinsic
def _as_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


@numba.njit(inline="always")
def _f1(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1],), np.float64)


@numba.njit(inline="always")
def _f2(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1], h[_S * k + 2]), np.float64)


@numba.njit(inline="always")
def _f3(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1], h[_S * k + 2], h[_S * k + 3]), np.float64)


@numba.njit(inline="always")
def _i1(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1],), np.int64)


@numba.njit(inline="always")
def _i2(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1], h[_S * k + 2]), np.int64)


@numba.njit(inline="always")
def _b1(h, k):
    return numba.carray(_as_pointer(h[_S * k]), (h[_S * k + 1],), np.bool_)


@numba.njit(inline="always")
def _flt(h, k):
    return _f1(h, k)[0]


@numba.njit(inline="always")
def _int(h, k):
    return h[_S * k]


@numba.njit(inline="always")
def _bool(h, k):
    return h[_S * k] != 0


@numba.njit(inline="always")
def _finish(lp, grad, out, logp_, dim):
    for i in range(dim):
        out[i] = grad[i]
        if not np.isfinite(grad[i]):
            return 3
    logp_[0] = lp
    return 0 if np.isfinite(lp) else 4


def _marginal_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_M_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        shift = _f1(h, _M.shift)
        ztz = _f3(h, _M.ztz)
        ztx = _f3(h, _M.ztx)
        zty = _f2(h, _M.zty)
        xtx = _f2(h, _M.xtx)
        xty = _f1(h, _M.xty)
        yty = _flt(h, _M.yty)
        n_total = _flt(h, _M.n_total)
        b_fam = _i1(h, _M.b_fam)
        b_par = _f2(h, _M.b_par)
        sd_fam = _i1(h, _M.sd_fam)
        sd_par = _f2(h, _M.sd_par)
        sig_fam = _int(h, _M.sig_fam)
        sig_par = _f1(h, _M.sig_par)
        eta = _flt(h, _M.eta)
        correlated = _bool(h, _M.correlated)
        lp, grad = logp_grad(
            x, shift, ztz, ztx, zty, xtx, xty, yty, n_total, b_fam, b_par, sd_fam, sd_par,
            sig_fam, sig_par, eta, correlated,
        )
    except Exception:  # noqa: BLE001 - nutpie's convention: report, the step is rejected
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _hyper_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_H_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        ztz = _f3(h, _H.ztz)
        ztx = _f3(h, _H.ztx)
        zty = _f2(h, _H.zty)
        xtx = _f2(h, _H.xtx)
        xty = _f1(h, _H.xty)
        yty = _flt(h, _H.yty)
        n_total = _flt(h, _H.n_total)
        b_mean = _f1(h, _H.b_mean)
        b_prec = _f1(h, _H.b_prec)
        sd_fam = _i1(h, _H.sd_fam)
        sd_par = _f2(h, _H.sd_par)
        sig_fam = _int(h, _H.sig_fam)
        sig_par = _f1(h, _H.sig_par)
        eta = _flt(h, _H.eta)
        correlated = _bool(h, _H.correlated)
        lp, grad = hyper_logp_grad(
            x, ztz, ztx, zty, xtx, xty, yty, n_total, b_mean, b_prec, sd_fam, sd_par, sig_fam,
            sig_par, eta, correlated,
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _linearized_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_L_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        XT = _f2(h, _L.XT)
        y = _f1(h, _L.y)
        trials = _f1(h, _L.trials)
        ZT = _f2(h, _L.ZT)
        idx = _i1(h, _L.idx)
        q = _int(h, _L.q)
        correlated = _bool(h, _L.correlated)
        A = _f3(h, _L.A)
        c = _f2(h, _L.c)
        D = _f3(h, _L.D)
        beta0 = _f1(h, _L.beta0)
        M = _f2(h, _L.M)
        b_fam = _i1(h, _L.b_fam)
        b_par = _f2(h, _L.b_par)
        sd_fam = _i1(h, _L.sd_fam)
        sd_par = _f2(h, _L.sd_par)
        eta = _flt(h, _L.eta)
        lp, grad = lin_logp_grad(
            x, XT, y, trials, ZT, idx, q, correlated, A, c, D, beta0, M, b_fam, b_par, sd_fam,
            sd_par, eta,
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _crossed_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_X_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        XtX = _f2(h, _X.XtX)
        Xty = _f1(h, _X.Xty)
        yty = _flt(h, _X.yty)
        n_total = _flt(h, _X.n_total)
        NX = _f2(h, _X.NX)
        ny = _f1(h, _X.ny)
        nsq = _f1(h, _X.nsq)
        layout = _i2(h, _X.layout)
        order = _i1(h, _X.order)
        conditional = _b1(h, _X.conditional)
        cr_start = _i2(h, _X.cr_start)
        cr_ptr = _i1(h, _X.cr_ptr)
        cr_col = _i1(h, _X.cr_col)
        cr_val = _f1(h, _X.cr_val)
        beta0 = _f1(h, _X.beta0)
        M = _f2(h, _X.M)
        b_fam = _i1(h, _X.b_fam)
        b_par = _f2(h, _X.b_par)
        sd_fam = _i1(h, _X.sd_fam)
        sd_par = _f2(h, _X.sd_par)
        sig_fam = _int(h, _X.sig_fam)
        sig_par = _f1(h, _X.sig_par)
        lp, grad = crossed_logp_grad(
            x, XtX, Xty, yty, n_total, NX, ny, nsq, layout, order, conditional, cr_start, cr_ptr,
            cr_col, cr_val, beta0, M, b_fam, b_par, sd_fam, sd_par, sig_fam, sig_par,
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _noncentered_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_C_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        shift = _f1(h, _C.shift)
        XT = _f2(h, _C.XT)
        y = _f1(h, _C.y)
        trials = _f1(h, _C.trials)
        ZT = _f2(h, _C.ZT)
        z_start = _i1(h, _C.z_start)
        idx = _i2(h, _C.idx)
        q = _i1(h, _C.q)
        levels = _i1(h, _C.levels)
        correlated = _b1(h, _C.correlated)
        layout = _i2(h, _C.layout)
        b_fam = _i1(h, _C.b_fam)
        b_par = _f2(h, _C.b_par)
        sd_fam = _i1(h, _C.sd_fam)
        sd_par = _f2(h, _C.sd_par)
        sd_start = _i1(h, _C.sd_start)
        eta_lkj = _f1(h, _C.eta_lkj)
        family = _int(h, _C.family)
        sig_fam = _int(h, _C.sig_fam)
        sig_par = _f1(h, _C.sig_par)
        lp, grad = nc_logp_grad(
            x, shift, XT, y, trials, ZT, z_start, idx, q, levels, correlated, layout, b_fam, b_par,
            sd_fam, sd_par, sd_start, eta_lkj, family, sig_fam, sig_par,
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _nested_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_N_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        shift = _f1(h, _N.shift)
        g1 = _f3(h, _N.g1)
        z1x = _f3(h, _N.z1x)
        z1y = _f2(h, _N.z1y)
        a2 = _f3(h, _N.a2)
        c12 = _f3(h, _N.c12)
        z2x = _f3(h, _N.z2x)
        z2y = _f2(h, _N.z2y)
        cell_start = _i1(h, _N.cell_start)
        xtx = _f2(h, _N.xtx)
        xty = _f1(h, _N.xty)
        yty = _flt(h, _N.yty)
        n_total = _flt(h, _N.n_total)
        b_fam = _i1(h, _N.b_fam)
        b_par = _f2(h, _N.b_par)
        sd_fam = _i1(h, _N.sd_fam)
        sd_par = _f2(h, _N.sd_par)
        sig_fam = _int(h, _N.sig_fam)
        sig_par = _f1(h, _N.sig_par)
        eta = _f1(h, _N.eta)
        correlated = _b1(h, _N.correlated)
        lp, grad = nested_logp_grad(
            x, shift, g1, z1x, z1y, a2, c12, z2x, z2y, cell_start, xtx, xty, yty, n_total, b_fam,
            b_par, sd_fam, sd_par, sig_fam, sig_par, eta, correlated,
        )
    except Exception:  # noqa: BLE001
        return 1
    return _finish(lp, grad, out, logp_, dim)


def _serial_raw(dim, x_, out_, logp_, user_data):  # pragma: no cover - runs compiled
    h = numba.carray(user_data, (_R_SIZE,), np.int64)
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    try:
        shift = _f1(h, _R.shift)
        s0z = _f3(h, _R.s0z)
        s0x = _f2(h, _R.s0x)
        cell_group = _i1(h, _R.cell_group)
        cell_lag_index = _i1(h, _R.cell_lag_index)
        cell_dz = _f3(h, _R.cell_dz)
        cell_cz = _f3(h, _R.cell_cz)
        lags = _f1(h, _R.lags)
        lag_count = _f1(h, _R.lag_count)
        lag_dx = _f3(h, _R.lag_dx)
        lag_cx = _f3(h, _R.lag_cx)
        n_total = _flt(h, _R.n_total)
        b_fam = _i1(h, _R.b_fam)
        b_par = _f2(h, _R.b_par)
        sd_fam = _i1(h, _R.sd_fam)
        sd_par = _f2(h, _R.sd_par)
        sig_fam = _int(h, _R.sig_fam)
        sig_par = _f1(h, _R.sig_par)
        eta = _flt(h, _R.eta)
        correlated = _bool(h, _R.correlated)
        phi_lo = _flt(h, _R.phi_lo)
        phi_hi = _flt(h, _R.phi_hi)
        phi_fam = _int(h, _R.phi_fam)
        phi_par = _f1(h, _R.phi_par)
        lp, grad = serial_logp_grad(
            x, shift, s0z, s0x, cell_group, cell_lag_index, cell_dz, cell_cz, lags, lag_count, lag_dx,
            lag_cx, n_total, b_fam, b_par, sd_fam, sd_par, sig_fam, sig_par, eta, correlated,
            phi_lo, phi_hi, phi_fam, phi_par,
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
_RAW = {"marginal": _marginal_raw, "noncentered": _noncentered_raw, "nested": _nested_raw,
        "serial": _serial_raw, "hyper": _hyper_raw, "linearized": _linearized_raw,
        "crossed": _crossed_raw}
RECORDS = {"marginal": MarginalArgs, "noncentered": NoncenteredArgs, "nested": NestedArgs,
           "serial": SerialArgs, "hyper": HyperArgs, "linearized": LinearizedArgs,
           "crossed": CrossedArgs}
KERNELS = {"marginal": logp_grad, "noncentered": nc_logp_grad, "nested": nested_logp_grad,
           "serial": serial_logp_grad, "hyper": hyper_logp_grad, "linearized": lin_logp_grad,
           "crossed": crossed_logp_grad}


@functools.cache
def cfuncs(kernel: str):
    """The log-density and expand callbacks of ``kernel`` (a key of :data:`RECORDS`), compiled
    at first use after install or loaded from numba's disk cache."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=numba.NumbaWarning)
        return (numba.cfunc(_LOGP_SIG, cache=True)(_RAW[kernel]),
                numba.cfunc(_EXPAND_SIG, cache=True)(_identity_raw))
