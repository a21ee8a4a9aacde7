"""The compiled log-densities (numba, cached on disk): marginal, hyper, non-centered,
linearized, crossed, nested, serial; their shared pieces in common, and in rows the loops over
the rows of the logistic ones (vectorised ``exp`` and ``log``).

Each kernel is one generic function of arrays, compiled once per install, so that a new dataset
compiles nothing; :mod:`multilevel.engine.args` says what they take.
"""
