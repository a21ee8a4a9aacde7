r"""Posterior predictions for new rows and new groups, summarized chunk by chunk.

For posterior draw :math:`s` and new row :math:`i`, the linear predictor is

.. math::

    \eta_{si} = x_i^\top \beta_s + \sum_k z_{ik}^\top u_{k, s, j_k(i)},

with :math:`u_{k,s,j}` the posterior draw of a level seen in fitting. A level not seen in
fitting gets, by ``new_levels``:

* ``"sample"`` (default; rstanarm, brms ``sample_new_levels = "gaussian"``): a fresh effect
  :math:`u \sim N(0, \Sigma_{k,s})` for every posterior draw, one per new level (rows of the same
  new level share it). For a Gaussian random intercept the predicted mean is then the
  population value and the variance adds :math:`E[\tau^2]`; on the probability scale of a
  logistic model the mean is the average over the new effect, not
  :math:`\operatorname{logit}^{-1}` of the population linear predictor.
* ``"population"`` (lme4): :math:`u = 0`;
* ``"error"``: a :class:`DataError` naming the unseen levels.

Each grouping factor decides on its own (a known school with a new class). ``groups=False``
leaves every group effect out (lme4's ``re.form = NA``). ``scale="response"`` applies the
inverse link per draw (the expected value :math:`E[y \mid \cdot]`), ``"link"`` keeps
:math:`\eta`. :func:`prediction_table` forms each row's draws in a per-thread buffer
(:mod:`multilevel.results.rowstats`), so 10^6 rows x 4,000 draws are summarized without
holding 4e9 numbers.

Examples
--------
>>> import pandas as pd
>>> from multilevel import datasets, fit_hierarchical
>>> fit = fit_hierarchical("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"),
...                        draws=200, tune=200, chains=2, seed=1, progressbar=False)
>>> table = prediction_table(fit, pd.DataFrame({"Days": [3.0], "Subject": ["308"]}), seed=1)
>>> list(table.columns)
['Days', 'Subject', 'mean', 'sd', 'median', 'lower', 'upper', 'reml']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from multilevel import naming
from multilevel.design.newdata import NEW_LEVELS, NewDesign, check_scale, new_design
from multilevel.design.serial import ar_noise, serial_pairs_of
from multilevel.design.types import require_rows
from multilevel.engine.recovery import effect_draws
from multilevel.errors import DataError, SpecError
from multilevel.results.core import DEFAULT_PROB, draws_of
from multilevel.results.rowstats import combine_rows, summarize_rows

if TYPE_CHECKING:
    from multilevel.results.record import FitRecord

__all__ = [
    "Predictor",
    "posterior_predict",
    "predict_draws",
    "prediction_table",
    "predictions_idata",
]

def _check_new_levels(new_levels: str) -> str:
    if new_levels not in NEW_LEVELS:
        raise SpecError(
            f"new_levels={new_levels!r} is not an option: use 'sample' (draw a new group's "
            "effect from the group-level distribution), 'population' (set it to zero, as lme4) "
            "or 'error'."
        )
    return new_levels


def _flat(posterior: xr.Dataset, name: str) -> np.ndarray:
    arr = draws_of(posterior, name)
    return arr.reshape((-1,) + arr.shape[2:])


class Predictor:
    """Posterior draws and new rows as one table of draws and per-row weights.

    ``E`` stacks, one row per coefficient and ``draws`` columns, the fixed effects, every
    factor's group effects (level-major, then term) and the new-level effects; row ``i`` of the
    new data is ``sum_c w[i, c] * E[idx[i, c]]`` (:mod:`multilevel.results.rowstats`). A new
    level under ``new_levels='population'`` (or ``groups=False``) has weight 0.
    """

    def __init__(
        self,
        fit: FitRecord,
        newdata: pd.DataFrame | None,
        *,
        groups: bool = True,
        new_levels: str = "sample",
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if not isinstance(groups, bool):
            raise SpecError(f"groups must be True or False, got {groups!r}.")
        _check_new_levels(new_levels)
        self.fit = fit
        self.design: NewDesign = new_design(fit.design, newdata, groups=groups)
        self.index = (np.arange(self.design.n_obs) if newdata is None
                      else np.asarray(newdata.index))
        post = fit.posterior
        self.shape = (post.sizes["chain"], post.sizes["draw"])
        rng = np.random.default_rng(seed)
        nd = self.design
        blocks = [_flat(post, naming.FIXED).T]  # (p, S)
        idx = [np.broadcast_to(np.arange(nd.X.shape[1]), nd.X.shape)]
        w = [nd.X]
        offset = nd.X.shape[1]
        for ng, g in zip(nd.groups or (), fit.design.groups, strict=False):
            if ng.new_levels and new_levels == "error":
                raise DataError(
                    f"newdata has level(s) {list(ng.new_levels[:10])} of {g.factor!r} not seen "
                    f"in fitting ({len(ng.new_levels)} in all): drop those rows, or pass "
                    "new_levels='sample' (draw their effects) or 'population' (set them to 0)."
                )
            seen = ng.index >= 0
            if naming.effect_name(g.factor) in post:
                present = np.arange(g.n_levels)
                u = _flat(post, naming.effect_name(g.factor))  # (S, L, q)
            else:  # group_draws='summary': redraw the effects of the levels newdata has
                present = np.unique(ng.index[seen])
                u = effect_draws(fit.idata, fit.design, g.factor, present)
            blocks.append(u.reshape(u.shape[0], -1).T)
            rows = np.where(seen, np.searchsorted(present, np.maximum(ng.index, 0)), 0)
            n_seen_rows = len(present) * g.n_terms
            weight = np.where(seen[:, None], ng.Z, 0.0)
            if ng.new_levels and new_levels == "sample":
                new = self._new_effects(post, g, len(ng.new_levels), rng)  # (S, L_new, q)
                blocks.append(new.reshape(new.shape[0], -1).T)
                rows = np.where(seen, rows, len(present) + np.maximum(ng.new_index, 0))
                weight = ng.Z
                n_seen_rows += new.shape[1] * g.n_terms
            terms = np.arange(g.n_terms)
            idx.append(offset + rows[:, None] * g.n_terms + terms[None, :])
            w.append(weight)
            offset += n_seen_rows
        self.E = np.concatenate(blocks, axis=0)
        self.idx = np.concatenate(idx, axis=1).astype(np.int64)
        self.w = np.concatenate(w, axis=1).astype(float)

    @staticmethod
    def _new_effects(post: xr.Dataset, g, n_new: int, rng: np.random.Generator) -> np.ndarray:
        """``(draws, n_new, terms)`` effects ``N(0, Sigma_s)`` of the unseen levels."""
        sd = _flat(post, naming.sd_name(g.factor))  # (S, q)
        z = rng.standard_normal((sd.shape[0], n_new, g.n_terms))
        chol_name, cor_name = naming.corchol_name(g.factor), naming.cor_name(g.factor)
        if chol_name in post:  # the sampled Cholesky factor: fine even at a correlation of 1
            z = np.einsum("sab,snb->sna", _flat(post, chol_name), z)
        elif cor_name in post:
            z = np.einsum("sab,snb->sna", np.linalg.cholesky(_flat(post, cor_name)), z)
        return z * sd[:, None, :]

    @property
    def n_draws(self) -> int:
        """Posterior draws, all chains."""
        return int(self.E.shape[1])

    def _logistic(self, scale: str) -> bool:
        return scale == "response" and self.fit.spec.is_logistic

    def values(self, scale: str) -> np.ndarray:
        """``(draws, rows)`` expected value (``scale='response'``) or linear predictor."""
        return combine_rows(self.E, self.idx, self.w, self._logistic(scale)).T

    def summaries(self, scale: str, prob: float) -> np.ndarray:
        """``(rows, 5)`` mean, sd, median, lower, upper, one row at a time."""
        return summarize_rows(self.E, self.idx, self.w, self._logistic(scale), prob)

    def as_array(self, values: np.ndarray, name: str) -> xr.DataArray:
        """``(draws, rows)`` values as a labelled (chain, draw, obs) DataArray."""
        post = self.fit.posterior
        return xr.DataArray(
            values.reshape(*self.shape, -1), dims=("chain", "draw", naming.OBS_DIM),
            coords={"chain": post["chain"].values, "draw": post["draw"].values,
                    naming.OBS_DIM: self.index}, name=name,
        )


def predict_draws(
    fit: FitRecord,
    newdata: pd.DataFrame | None = None,
    *,
    scale: str = "response",
    groups: bool = True,
    new_levels: str = "sample",
    seed: int | np.random.Generator | None = None,
) -> xr.DataArray:
    """``(chain, draw, obs)`` draws of the expected value (or linear predictor) of each row."""
    check_scale(scale)
    pred = Predictor(fit, newdata, groups=groups, new_levels=new_levels, seed=seed)
    return pred.as_array(pred.values(scale), "prediction")


def _frame_of(fit: FitRecord, newdata: pd.DataFrame | None) -> pd.DataFrame:
    """The rows predicted, with newdata's own index (so results align with it)."""
    if newdata is None:
        require_rows(fit.design, "Predictions for the fitted rows (newdata=None)")
        return fit.design.frame.copy()
    return newdata.copy()


