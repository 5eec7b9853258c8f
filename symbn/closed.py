"""From the raw gradient to the compact closed form, written in the normalized input x̂.

The raw gradient (a chain-rule sum in x, μ, σ²) is rewritten with x = c + x̂/k (the inverse of
the normalize node x̂ = (x − c)·k), put in the normal form of :mod:`symbn.reductions` (where
``Σ x̂ = 0`` and ``Σ x̂² = m σ²/(σ² + ε)`` hold), and collected per term: each term is a
scalar coefficient times a product of elements and sums (``g(i)``, ``x̂(i)·Σ g x̂``). With
several terms, the coefficient of g(i) divided by m is pulled out front, giving the textbook
shape ``(γ r/m)(m·g − Σg − x̂·Σ(g·x̂))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbn import symbols as S
from symbn.batch import Elem
from symbn.graph import Graph
from symbn.reductions import apply_facts, linear_form, opaque, solve_facts


@dataclass(frozen=True)
class Normalized:
    """How the normalize node x̂ = (x − center)·scale is written and inverted."""

    value: sp.Expr          # x̂(i) in the leaves
    scale: sp.Expr          # k = ∂x̂/∂x, a scalar
    inverse: sp.Lambda      # k ↦ x(k) written in x̂(k)
    abbreviations: dict[sp.Expr, sp.Expr]   # display: expression -> symbol

    def to_normalized(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every input element x(k) written in x̂(k)."""
        return expr.replace(S.element_function("x"), self.inverse)


def normalized(graph: Graph, forward: dict[str, Elem]) -> Normalized:
    """Read the normalize node of ``graph`` off its forward value (symbolic batch)."""
    value = forward[graph.normalized]
    assert isinstance(value, sp.Expr)
    x_i = S.element_function("x")(S.i)
    scale = sp.diff(value, x_i)
    (inverse,) = sp.solve(sp.Eq(S.element_function(graph.normalized)(S.i), value), x_i)
    abbreviations: dict[sp.Expr, sp.Expr] = {}
    for root in sorted(scale.atoms(sp.Pow), key=sp.default_sort_key):
        if root.exp == sp.Rational(1, 2) and root.base.is_Symbol:
            abbreviations[root] = S.sigma
    abbreviations[1 / scale] = 1 / S.r
    return Normalized(value, scale, sp.Lambda(S.i, inverse), abbreviations)


def statistics_facts(graph: Graph, rewrite: Normalized | None) -> dict[sp.Sum, sp.Expr]:
    """The batch statistics' definitions as rewrite rules for sums.

    With ``rewrite`` the facts are about sums of x̂ (``Σ x̂ = 0``), without it about sums of
    x (``Σ x = m μ``).
    """
    equations = []
    for node in graph.statistics:
        body = node.expr.xreplace({S.placeholder("x"): S.element_function("x")(S.j)})
        definition = node.scale * sp.Sum(body, (S.j, 1, S.m))
        if rewrite is not None:
            definition = rewrite.to_normalized(definition)
        equations.append(linear_form(definition) - S.placeholder(node.name))
    return solve_facts(equations)


def _in_presentation(expr: sp.Expr, form: Normalized) -> sp.Expr:
    """Write each root √v as σ (and v as σ²) so coefficients are rational in the scalars."""
    table = {root.base: S.sigma**2 for root, symbol in form.abbreviations.items()
             if symbol == S.sigma}
    return expr.xreplace(table) if table else expr


def collect_terms(expr: sp.Expr) -> dict[sp.Expr, sp.Expr]:
    """Split an expanded expression into {element/sum product: scalar coefficient}."""
    terms: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, product = term.as_independent(S.i, *term.atoms(sp.Sum), as_Add=False)
        terms[product] = terms.get(product, sp.Integer(0)) + coeff
    return {t: c for t, c in terms.items() if c != 0}


