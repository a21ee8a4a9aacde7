"""The compiled (numba) log-densities against the PyMC models that define them.

Both parameterizations are checked the same way at random points: the gradient against
central finite differences of the compiled log-density, and log-density *differences* between
two points against PyMC's ``compile_logp(jacobian=False)`` on the constrained values (the two
differ by the log-Jacobian of the transforms, which is added back, and by constants that
cancel in a difference; the correlation parameters are held fixed between the two points
because the two implementations use different transforms for them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import multilevel as ml
from multilevel import naming
from multilevel.design import build_design, collapse_binomial
from multilevel.engine.crossed import crossed_problem
from multilevel.engine.linearized import lin_problem
from multilevel.engine.marginal import hyper_problem, marginal_problem
from multilevel.engine.noncentered import nc_problem
from multilevel.model import build_model, resolve_priors

CASES = {
    "sleepstudy_slope": ("Reaction ~ Days + (Days | Subject)", "gaussian", "sleepstudy"),
    "radon_intercept": ("log_radon ~ floor + (1 | county)", "gaussian", "radon"),
    "sleepstudy_uncorr": ("Reaction ~ Days + (Days || Subject)", "gaussian", "sleepstudy"),
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "cbpp"),
    "contraception": (
        "use ~ urban + age + livch + (1 + urban | district)", "bernoulli", "contraception"
    ),
}


def _design(case: str):
    formula, family, data = CASES[case]
    spec = ml.ModelSpec.from_formula(
        formula, family=family, priors={"b": ml.Prior("StudentT", nu=4.0, mu=0.0, sigma=30.0)}
    )
    design = build_design(spec, ml.datasets.load(data))
    return design, resolve_priors(design)


def _fd_gradient(problem, theta: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    eye = np.eye(len(theta))
    return np.array(
        [(problem.logp_grad(theta + eps * e)[0] - problem.logp_grad(theta - eps * e)[0]) / (2 * eps)
         for e in eye]
    )


def _pymc_logp(model, values: dict[str, np.ndarray]):
    logp = model.compile_logp(jacobian=False)
    point = {}
    for rv in model.free_RVs:
        transform = model.rvs_to_transforms[rv]
        if rv.name in values:
            value = values[rv.name]
        else:  # one of several scalar priors stacked into a vector ("b__2" is b[2])
            base, k = rv.name.rsplit("__", 1)
            value = values[base][int(k)]
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs).eval()
        point[model.rvs_to_values[rv].name] = value
    return float(logp(point))


def _log_jacobian(problem, theta: np.ndarray, sd_slices, sigma: bool) -> float:
    return sum(theta[s].sum() for s in sd_slices) + (theta[-1] if sigma else 0.0)


def _check(problem, model, theta, theta2, sd_slices, sigma):
    grad = problem.logp_grad(theta)[1]
    np.testing.assert_allclose(grad, _fd_gradient(problem, theta), rtol=1e-5, atol=1e-4)
    ours = [problem.logp_grad(t)[0] - _log_jacobian(problem, t, sd_slices, sigma) for t in (theta, theta2)]
    theirs = [_pymc_logp(model, problem.constrained(t)) for t in (theta, theta2)]
    assert ours[1] - ours[0] == pytest.approx(theirs[1] - theirs[0], rel=1e-8, abs=1e-6)


@pytest.mark.parametrize("case", ["sleepstudy_slope", "radon_intercept", "sleepstudy_uncorr"])
def test_marginal_logp_matches_pymc(case):
    design, priors = _design(case)
    problem = marginal_problem(design, priors)
    rng = np.random.default_rng(11)
    theta = problem.initial_point(rng)
    theta2 = theta.copy()
    theta2[: problem.p] += rng.normal(0, 0.5, problem.p)
    sd = [slice(f.ks, f.kx) for f in problem.factors]
    theta2[sd[0]] += rng.normal(0, 0.3, sd[0].stop - sd[0].start)
    theta2[-1] += 0.1
    model = build_model(design, parameterization="marginal", priors=priors)
    _check(problem, model, theta, theta2, sd, sigma=True)


@pytest.mark.parametrize("case", ["cbpp", "contraception", "sleepstudy_slope"])
def test_noncentered_logp_matches_pymc(case):
    design, priors = _design(case)
    problem = nc_problem(design, priors)
    rng = np.random.default_rng(5)
    theta = problem.initial_point(rng) + rng.normal(0, 0.2, problem.ndim)
    theta2 = theta + rng.normal(0, 0.1, problem.ndim)
    for _, x0, z0 in problem.layout:  # keep the correlation parameters
        theta2[x0:z0] = theta[x0:z0]
    model = build_model(problem.design, parameterization="noncentered", priors=priors)
    starts = [int(s0) for s0, _, _ in problem.layout]
    sd = [slice(s0, s0 + g.n_terms) for s0, g in zip(starts, design.groups, strict=True)]
    _check(problem, model, theta, theta2, sd, sigma=design.spec.family == "gaussian")


@pytest.mark.parametrize("case", ["cbpp", "contraception"])
def test_linearized_logp_matches_pymc(case):
    """The linearized kernel samples the non-centered model's posterior in other coordinates:
    with the correlation parameters held fixed, its log-density differences equal PyMC's (on
    the constrained values, no Jacobian) plus the change in ``log|det|`` of the map from its
    ``theta`` to ``(b, sd, z)`` that ``LinProblem.constrained`` computes, here by central
    finite differences."""
    design, priors = _design(case)
    problem = lin_problem(nc_problem(design, priors))
    rng = np.random.default_rng(5)
    theta = problem.initial_point(rng) + rng.normal(0, 0.2, problem.ndim)
    theta2 = theta + rng.normal(0, 0.1, problem.ndim)
    _, x0, z0 = problem.base.layout[0]
    theta2[x0:z0] = theta[x0:z0]
    np.testing.assert_allclose(problem.logp_grad(theta)[1], _fd_gradient(problem, theta),
                               rtol=1e-5, atol=1e-4)
    factor = design.groups[0].factor
    keep = np.r_[0:x0, z0:problem.ndim]

    def mapped(t):
        v = problem.constrained(t)
        return np.concatenate([v[naming.FIXED], v[naming.sd_name(factor)],
                               v[naming.offset_name(factor)].ravel()])

    def log_det(t, eps=1e-6):
        jac = np.empty((keep.size, keep.size))
        for col, k in enumerate(keep):
            step = np.zeros_like(t)
            step[k] = eps
            jac[:, col] = (mapped(t + step) - mapped(t - step)) / (2 * eps)
        return np.linalg.slogdet(jac)[1]

    ours = [problem.logp_grad(t)[0] - log_det(t) for t in (theta, theta2)]
    model = build_model(problem.design, parameterization="noncentered", priors=priors)
    theirs = [_pymc_logp(model, problem.constrained(t)) for t in (theta, theta2)]
    assert ours[1] - ours[0] == pytest.approx(theirs[1] - theirs[0], rel=1e-7, abs=1e-5)


def crossed_frame(seed: int = 4, n: int = 500, n_b: int = 4) -> pd.DataFrame:
    """Gaussian rows with two crossed factors ``a`` (15 levels), ``b`` (``n_b``) and ``c``
    nested in ``b`` (3 per level of ``b``)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 15, n), rng.integers(0, n_b, n)
    c = b * 3 + rng.integers(0, 3, n)
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + rng.normal(0, 0.7, 15)[a] + rng.normal(0, 1.0, n_b)[b]
         + rng.normal(0, 0.5, 3 * n_b)[c] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str),
                         "c": c.astype(str)})


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b) + (1 | c)",
                                     "y ~ x + (1 | a) + (0 + x | b)"])
