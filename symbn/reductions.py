"""symbn's small algebra of reductions over the batch, for a symbolic batch size m.

SymPy 1.14 cannot simplify a differentiated ``Sum`` (``simplify`` raises StopIteration and
``doit`` a TypeError in hypersimp), so symbn keeps sums in a normal form of its own:

* linearity: ``Σ_j (a·u_j + b·v_j) = a·Σ_j u_j + b·Σ_j v_j`` for a, b free of j, and
  ``Σ_j c = m·c``;
* the statistics' definitions read backwards as facts: ``μ = (1/m)Σ_j x_j`` gives
  ``Σ_j x_j = m·μ``, hence ``Σ_j (x_j − μ) = 0``; ``σ² = (1/m)Σ_j (x_j − μ)²`` gives
  ``Σ_j x_j² = m(σ² + μ²)``.

After that, each remaining ``Sum`` holds a product of elements only (``Σ_j g_j x_j``) and can be
treated as an opaque symbol: what is left is ordinary algebra SymPy does well.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp


def linear_form(expr: sp.Expr) -> sp.Expr:
    """Pull everything free of the summation index out of every sum.

    >>> from symbn.symbols import element_function, j, m, mu
    >>> x = element_function("x")
    >>> linear_form(sp.Sum(2 * (x(j) - mu), (j, 1, m)))
    -2*m*mu + 2*Sum(x(j), (j, 1, m))
    """
    def split(s: sp.Sum) -> sp.Expr:
        (index, low, high), = s.limits
        body = sp.expand(linear_form(s.function))
        terms = []
        for term in sp.Add.make_args(body):
            coeff, dependent = term.as_independent(index, as_Add=False)
            if dependent == 1:
                terms.append(coeff * (high - low + 1))
            else:
                terms.append(coeff * sp.Sum(dependent, (index, low, high)))
        return sp.Add(*terms)

    return expr.replace(lambda e: isinstance(e, sp.Sum), split)


def sum_atoms(expr: sp.Expr) -> set[sp.Sum]:
    """The sums left in an expression."""
    return set(expr.atoms(sp.Sum))


def _degree(s: sp.Sum) -> int:
    """How many element factors a sum's body multiplies together (Σ x² has degree 2)."""
    dummies = {f: sp.Symbol(f"_e{k}") for k, f in enumerate(s.function.atoms(sp.Function))}
    return int(sp.Poly(s.function.xreplace(dummies), *dummies.values()).total_degree())


def solve_facts(equations: list[sp.Expr]) -> dict[sp.Sum, sp.Expr]:
    """Turn linear equations (``expr = 0``) between sums into rewrite rules.

    Each equation is solved for its sum of highest degree that no earlier equation eliminated;
    an equation with no sum left adds nothing.
    """
    facts: dict[sp.Sum, sp.Expr] = {}
    for eq in equations:
        eq = sp.expand(eq.xreplace(facts))
        atoms = sorted(sum_atoms(eq), key=lambda s: (_degree(s), sp.default_sort_key(s)))
        if not atoms:
            continue
        target = atoms[-1]
        (value,) = sp.solve(eq, target)
        facts = {k: sp.expand(v.xreplace({target: value})) for k, v in facts.items()}
        facts[target] = sp.expand(value)
    return facts


def apply_facts(expr: sp.Expr, facts: Mapping[sp.Sum, sp.Expr]) -> sp.Expr:
    """Linear form of ``expr`` with every known sum replaced by its value."""
    return linear_form(expr).xreplace(dict(facts))


def opaque(expr: sp.Expr) -> tuple[sp.Expr, dict[sp.Symbol, sp.Expr]]:
    """Replace each sum and each element ``f(k)`` by a fresh symbol, for plain algebra.

    Returns the new expression and the map back.
    """
    table: dict[sp.Basic, sp.Symbol] = {}
    for k, s in enumerate(sorted(sum_atoms(expr), key=sp.default_sort_key)):
        table[s] = sp.Symbol(f"_S{k}", real=True)
    replaced = expr.xreplace(table)
    for k, f in enumerate(sorted(replaced.atoms(sp.core.function.AppliedUndef),
                                 key=sp.default_sort_key)):
        table[f] = sp.Symbol(f"_E{k}", real=True)
    back = {v: k for k, v in table.items()}
    return expr.xreplace(table), back