def present(expr: sp.Expr, form: Normalized) -> sp.Expr:
    """The compact shape of a gradient already in the x̂ basis and normal form."""
    terms = collect_terms(_in_presentation(expr, form))
    lead = S.element_function("g")(S.i)
    inverse_scale = [k for k, v in form.abbreviations.items() if v == 1 / S.r]

    def tidy(c: sp.Expr) -> sp.Expr:
        c = sp.factor(c)
        return c.subs(_in_presentation(inverse_scale[0], form), 1 / S.r) if inverse_scale else c

    if len(terms) > 1 and lead in terms:
        front = tidy(terms[lead] / S.m)
        inside = sp.Add(*(sp.factor(sp.cancel(c / terms[lead] * S.m)) * t
                          for t, c in terms.items()))
        return sp.Mul(front, inside)
    return sp.Add(*(tidy(c) * t for t, c in terms.items()))


def closed_form(raw: sp.Expr, graph: Graph, form: Normalized,
                facts: dict[sp.Sum, sp.Expr]) -> sp.Expr:
    """The compact closed form of one raw gradient (symbolic batch)."""
    return present(apply_facts(form.to_normalized(raw), facts), form)


def definitions(form: Normalized) -> dict[sp.Expr, sp.Expr]:
    """What the abbreviations in closed forms stand for: {symbol: expression}."""
    out: dict[sp.Expr, sp.Expr] = {}
    for expr, symbol in form.abbreviations.items():
        if symbol == 1 / S.r:
            out[S.r] = (1 / expr).xreplace(
                {k: v for k, v in form.abbreviations.items() if v == S.sigma})
        else:
            out[symbol] = expr
    return out


def expand_abbreviations(expr: sp.Expr, form: Normalized, graph: Graph) -> sp.Expr:
    """A closed form with r, σ and x̂(k) written out again in the leaves."""
    table = definitions(form)
    out = expr.xreplace({S.r: table[S.r]}) if S.r in table else expr
    out = out.xreplace({S.sigma: table[S.sigma]}) if S.sigma in table else out
    return out.replace(S.element_function(graph.normalized), sp.Lambda(S.i, form.value))


def instantiate(expr: sp.Expr, m: int, index: int) -> sp.Expr:
    """The symbolic-m expression for element ``index`` (0-based) of a batch of ``m``.

    Sums become explicit additions and ``f(k)`` becomes the symbol ``f_{k-1}``.

    >>> g = S.element_function("g")
    >>> instantiate(S.m * g(S.i) - sp.Sum(g(S.j), (S.j, 1, S.m)), 3, 1)
    -g_0 + 2*g_1 - g_2
    """
    def explicit(s: sp.Sum) -> sp.Expr:
        (k, _, _), = s.limits
        return sp.Add(*(s.function.xreplace({k: n}) for n in range(1, m + 1)))

    out = expr.xreplace({S.m: sp.Integer(m)}).replace(lambda e: isinstance(e, sp.Sum), explicit)
    out = out.xreplace({S.i: sp.Integer(index + 1)})

    def element(f: sp.Expr) -> sp.Expr:
        (n,) = f.args
        return sp.Symbol(f"{f.func.__name__}_{int(n) - 1}", real=True)

    return out.replace(lambda e: isinstance(e, sp.core.function.AppliedUndef), element)


def limit_at_zero_spread(closed: sp.Expr, graph: Graph) -> sp.Expr:
    """The closed form's limit at a constant batch (σ → 0), where it reads 0/0.

    x̂ is written as σ·u/(σ + ε) with u the standardized input, then σ → 0⁺.
    """
    u = S.element_function("u")
    xhat = S.element_function(graph.normalized)
    expr = closed.xreplace({S.r: 1 / (S.sigma + S.eps)})
    expr = expr.replace(xhat, sp.Lambda(S.i, S.sigma * u(S.i) / (S.sigma + S.eps)))
    plain, back = opaque(linear_form(expr))
    return sp.factor(sp.limit(sp.together(plain), S.sigma, 0, "+")).xreplace(back)
