"""The nutpie driver: NUTS over a :class:`~multilevel.engine.problem.Problem`, no graph compiled.

The problem's kernel reaches nutpie's Rust sampler as a C callback
(:mod:`multilevel.engine.callbacks`) reading the header of the problem's argument record
(:func:`multilevel.engine.args.pack`), so the chains run in parallel threads without the GIL.
nutpie stores the unconstrained vector ``theta``; the problem's vectorised ``constrained``
maps all draws to the named variables afterwards.

Examples
--------
>>> THETA
'theta_unconstrained'
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from multilevel.engine.args import pack
from multilevel.engine.callbacks import cfuncs
from multilevel.engine.problem import Problem
from multilevel.spec.terms import SamplerSettings

__all__ = ["THETA", "run_nutpie"]

#: Name of the unconstrained vector in nutpie's raw output (never reaches the user).
THETA = "theta_unconstrained"


def run_nutpie(problem: Problem, settings: SamplerSettings, *, progressbar: bool = True):
    """NUTS by nutpie over ``problem``'s compiled kernel, called as a C callback with the
    header of its argument record. Returns nutpie's ArviZ data with the posterior group holding
    the problem's named variables."""
    import nutpie
    from nutpie.compile_pymc import CompiledPyMCModel

    header, keep = pack(problem.args)
    logp_c, expand_c = cfuncs(problem.kernel)
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
    for name, shape, dims in problem.variables():
        full = ("chain", "draw", *(dims or [f"{name}_dim_{i}" for i in range(len(shape))]))
        data[name] = (full, np.asarray(values[name]).reshape(theta.shape[:2] + tuple(shape)))
    posterior = xr.Dataset(
        data, coords={"chain": theta["chain"].values, "draw": theta["draw"].values,
                      **problem.coords()},
        attrs=idata["posterior"].attrs,
    )
    idata["posterior"] = xr.DataTree(posterior)
    return idata