def test_crossed_logp_matches_pymc(formula):
    """The crossed Gaussian kernel (conditional coordinates; ``b`` holds ``c`` and is sampled
    non-centered in the first case) against PyMC's non-centered model, as the linearized one:
    log-density differences equal PyMC's plus the change in ``log|det|`` of the map from its
    ``theta`` to ``(beta, sds, z, sigma)``, by central finite differences."""
    spec = ml.ModelSpec.from_formula(formula)
    design = build_design(spec, crossed_frame())
    priors = resolve_priors(design)
    problem = crossed_problem(nc_problem(design, priors))
    assert problem.args.conditional.tolist() == ([True, False, True] if "c)" in formula
                                                 else [True, True])
    rng = np.random.default_rng(6)
    theta = problem.initial_point(rng) + rng.normal(0, 0.2, problem.ndim)
    theta2 = theta + rng.normal(0, 0.1, problem.ndim)
    np.testing.assert_allclose(problem.logp_grad(theta)[1], _fd_gradient(problem, theta),
                               rtol=1e-5, atol=1e-4)
    factors = [g.factor for g in design.groups]

    def mapped(t):
        v = problem.constrained(t)
        return np.concatenate([v[naming.FIXED], *[v[naming.sd_name(f)] for f in factors],
                               *[v[naming.offset_name(f)].ravel() for f in factors],
                               [v[naming.SIGMA]]])

    def log_det(t, eps=1e-6):
        jac = np.empty((t.size, t.size))
        for k in range(t.size):
            step = np.zeros_like(t)
            step[k] = eps
            jac[:, k] = (mapped(t + step) - mapped(t - step)) / (2 * eps)
        return np.linalg.slogdet(jac)[1]

    ours = [problem.logp_grad(t)[0] - log_det(t) for t in (theta, theta2)]
    model = build_model(design, parameterization="noncentered", priors=priors)
    theirs = [_pymc_logp(model, problem.constrained(t)) for t in (theta, theta2)]
    assert ours[1] - ours[0] == pytest.approx(theirs[1] - theirs[0], rel=1e-7, abs=1e-5)


