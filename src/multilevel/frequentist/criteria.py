"""Information criteria from a maximised log-likelihood, shared by every frequentist fit.

Examples
--------
>>> class Fit(LikelihoodCriteria):
...     loglik, n_params, nobs = -10.0, 3, 20
>>> Fit().deviance, Fit().aic, round(Fit().bic, 4)
(20.0, 26.0, 28.9872)
"""

from __future__ import annotations

import math

__all__ = ["LikelihoodCriteria"]


class LikelihoodCriteria:
    """``deviance``, ``aic`` and ``bic`` from ``loglik``, ``n_params`` and :attr:`bic_nobs`."""

    loglik: float
    n_params: int
    nobs: int

    @property
    def bic_nobs(self) -> float:
        """Observations in BIC's penalty (lme4: the rows)."""
        return self.nobs

    @property
    def deviance(self) -> float:
        """``-2 * loglik`` (the REML criterion for REML fits)."""
        return -2.0 * self.loglik

    @property
    def aic(self) -> float:
        """Akaike information criterion from :attr:`loglik`."""
        return self.deviance + 2.0 * self.n_params

    @property
    def bic(self) -> float:
        """Bayesian information criterion from :attr:`loglik` and :attr:`bic_nobs`."""
        return self.deviance + math.log(self.bic_nobs) * self.n_params
