"""The compiled log-densities (numba, cached on disk): marginal, non-centered, nested, common.

Each kernel is one generic function of arrays, compiled once per install, so that a new dataset
compiles nothing; :mod:`multilevel.engine.args` says what they take.
"""
