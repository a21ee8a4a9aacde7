"""What user text may contain: column names and formula text are data, never code.

:func:`check_safe` admits only column names, numbers, the formula operators, a power inside
``I()`` and the transforms ``I``, ``log``, ``log2``, ``log10``, ``exp``, ``sqrt``, ``abs``,
``scale``, ``center`` and ``C`` (one argument each); attribute access, subscripts, strings,
lambdas, keywords and dunder names are rejected before formulae sees the text, and formulae
evaluates calls in :data:`SAFE_NAMESPACE` only. :func:`check_column_name` admits the names a
formula can refer to.

Examples
--------
>>> check_safe("y ~ log(x) + (1 | g)")
>>> check_column_name("log_radon", "The response")
'log_radon'
"""

from __future__ import annotations

import ast
import keyword
import re
import tokenize
from io import StringIO
from typing import Any

import numpy as np

from multilevel.errors import SpecError

__all__ = [
    "ALLOWED_FUNCTIONS", "LEVELS_HINT", "NAME_PATTERN", "SAFE_NAMESPACE", "check_column_name", "check_safe",
]

ALLOWED_FUNCTIONS = frozenset(
    {"I", "log", "log2", "log10", "exp", "sqrt", "abs", "scale", "center", "C", "cbind", "p", "se",
     "ar1", "car1"}
)
#: The numeric transforms, as formulae evaluates them: formulae's own ``I``, ``C``, ``scale`` and
#: ``center`` come first, then this namespace and nothing else (see :mod:`multilevel.design`).
SAFE_NAMESPACE = {
    "log": np.log, "log2": np.log2, "log10": np.log10, "exp": np.exp, "sqrt": np.sqrt,
    "abs": np.abs,
}
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_OPERATORS = frozenset({"(", ")", "+", "-", "*", "/", "**", "^", ":", "|", "~", ","})
_LAYOUT = frozenset(
    {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
)
_COLUMN_ARGS = frozenset({"cbind", "p", "se", "ar1", "car1"})  # their arguments are column names
_AST_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant, ast.Call,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.UAdd, ast.USub,
)
LEVELS_HINT = (
    "C() takes only the column, as in C(x): choose the reference level with levels= in the "
    "spec instead (ModelSpec(..., levels={'x': ('a', 'b')}) or a builder's levels=, or a "
    "[levels] table in a TOML spec); the first level listed is the reference"
)


def check_column_name(value: Any, what: str) -> str:
    """``value`` if it is a usable column name (a Python identifier, no ``__``), else SpecError.

    Column names end up in formulas, so they follow formula rules: letters, digits and ``_``.

    Examples
    --------
    >>> check_column_name("log_radon", "The response")
    'log_radon'
    >>> check_column_name("log.radon", "The response")
    Traceback (most recent call last):
    ...
    multilevel.errors.SpecError: The response 'log.radon' is not a usable column name...
    """
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{what} must be a column name (a non-empty string), got {value!r}.")
    if not value.isidentifier() or keyword.iskeyword(value) or "__" in value:
        fixed = re.sub(r"\W|__+", "_", value.strip()) or "x"
        fixed = fixed if fixed[0].isalpha() or fixed[0] == "_" else f"x{fixed}"
        raise SpecError(
            f"{what} {value!r} is not a usable column name: names must be letters, digits and "
            f"single underscores, not start with a digit, and not be a Python keyword. Rename the "
            f"column, e.g. df = df.rename(columns={{{value!r}: {fixed!r}}})."
        )
    return value