def rationalize(expr: sp.Expr) -> sp.Expr:
    """Replace radicals of scalars by new symbols so that ``expr`` becomes rational.

    Each base b raised to a fraction p/q becomes t**p with t = b**(1/q); where b is linear in
    one of its symbols s (``var + eps`` in ``var``), s is eliminated through b = t**q, so the
    relation between t and s is kept exactly.

    >>> from symbn.symbols import eps, var
    >>> e = rationalize(1 / sp.sqrt(var + eps) ** 3 - (var + eps) / sp.sqrt(var + eps) ** 5)
    >>> sp.cancel(e)
    0
    """
    def radicals(e: sp.Expr) -> list[sp.Pow]:
        return [p for p in e.atoms(sp.Pow) if p.exp.is_Rational and not p.exp.is_Integer]

    while roots := radicals(expr):
        base = min((p.base for p in roots), key=sp.default_sort_key)
        q = sp.ilcm(1, 1, *[p.exp.q for p in roots if p.base == base])
        t = sp.Dummy("t", positive=True)
        expr = expr.replace(
            lambda e, b=base: isinstance(e, sp.Pow) and e.base == b and e.exp.is_Rational,
            lambda e, q=q, t=t: t ** (e.exp * q),
        )
        linear = [s for s in sorted(base.free_symbols, key=sp.default_sort_key)
                  if sp.degree(base, s) == 1]
        if not linear:
            continue
        (solution,) = sp.solve(sp.Eq(base, t**q), linear[0])
        expr = expr.xreplace({linear[0]: solution})
    return expr


def polynomial_is_zero(expr: sp.Expr) -> bool:
    """Fast exact test: ``expr`` is 0 as a polynomial in its symbols and its radicals.

    Every power of a non-numeric base with a fractional or negative exponent, ``b**(p/q)``,
    becomes a power of a new variable (b**(1/q) for p > 0, b**(−1/q) for p < 0), and the result
    is expanded in SymPy's sparse polynomial ring. Treating those variables as independent only
    makes the test stricter: ``True`` proves the identity; ``False`` may mean that it needs a
    relation between them (then use :func:`is_zero`).

    >>> from symbn.symbols import eps, var
    >>> polynomial_is_zero(2 / sp.sqrt(var + eps) ** 3 - 2 * (var + eps) ** sp.Rational(-3, 2))
    True
    """
    table: dict[sp.Basic, sp.Expr] = {}
    for power in expr.atoms(sp.Pow):
        base, exp = power.base, power.exp
        if base.is_number or not exp.is_Rational or (exp.is_Integer and exp > 0):
            continue
        sign = 1 if exp > 0 else -1
        root = sp.Symbol(f"_root{'p' if sign > 0 else 'n'}_{sp.srepr(base)}_{exp.q}")
        table[power] = root ** int(abs(exp) * exp.q)
    plain = expr.xreplace(table)
    gens = sorted(plain.free_symbols, key=sp.default_sort_key)
    if not gens:
        return bool(plain == 0)
    ring, *_ = sp.ring(gens, sp.QQ)
    try:
        return bool(ring.from_expr(plain) == 0)
    except (ValueError, TypeError, sp.polys.polyerrors.CoercionFailed):
        return False


def is_zero(expr: sp.Expr) -> bool:
    """Whether an expression (sums and elements allowed) is identically zero.

    The fast polynomial test first, then the rational function with radicals eliminated
    (:func:`rationalize`) brought to one fraction.
    """
    plain, _ = opaque(expr)
    if polynomial_is_zero(plain):
        return True
    numerator, _ = sp.fraction(sp.cancel(sp.together(rationalize(plain))))
    return bool(sp.expand(numerator) == 0)
