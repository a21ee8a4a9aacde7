"""The frequentist side: REML/ML/Laplace/AGQ equal to lme4 (via mixedlm), and the REML
random-effects meta-analysis, from a :class:`~multilevel.design.Design`.

Examples
--------
>>> from multilevel import datasets
>>> from multilevel.frequentist import fit_frequentist
>>> fit_frequentist("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy")).method
'REML'
"""

from multilevel.frequentist.fit import check_frequentist, fit_design, fit_frequentist
from multilevel.frequentist.meta import MetaAnalysisFit
from multilevel.frequentist.mixed import HESSIAN_STEP, METHODS, SINGULAR_TOL, check_method
from multilevel.frequentist.result import FrequentistFit, GroupCovariance

__all__ = [
    "HESSIAN_STEP",
    "METHODS",
    "SINGULAR_TOL",
    "FrequentistFit",
    "GroupCovariance",
    "MetaAnalysisFit",
    "check_frequentist",
    "check_method",
    "fit_design",
    "fit_frequentist",
]