def _not_allowed(what: str, text: str, where: str) -> SpecError:
    allowed = ", ".join(sorted(ALLOWED_FUNCTIONS - _COLUMN_ARGS))
    return SpecError(
        f"The {where} contains {what}, which is not allowed in {text!r}. Formulas are data, not "
        f"code: use column names, numbers, + - * / : | ( ), a power inside I() such as I(x^2), "
        f"and the functions {allowed}."
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text[-1] not in "jJ"


def _token_problem(tokens: list[tokenize.TokenInfo], i: int, calls: list[str | None]) -> str | None:
    """What is wrong with ``tokens[i]`` (None if nothing); ``calls`` are the open parentheses."""
    tok = tokens[i]
    if tok.type in _LAYOUT:
        return None
    if tok.type == tokenize.NAME:
        if "__" in tok.string or keyword.iskeyword(tok.string):
            return f"'{tok.string}'"
        if tokens[i + 1].string == "(" and tok.string not in ALLOWED_FUNCTIONS:
            return f"the function '{tok.string}'"
        return None
    if tok.type == tokenize.NUMBER:
        return None if _is_number(tok.string) else f"the number '{tok.string}'"
    if tok.type == tokenize.STRING:
        return "a quoted string"
    if tok.type != tokenize.OP or tok.string not in _OPERATORS:
        return "attribute access '.'" if tok.string == "." else f"'{tok.string}'"
    if tok.string == "," and (not calls or calls[-1] not in ("cbind", "p")):
        return f"a second argument to {calls[-1]}()" if calls and calls[-1] else "a stray ','"
    if tok.string in ("**", "^") and "I" not in calls:
        return (
            f"a power '{tok.string}' outside I() (write the square of x as I(x^2); interaction "
            "powers such as (a + b)^2 are not supported, write the interactions out)"
        )
    return None


def _check_arguments(flat: str, tokens: list[tokenize.TokenInfo], text: str, where: str) -> None:
    """Each transform's argument must be arithmetic of columns and numbers, and no power of two
    numbers (``I(9**9**9)`` would make Python compute a huge integer)."""
    for i, tok in enumerate(tokens[:-1]):
        if tok.type != tokenize.NAME or tokens[i + 1].string != "(" or tok.string in _COLUMN_ARGS:
            continue
        depth = 0
        for j in range(i + 1, len(tokens)):
            depth += {"(": 1, ")": -1}.get(tokens[j].string, 0)
            if depth == 0:
                break
        else:
            continue  # unbalanced: reported by the caller
        arg = flat[tokens[i + 1].end[1] : tokens[j].start[1]].replace("^", "**").strip()
        if not arg:
            raise SpecError(f"{tok.string}() in {text!r} needs a column, as in {tok.string}(x).")
        try:
            tree = ast.parse(arg, mode="eval")
        except SyntaxError:
            raise SpecError(
                f"Cannot read the argument {arg!r} of {tok.string}() in the {where} {text!r}: "
                "write arithmetic of columns and numbers, as in I(x^2) or log(x + 1)."
            ) from None
        for node in ast.walk(tree):
            if not isinstance(node, _AST_NODES):
                raise _not_allowed(f"'{ast.unparse(node)}'", text, where)
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Pow)
                and not any(isinstance(n, ast.Name) for n in ast.walk(node))
            ):
                raise SpecError(
                    f"The {where} {text!r} raises a number to a power ({ast.unparse(node)}): "
                    "write the resulting number itself, or raise a column to a power, as in "
                    "I(x^2)."
                )


def check_safe(text: str, *, where: str = "formula") -> None:
    """Reject anything in ``text`` that is not plain formula syntax.

    Only column names, numbers, the operators ``+ - * / : | ~ ( )``, a power inside ``I()`` and
    the functions of :data:`ALLOWED_FUNCTIONS` (each with one argument; ``cbind``/``p`` with
    two) may appear. Every path from user text (formula, builder argument, TOML, a
    :class:`ModelSpec` built by hand) to formulae goes through this check.

    Raises
    ------
    SpecError
        On attribute access, subscripts, strings, lambdas, keywords, dunder names, a second
        argument to a transform (``C(x, Treatment('a'))``: the message points to ``levels=``),
        a function outside :data:`ALLOWED_FUNCTIONS`, or a power of two numbers.

    Examples
    --------
    >>> check_safe("y ~ log(x) + I(x^2) + (1 | g)")
    >>> check_safe("y ~ __import__('os').system('ls')")
    Traceback (most recent call last):
    ...
    multilevel.errors.SpecError: The formula contains '__import__', which is not allowed...
    """
    if not isinstance(text, str):
        raise SpecError(f"The {where} must be a string, got {type(text).__name__}.")
    flat = " ".join(text.split())
    try:
        tokens = list(tokenize.generate_tokens(StringIO(flat).readline))
    except (tokenize.TokenError, SyntaxError) as err:
        depth = flat.count("(") - flat.count(")")
        why = (
            "a '(' is never closed" if depth > 0 else "a ')' has no '('" if depth < 0
            else f"{err.args[0] if err.args else err}"
        )
        raise SpecError(f"Unbalanced parentheses or brackets in the {where} {text!r}: {why}.") from None
    calls: list[str | None] = []
    for i, tok in enumerate(tokens):
        inside_c = "C" in calls
        if inside_c and (tok.type == tokenize.STRING or tok.string in (",", "=")):
            raise SpecError(f"The {where} {text!r} passes more than a column to C(): {LEVELS_HINT}.")
        bad = _token_problem(tokens, i, calls)
        if bad:
            raise _not_allowed(bad, text, where)
        if tok.string == "(":
            before = tokens[i - 1] if i else None
            calls.append(before.string if before is not None and before.type == tokenize.NAME else None)
        elif tok.string == ")" and calls:
            calls.pop()
    _check_arguments(flat, tokens, text, where)