def prediction_table(
    fit: FitRecord,
    newdata: pd.DataFrame | None = None,
    *,
    scale: str = "response",
    groups: bool = True,
    new_levels: str = "sample",
    prob: float = DEFAULT_PROB,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """The newdata columns, then ``mean``, ``sd``, ``median``, ``lower``, ``upper`` per row
    (central ``prob`` interval), and the frequentist prediction under the fit's method name
    (``reml``, ``laplace``; new levels get the population value there, as lme4)."""
    check_scale(scale)
    if not 0 < prob < 1:
        raise SpecError(f"prob must lie in (0, 1), got {prob!r}.")
    pred = Predictor(fit, newdata, groups=groups, new_levels=new_levels, seed=seed)
    out = pred.summaries(scale, prob)
    table = _frame_of(fit, newdata)
    for j, col in enumerate(("mean", "sd", "median", "lower", "upper")):
        table[col] = out[:, j]
    if fit.frequentist is not None:
        table[fit.method] = fit.frequentist.predict(newdata, scale=scale, groups=groups)
    return table


def _trials_for(fit: FitRecord, nd: NewDesign) -> np.ndarray:
    spec = fit.spec
    if nd.trials is None:
        need = (f"the trials column {spec.trials!r}" if spec.trials else
                f"the columns {spec.response!r} and {spec.failures!r} (trials = their sum)")
        raise DataError(
            f"newdata lacks {need}, which binomial predictions of new observations need: add "
            "the number of trials per row."
        )
    n = nd.trials
    if np.any(n < 0) or np.any(n != np.round(n)):
        raise DataError("The trials of newdata must be non-negative whole numbers.")
    return n.astype(np.int64)


def posterior_predict(
    fit: FitRecord,
    newdata: pd.DataFrame | None = None,
    *,
    groups: bool = True,
    new_levels: str = "sample",
    seed: int | np.random.Generator | None = None,
) -> xr.DataArray:
    """``(chain, draw, obs)`` draws of new observations: the expected value plus residual
    noise ``N(0, sigma_s)`` (Gaussian; with ``ar1``/``car1`` correlated along each series of
    the rows in time order when they carry the time and series columns, else independent; the
    newdata's known standard errors for ``y | se(s)``
    when it holds that column, else none: the true effect of a new study), or
    ``Binomial(trials, p_s)`` / ``Bernoulli(p_s)`` for logistic models."""
    rng = np.random.default_rng(seed)
    pred = Predictor(fit, newdata, groups=groups, new_levels=new_levels, seed=rng)
    mean = pred.values("response")
    nd = pred.design
    if fit.spec.is_logistic:
        values = rng.binomial(_trials_for(fit, nd), mean).astype(float)
    elif fit.spec.se is not None:
        values = mean if nd.se is None else mean + rng.standard_normal(mean.shape) * nd.se
    else:
        sigma = _flat(fit.posterior, naming.SIGMA)[:, None]
        noise = rng.standard_normal(mean.shape)
        pairs = serial_pairs_of(fit.design, newdata)
        if pairs is not None:  # AR(1)/CAR(1): correlated within each series of the rows
            noise = ar_noise(*pairs, _flat(fit.posterior, naming.PHI), noise)
        values = mean + noise * sigma
    return pred.as_array(values, fit.spec.response)


def predictions_idata(
    fit: FitRecord,
    newdata: pd.DataFrame | None = None,
    *,
    groups: bool = True,
    new_levels: str = "sample",
    seed: int | np.random.Generator | None = None,
):
    """A copy of ``fit.idata`` with ArviZ's ``predictions`` group (new observations, named
    after the response) and ``predictions_constant_data`` (the newdata's columns over ``obs``)."""
    draws = posterior_predict(fit, newdata, groups=groups, new_levels=new_levels, seed=seed)
    frame = _frame_of(fit, newdata)
    const = xr.Dataset(
        {str(c): (naming.OBS_DIM, _plain_column(frame[c])) for c in frame.columns},
        coords={naming.OBS_DIM: draws[naming.OBS_DIM].values},
    )
    tree = fit.idata.copy()
    tree["predictions"] = xr.DataTree(xr.Dataset({draws.name: draws}))
    tree["predictions_constant_data"] = xr.DataTree(const)
    return tree


def _plain_column(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
        return s.astype(str).to_numpy(dtype=str)
    return s.to_numpy()
