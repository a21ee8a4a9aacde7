"""The sampling engine: compiled log-densities behind one :class:`Problem` protocol, the nutpie
and PyMC drivers, exact effect recovery and the parameterization choice.

Examples
--------
>>> from multilevel.engine import MAX_TERMS
>>> MAX_TERMS
8
"""

from multilevel.engine.choice import MAX_TERMS, choose_parameterization, marginal_supported
from multilevel.engine.problem import Problem
from multilevel.engine.run import Sampled, sample_posterior

__all__ = ["MAX_TERMS", "Problem", "Sampled", "choose_parameterization", "marginal_supported",
           "sample_posterior"]