def test_crossed_c_callback_matches_the_kernel():
    design = build_design(ml.ModelSpec.from_formula("y ~ x + (1 | a) + (1 | b) + (1 | c)"),
                          crossed_frame())
    problem = crossed_problem(nc_problem(design, resolve_priors(design)))
    assert problem.kernel == "crossed"
    _assert_callback_matches_kernel(problem)


def test_collapsed_binomial_has_the_same_likelihood():
    design, priors = _design("contraception")
    collapsed = collapse_binomial(design)
    assert collapsed.n_obs < design.n_obs
    assert collapsed.y.sum() == design.y.sum() and collapsed.trials.sum() == design.n_obs
    full = build_model(design, parameterization="noncentered", priors=priors)
    small = build_model(collapsed, parameterization="noncentered", priors=priors)
    point = full.initial_point()
    rng = np.random.default_rng(2)
    point = {k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in point.items()}
    point2 = {k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in point.items()}
    d_full = full.compile_logp()(point2) - full.compile_logp()(point)
    d_small = small.compile_logp()(point2) - small.compile_logp()(point)
    assert d_full == pytest.approx(d_small, rel=1e-9)


def _assert_callback_matches_kernel(problem):
    """The cfunc nutpie calls (arguments packed behind one pointer) returns what the numba
    kernel returns when called from Python, and the batched ``constrained`` equals the
    draw-by-draw one."""
    import ctypes

    from multilevel.engine.args import pack
    from multilevel.engine.callbacks import cfuncs

    header, _keep = pack(problem.args)
    logp_c = cfuncs(problem.kernel)[0].ctypes
    rng = np.random.default_rng(3)
    thetas = np.stack([problem.initial_point(rng) for _ in range(3)])
    for theta in thetas:
        grad, logp = np.zeros(problem.ndim), np.zeros(1)
        as_ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))  # noqa: E731
        code = logp_c(problem.ndim, as_ptr(theta), as_ptr(grad), as_ptr(logp),
                      ctypes.c_void_p(header.ctypes.data))
        expected_lp, expected_grad = problem.logp_grad(theta)
        assert code == 0
        assert logp[0] == pytest.approx(expected_lp, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)
    batched = problem.constrained(thetas)
    for k, theta in enumerate(thetas):
        for name, value in problem.constrained(theta).items():
            np.testing.assert_allclose(batched[name][k], value, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize(("case", "kernel"), [
    ("sleepstudy_slope", "marginal"), ("contraception", "noncentered"), ("sleepstudy_uncorr", "noncentered"),
    ("contraception", "linearized"),
])
def test_c_callback_matches_the_kernel(case, kernel):
    design, priors = _design(case)
    problem = marginal_problem(design, priors) if kernel == "marginal" else nc_problem(design, priors)
    problem = lin_problem(problem) if kernel == "linearized" else problem
    assert problem.kernel == kernel
    _assert_callback_matches_kernel(problem)


def test_hyper_c_callback_matches_the_kernel():
    """The same for the hyperparameter kernel (default priors: normal fixed effects)."""
    design = build_design(ml.ModelSpec.from_formula("Reaction ~ Days + (Days | Subject)"),
                          ml.datasets.load("sleepstudy"))
    problem = hyper_problem(marginal_problem(design, resolve_priors(design)))
    assert problem.kernel == "hyper"
    _assert_callback_matches_kernel(problem)


def test_nested_c_callback_matches_the_kernel():
    """The same for the nested kernel, on two nested factors with a correlated outer slope."""
    rng = np.random.default_rng(8)
    school = np.repeat(np.arange(10), 12)
    klass = np.repeat(np.arange(40), 3)
    x = rng.normal(size=120)
    y = rng.normal(size=10)[school] + 0.4 * rng.normal(size=40)[klass] + x + rng.normal(size=120)
    df = pd.DataFrame({"y": y, "x": x, "school": school.astype(str), "klass": (klass % 4).astype(str)})
    design = build_design(ml.ModelSpec.from_formula("y ~ x + (1 + x | school) + (1 | school:klass)"), df)
    problem = marginal_problem(design, resolve_priors(design))
    assert problem.kernel == "nested"
    _assert_callback_matches_kernel(problem)


def test_fit_model_is_built_at_first_access_and_kept():
    """After a compiled-kernel fit, ``fit.model`` is built when first read, once, and holds the
    variables the posterior reports; a fit sampled by PyMC keeps the very model it sampled."""
    data = ml.datasets.load("sleepstudy")
    kw = dict(draws=30, tune=30, chains=1, seed=3, progressbar=False, frequentist=False)
    fit = ml.fit_hierarchical("Reaction ~ Days + (Days | Subject)", data, **kw)
    assert "model" not in fit.__dict__  # not built by the fit itself
    model = fit.model
    assert fit.model is model
    free = {rv.name for rv in model.free_RVs}
    assert {"b", "sigma", "sd_Subject"} <= free
    assert set(fit.posterior.data_vars) >= {"b", "sigma", "sd_Subject"}
    # the lazily built model has the same log-density as a model built from the fit's design
    point = model.initial_point()
    direct = build_model(fit.design, parameterization="marginal", priors=fit.resolved_priors,
                         stats=fit.stats)
    assert float(model.compile_logp()(point)) == pytest.approx(float(direct.compile_logp()(point)))
    pymc_fit = ml.fit_hierarchical("Reaction ~ Days + (1 | Subject)", data, sampler="pymc", **kw)
    sampled = pymc_fit.model
    assert sampled is pymc_fit.model
    assert {rv.name for rv in sampled.free_RVs} <= set(pymc_fit.posterior.data_vars)
