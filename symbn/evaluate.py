"""Evaluate a symbolic-m expression (sums over j, elements ``f(i)``) on concrete data.

The reference evaluator: a plain walk of the expression tree with mpmath numbers, so results
carry the working precision of the caller's ``mp.workdps`` and nothing from float64. Elements
are given as sequences of length m; the expression's element index ``i`` runs over them.

>>> import mpmath
>>> import sympy as sp
>>> from symbn import symbols as S
>>> g = S.element_function("g")
>>> expr = S.m * g(S.i) - sp.Sum(g(S.j), (S.j, 1, S.m))
>>> [float(v) for v in evaluate(expr, {"g": [1, 2, 6]}, {})]
[-6.0, -3.0, 9.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mpmath
import sympy as sp

from symbn import symbols as S
from symbn.errors import OptionError


def evaluate(expr: sp.Expr, elements: Mapping[str, Sequence[Any]],
             scalars: Mapping[str, Any],
             sums: dict[sp.Expr, Any] | None = None) -> list[mpmath.mpf]:
    """Value of ``expr`` for each element i = 1..m, as mpmath numbers.

    A sum over j does not depend on i, so each is computed once (O(m), not O(m) per element).

    Parameters
    ----------
    expr
        An expression in element functions ``name(i)``/``name(j)``, sums over j, and scalars.
    elements
        Per-element data by name (``"x"``, ``"g"``, ``"xhat"``), all of the same length m.
    scalars
        Scalar values by symbol name (``"gamma"``, ``"eps"``, ``"mu"``, …); ``m`` is implied.
    sums
        Optional cache of the sums' values, filled and reused across calls on the *same* data
        (the gradients ∂L/∂x and ∂L/∂γ share Σ g·x̂).

    """
    sizes = {len(v) for v in elements.values()}
    if len(sizes) != 1:
        raise OptionError.bad_value("elements", {k: len(v) for k, v in elements.items()},
                                    "every element sequence must have the same length m")
    (m,) = sizes
    used = {f.func.__name__ for f in expr.atoms(sp.core.function.AppliedUndef)}
    data = {k: [mpmath.mpf(v) for v in vs] for k, vs in elements.items() if k in used}
    env = {k: mpmath.mpf(v) for k, v in scalars.items()}
    env["m"] = mpmath.mpf(m)
    known = {} if sums is None else sums
    table: dict[sp.Basic, sp.Symbol] = {}
    for total in sorted(expr.atoms(sp.Sum), key=sp.default_sort_key):
        if S.i in total.free_symbols:
            continue
        if total not in known:
            known[total] = _eval(total, data, env, {}, m)
        table[total] = sp.Symbol(f"_sum{len(table)}")
        env[table[total].name] = known[total]
    plain = expr.xreplace(table)
    return [_eval(plain, data, env, {S.i: k}, m) for k in range(m)]


def _eval(e: sp.Basic, data: dict[str, list[Any]], env: dict[str, Any],
          index: dict[sp.Symbol, int], m: int) -> Any:
    if e.is_Number:
        return mpmath.mpf(sp.Rational(e).p) / sp.Rational(e).q if e.is_Rational else \
            mpmath.mpf(str(e))
    if isinstance(e, sp.Symbol):
        if e.name not in env:
            raise OptionError.bad_value("scalars", sorted(env),
                                        f"a value for {e.name!r} is missing")
        return env[e.name]
    if isinstance(e, sp.core.function.AppliedUndef):
        (arg,) = e.args
        return data[e.func.__name__][index[arg]]
    if isinstance(e, sp.Add):
        return mpmath.fsum(_eval(a, data, env, index, m) for a in e.args)
    if isinstance(e, sp.Mul):
        out = mpmath.mpf(1)
        for a in e.args:
            out *= _eval(a, data, env, index, m)
        return out
    if isinstance(e, sp.Pow):
        base = _eval(e.base, data, env, index, m)
        if e.exp == sp.Rational(1, 2):
            return mpmath.sqrt(base)
        if e.exp == sp.Rational(-1, 2):
            return 1 / mpmath.sqrt(base)
        return base ** _eval(e.exp, data, env, index, m)
    if isinstance(e, sp.Sum):
        (k, low, high), = e.limits
        if (low, high) != (1, S.m):
            raise ValueError(f"only sums over j = 1..m are supported, not {e.limits}")
        return mpmath.fsum(_eval(e.function, data, env, {**index, k: n}, m)
                           for n in range(m))
    raise TypeError(f"cannot evaluate {type(e).__name__}: {e}")
