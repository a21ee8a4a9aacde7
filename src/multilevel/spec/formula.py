"""lme4 formula syntax on top of bambi's formula engine (formulae).

Supported, with lme4's meaning:

============================  ===========================================================
``y ~ x + (1 | g)``           varying intercept
``y ~ x + (1 + x | g)``       correlated varying intercept and slope (``(x | g)`` too)
``y ~ x + (0 + x | g)``       varying slope only
``y ~ x + (x || g)``          uncorrelated intercept and slope (= ``(1|g) + (0+x|g)``)
``y ~ 1 + (1 | a/b)``         nested: ``(1 | a) + (1 | a:b)``
``y ~ 1 + (1 | a) + (1 | b)`` crossed
``y ~ x*z``                   main effects and interaction
``y ~ I(age^2)``              power as in R (``^`` inside ``I()`` is ``**``)
``cbind(s, n - s) ~ ...``     binomial successes ``s`` out of ``n`` trials
``cbind(s, f) ~ ...``         binomial successes and failures
``p(s, n) ~ ...``             bambi's binomial notation
``y | se(s) ~ 1 + (1 | g)``   known standard errors ``s`` (brms; meta-analysis)
``... + ar1(t | g)``          AR(1) residuals within ``g`` at integer lags of ``t`` (nlme corAR1)
``... + car1(t | g)``         continuous-time AR(1) residuals (nlme corCAR1)
============================  ===========================================================

The bar terms are split off here; the fixed part and each bar term's left-hand side are parsed
by formulae. Formulas are data, not code: :func:`check_safe` admits only column names,
numbers, the formula operators, a power inside ``I()`` and the transforms ``I``, ``log``,
``log2``, ``log10``, ``exp``, ``sqrt``, ``abs``, ``scale``, ``center`` and ``C`` (one argument
each); attribute access, subscripts, strings, lambdas, keywords and dunder names are rejected
before formulae sees the text, and formulae evaluates calls in :data:`SAFE_NAMESPACE` only.
Choose a factor's reference level with ``levels=`` in the spec, not ``C(x, Treatment('a'))``.

Examples
--------
>>> p = parse_formula("cbind(s, n - s) ~ x + (x || g)")
>>> p.response, p.trials, p.fixed, p.groups[0].correlated
('s', 'n', ('x',), False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from formulae import model_description
from formulae.terms import Intercept

from multilevel.errors import SpecError
from multilevel.spec.safety import NAME_PATTERN as _NAME
from multilevel.spec.safety import check_safe
from multilevel.spec.terms import CORRELATIONS, GroupTerm, ResidualCorrelation

__all__ = [
    "MAX_FORMULA_CHARS", "MAX_NESTING", "MAX_TERMS", "ParsedFormula", "check_size", "parse_formula",
    "parse_terms",
]


@dataclass(frozen=True)
class ParsedFormula:
    """The pieces of a parsed formula, before they become a :class:`ModelSpec`."""

    response: str
    fixed: tuple[str, ...]
    intercept: bool
    groups: tuple[GroupTerm, ...]
    trials: str | None = None
    failures: str | None = None
    se: str | None = None
    correlation: ResidualCorrelation | None = None


_CORRELATION = re.compile(r"^(" + "|".join(CORRELATIONS) + r")\s*\((.*)\)$", re.DOTALL)


def _parse_correlation(kind: str, inner: str, piece: str) -> ResidualCorrelation:
    """``ar1(time | group)`` / ``car1(time | group)``."""
    parts = _split_top(inner, "|")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise SpecError(
            f"{piece!r} must name a time column and a grouping column: write "
            f"{kind}(time | group), as in {kind}(age | subject)."
        )
    time, group = (p.strip() for p in parts)
    if not _NAME.match(time):
        raise SpecError(
            f"The time in {piece!r} must be a column name; compute a transformed time as a "
            "column first."
        )
    if any(not _NAME.match(c.strip()) for c in group.split(":")):
        raise SpecError(f"The grouping factor {group!r} in {piece!r} must be column names.")
    return ResidualCorrelation(kind, time, group)


#: Longest formula accepted, in characters (real models are far shorter).
MAX_FORMULA_CHARS = 10_000
#: Most terms on the right-hand side of a formula.
MAX_TERMS = 500
#: Deepest nesting of parentheses in a formula.
MAX_NESTING = 50


def check_size(formula: str) -> None:
    """Reject a formula longer than :data:`MAX_FORMULA_CHARS` or nested deeper than
    :data:`MAX_NESTING` at once, before any parsing (which would take time and memory).

    Examples
    --------
    >>> check_size("y ~ " + "(" * 60 + "x" + ")" * 60)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    multilevel.errors.SpecError: The formula nests parentheses 60 deep; the limit is 50. ...
    """
    depth = deepest = 0
    for ch in formula:
        depth += (ch == "(") - (ch == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise SpecError(
            f"The formula nests parentheses {deepest} deep; the limit is {MAX_NESTING}. Write the "
            "term without the extra parentheses."
        )
    if len(formula) > MAX_FORMULA_CHARS:
        raise SpecError(
            f"The formula is {len(formula):,} characters long; the limit is {MAX_FORMULA_CHARS:,} "
            f"(it starts {formula[:60]!r}). Check how it was generated."
        )


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` characters outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SpecError(f"Unbalanced parentheses in {text!r}: a ')' has no '('.")
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SpecError(f"Unbalanced parentheses in {text!r}: a '(' is never closed.")
    parts.append("".join(current))
    return parts


def _power_to_python(text: str) -> str:
    """Turn R's ``^`` inside ``I()`` into ``**``; reject it elsewhere."""
    out, depth_i, i = [], [], 0
    depth = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("I(", i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            depth_i.append(depth + 1)
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth_i and depth_i[-1] == depth:
                depth_i.pop()
            depth -= 1
        if ch == "^":
            if not depth_i:
                raise SpecError(
                    f"'^' outside I() in {text!r}: write a power as I(x^2) (interaction powers "
                    "like (a + b)^2 are not supported; write the interactions out)."
                )
            out.append("**")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_terms(text: str, *, where: str) -> tuple[bool, tuple[str, ...]]:
    """Expand a right-hand side with formulae: ``(has_intercept, term names)``.

    Examples
    --------
    >>> parse_terms("x*z", where="fixed part")
    (True, ('x', 'z', 'x:z'))
    >>> parse_terms("0 + I(age^2)", where="fixed part")
    (False, ('I(age ** 2)',))
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"The {where} is empty: write 1 for an intercept only.")
    check_safe(text, where=where)
    text = _power_to_python(text.strip())
    try:
        desc = model_description(text)
    except Exception as err:  # formulae raises several parse error types
        raise SpecError(f"Cannot parse the {where} {text!r}: {err}.") from None
    intercept = any(isinstance(t, Intercept) for t in desc.terms)
    names = tuple(t.name for t in desc.terms if not isinstance(t, Intercept))
    if getattr(desc, "response", None) is not None:
        raise SpecError(f"The {where} {text!r} contains a '~'.")
    for name in names:
        if "|" in name:
            raise SpecError(f"Unexpected '|' in the {where} {text!r}.")
    return intercept, names


def _parse_response(lhs: str) -> tuple[str, str | None, str | None, str | None]:
    lhs = lhs.strip()
    if not lhs:
        raise SpecError("The formula has no response: write 'y ~ x + (1 | g)'.")
    if "|" in lhs:
        known = re.fullmatch(r"([A-Za-z_][\w.]*)\s*\|\s*se\s*\(\s*([A-Za-z_][\w.]*)\s*\)", lhs)
        if known is None:
            raise SpecError(
                f"The response {lhs!r} is not understood: the only addition after '|' is "
                "se(column), as in 'y | se(s) ~ 1 + (1 | study)'."
            )
        return known.group(1), None, None, known.group(2)
    call = re.fullmatch(r"(cbind|p)\s*\((.*)\)", lhs)
    if call is None:
        if not _NAME.match(lhs):
            raise SpecError(
                f"The response {lhs!r} must be a column name, cbind(s, n - s) or p(s, n). "
                "Compute transformed responses as a column first."
            )
        return lhs, None, None, None
    args = [a.strip() for a in _split_top(call.group(2), ",")]
    if len(args) != 2 or not all(args):
        raise SpecError(f"{call.group(1)}() takes two arguments, got {lhs!r}.")
    successes, second = args
    if not _NAME.match(successes):
        raise SpecError(f"The successes in {lhs!r} must be a column name.")
    if call.group(1) == "p":
        if not _NAME.match(second):
            raise SpecError(f"The trials in {lhs!r} must be a column name.")
        return successes, second, None, None
    minus = re.fullmatch(r"([A-Za-z_][\w.]*)\s*-\s*([A-Za-z_][\w.]*)", second)
    if minus is not None:
        if minus.group(2) != successes:
            raise SpecError(
                f"In {lhs!r} the second argument must be 'n - {successes}' or a column of failures."
            )
        return successes, minus.group(1), None, None
    if not _NAME.match(second):
        raise SpecError(
            f"The second argument of {lhs!r} must be 'n - {successes}' or a failures column."
        )
    return successes, None, second, None


def _parse_bar(inner: str) -> list[GroupTerm]:
    double = "||" in inner
    pieces = inner.split("||") if double else _split_top(inner, "|")
    if len(pieces) != 2:
        raise SpecError(f"A group term must look like (terms | group), got '({inner})'.")
    lhs, factor = (p.strip() for p in pieces)
    if not lhs:
        raise SpecError(f"'({inner})' has nothing before the bar: write (1 | {factor or 'g'}).")
    if not factor:
        raise SpecError(f"'({inner})' names no grouping factor after the bar: write ({lhs} | g).")
    intercept, slopes = parse_terms(lhs, where=f"group term '({inner})'")
    nested = [f.strip() for f in factor.split("/")]
    if any(not _NAME.match(p.strip()) for f in nested for p in f.split(":")):
        raise SpecError(f"The grouping factor {factor!r} in '({inner})' must be column names.")
    factors = [":".join(nested[: k + 1]) for k in range(len(nested))]
    return [GroupTerm(f, intercept=intercept, slopes=slopes, correlated=not double) for f in factors]


def _merge_groups(terms: list[GroupTerm]) -> tuple[GroupTerm, ...]:
    """Merge ``(1 | g) + (0 + x | g)`` into the uncorrelated ``(x || g)``."""
    merged: dict[str, GroupTerm] = {}
    for term in terms:
        if term.factor not in merged:
            merged[term.factor] = term
            continue
        old = merged[term.factor]
        overlap = set(old.terms) & set(term.terms)
        diagonal = all(len(t.terms) == 1 or not t.correlated for t in (old, term))
        if overlap or not diagonal:
            raise SpecError(
                f"Two group terms for '{term.factor}' ({old.to_formula()} and "
                f"{term.to_formula()}) can only be combined when they are independent single "
                "terms; write one term such as (1 + x | g) or (1 + x || g)."
            )
        merged[term.factor] = GroupTerm(
            term.factor,
            intercept=old.intercept or term.intercept,
            slopes=old.slopes + term.slopes,
            correlated=False,
        )
    return tuple(merged.values())


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4-style mixed-model formula.

    Examples
    --------
    >>> p = parse_formula("mAch ~ meanses + cses + sector + (1 + cses | school)")
    >>> p.fixed, p.groups[0].terms
    (('meanses', 'cses', 'sector'), ('1', 'cses'))
    """
    if not isinstance(formula, str):
        raise SpecError(f"A formula must be a string, got {type(formula).__name__}.")
    check_size(formula)
    check_safe(formula)
    sides = _split_top(formula, "~")
    if len(sides) != 2:
        raise SpecError(f"A formula needs exactly one '~' (response ~ terms), got {formula!r}.")
    response, trials, failures, se = _parse_response(sides[0])
    fixed_parts, group_terms, correlations = [], [], []
    pieces = _split_top(sides[1], "+")
    if len(pieces) > MAX_TERMS:
        raise SpecError(
            f"The formula has {len(pieces):,} terms on its right-hand side; the limit is "
            f"{MAX_TERMS} (far above real models). Check how the formula was generated."
        )
    for raw in pieces:
        piece = raw.strip()
        if not piece:
            raise SpecError(f"Empty term (a stray '+') in {formula!r}.")
        corr = _CORRELATION.match(piece)
        if corr is not None:
            correlations.append(_parse_correlation(corr.group(1), corr.group(2), piece))
            continue
        if re.search(r"\b(" + "|".join(CORRELATIONS) + r")\s*\(", piece):
            raise SpecError(
                f"{piece!r} in {formula!r}: ar1()/car1() are residual terms of their own, added "
                "at the top level as in 'y ~ x + (1 | g) + ar1(time | g)'."
            )
        if piece.startswith("(") and piece.endswith(")") and "|" in piece:
            inner = piece[1:-1]
            if _split_top(inner, "|") and len(_split_top(inner, "|")) >= 2:
                group_terms.extend(_parse_bar(inner))
                continue
        if "|" in piece:
            raise SpecError(
                f"The term {piece!r} in {formula!r} has a '|' outside a parenthesised group "
                "term: write (1 | g)."
            )
        fixed_parts.append(piece)
    if not group_terms:
        raise SpecError(
            f"The formula {formula!r} has no group term: add one such as (1 | group)."
        )
    if len(correlations) > 1:
        raise SpecError(
            f"{formula!r} has {len(correlations)} residual correlation terms; a model takes one, "
            "such as ar1(time | group)."
        )
    intercept, fixed = parse_terms(" + ".join(fixed_parts) or "1", where="fixed part")
    if fixed_parts and all(p.strip() in {"0", "-1"} for p in fixed_parts):
        intercept = False
    return ParsedFormula(
        response, fixed, intercept, _merge_groups(group_terms), trials, failures, se,
        correlations[0] if correlations else None,
    )
