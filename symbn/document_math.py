r"""Pieces of math for derivation documents: names, graph rows, chain-rule terms.

Everything here returns LaTeX that both the ``.tex`` document and GitHub's Markdown math
accept. Sums over the batch use index ``i`` when nothing else is called ``i`` (scalars such as
∂ℓ/∂σ²_B, as Ioffe & Szegedy write them) and ``j`` otherwise.

>>> from symbn import symbols as S
>>> element_latex("xhat")
'\\hat{x}_{i}'
>>> adjoint_latex("var", elementwise=False)
'\\frac{\\partial \\ell}{\\partial \\sigma_B^{2}}'
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from symbn import symbols as S
from symbn.derive import Contribution
from symbn.graph import Graph, Node
from symbn.latexprint import latex, name_latex

AppliedUndef = sp.core.function.AppliedUndef


def element_latex(name: str, index: sp.Symbol = S.i, names: Mapping[str, str] | None = None
                  ) -> str:
    """LaTeX for element ``index`` of the elementwise quantity ``name`` (``x̂_i``)."""
    return latex(S.element_function(name)(index), names)


def adjoint_latex(name: str, elementwise: bool, names: Mapping[str, str] | None = None) -> str:
    """LaTeX for ∂ℓ/∂``name`` (of element i when ``elementwise``)."""
    if elementwise:
        return latex(S.element_function(S.adjoint_name(name))(S.i), names)
    return name_latex(S.adjoint_name(name), names)


def quantity_latex(graph: Graph, name: str, names: Mapping[str, str] | None = None) -> str:
    """LaTeX for the quantity ``name``: ``x_i`` if elementwise, ``σ²_B`` if scalar."""
    if graph.is_elementwise(name):
        return element_latex(name, names=names)
    return name_latex(name, names)


def sums_over_i(expr: sp.Expr) -> sp.Expr:
    """``expr`` with its sums over ``j`` written over ``i``, when ``i`` is not free in it."""
    if expr.has(S.i):
        return expr
    return expr.xreplace({S.j: S.i})


def at_element(graph: Graph, template: sp.Expr, index: sp.Symbol = S.i) -> sp.Expr:
    """A node's expression in placeholders, with each elementwise input at ``index``."""
    table = {S.placeholder(n): S.element_function(n)(index)
             for n in (*graph.elementwise_inputs, *(x.name for x in graph.nodes))
             if graph.is_elementwise(n)}
    return template.xreplace(table)


def node_value(graph: Graph, node: Node) -> sp.Expr:
    """The value of a forward-graph node, element i (a reduction sums over i)."""
    if node.reduction:
        body = at_element(graph, node.expr)
        return sp.Mul(node.scale, sp.Sum(body, (S.i, 1, S.m)), evaluate=False)
    return at_element(graph, node.expr)


def _adjoint_atom(expr: sp.Expr, source: str) -> sp.Expr | None:
    ref = S.adjoint_name(source)
    for atom in sorted(expr.atoms(AppliedUndef, sp.Symbol), key=sp.default_sort_key):
        name = atom.func.__name__ if isinstance(atom, AppliedUndef) else atom.name
        if name == ref:
            return atom
    return None


def split_contribution(c: Contribution) -> tuple[sp.Expr | None, sp.Expr, bool]:
    """A chain-rule term as (adjoint of the source, local partial, summed over the batch).

    ``Σ_j ∂ℓ/∂x̂_j · P_j`` gives ``(∂ℓ/∂x̂_j, P_j, True)``; ``∂ℓ/∂σ² · Σ_j P_j`` gives
    ``(∂ℓ/∂σ², Σ_j P_j, False)``; the loss's own term ``g_i`` gives ``(None, g_i, False)``.
    """
    expr = c.expr
    assert isinstance(expr, sp.Expr)
    summed = isinstance(expr, sp.Sum)
    body = expr.function if summed else expr
    adjoint = _adjoint_atom(body, c.source)
    if adjoint is None:
        return None, body, summed
    partial = sp.Mul(*(f for f in sp.Mul.make_args(body) if f != adjoint))
    if isinstance(body, sp.Mul) and len(sp.Mul.make_args(body)) == len(sp.Mul.make_args(partial)):
        partial = sp.cancel(body / adjoint)
    return adjoint, partial, summed


def with_named_nodes(graph: Graph, expr: sp.Expr, forward: Mapping[str, sp.Expr]) -> sp.Expr:
    """``expr`` with the forward value of each elementwise node replaced by its name (x̂_j)."""
    out = expr
    for name, value in forward.items():
        for k in (S.i, S.j):
            out = out.subs(value.xreplace({S.i: k}), S.element_function(name)(k))
    return out


def _oriented(factor: sp.Expr) -> tuple[int, sp.Expr]:
    """(sign, factor) with a sum such as ``2μ − 2x_j`` turned to read ``x_j − μ``."""
    if isinstance(factor, sp.Add):
        content, prim = factor.as_content_primitive()
        if content != 1:
            return _oriented_scaled(content, prim)
        elements = [t for t in factor.args if t.atoms(AppliedUndef)]
        if elements and all(t.could_extract_minus_sign() for t in elements):
            return -1, -factor
    return 1, factor


def _oriented_scaled(content: sp.Expr, prim: sp.Expr) -> tuple[int, sp.Expr]:
    sign, inner = _oriented(prim)
    return sign, sp.Mul(content, inner, evaluate=False)


def partial_latex(partial: sp.Expr, names: Mapping[str, str] | None = None) -> str:
    """A local partial derivative as people write it: ``(x_i − μ_B)(−½)(σ²_B + ε)^{−3/2}``.

    Numeric factors lead, a sum in parentheses follows, ``1/√v`` stays a fraction and other
    non-integer negative powers keep their negative exponent.
    """
    partial = sp.factor_terms(partial)
    coeff, rest = partial.as_coeff_Mul()
    numer: list[str] = []
    denom: list[sp.Expr] = []
    powers: list[str] = []
    sign = 1 if coeff >= 0 else -1
    coeff = abs(coeff)
    for f in sp.Mul.make_args(rest):
        if f.is_Pow and f.exp.is_negative:
            if f.exp.is_integer or f.exp == -sp.Rational(1, 2):
                denom.append(1 / f)
            else:
                exp = sp.Rational(f.exp)
                powers.append(r"\left(" + latex(f.base, names) + r"\right)^{"
                              + f"{exp.p}/{exp.q}" + "}")
            continue
        s, g = _oriented(f)
        sign *= s
        if isinstance(g, sp.Mul) and any(isinstance(a, sp.Add) for a in g.args):
            text = " ".join(latex(a, names) if not isinstance(a, sp.Add)
                            else r"\left(" + latex(a, names) + r"\right)" for a in g.args)
        elif isinstance(g, sp.Add):
            text = r"\left(" + latex(g, names) + r"\right)"
        else:
            text = latex(g, names)
        numer.append(text)
    head = ""
    if denom:
        denom.insert(0, sp.Integer(coeff.q))
        coeff = sp.Integer(coeff.p)
    if coeff.q != 1:
        head = latex(coeff, names)
    elif coeff != 1 or not (numer or denom or powers):
        numer.insert(0, latex(coeff, names))
    if denom and len(numer) == 1 and numer[0].startswith(r"\left("):
        numer = [numer[0][len(r"\left("):-len(r"\right)")]]
    top = " ".join(numer) or "1"
    body = (r"\frac{" + top + "}{" + latex(sp.Mul(*denom), names) + "}") if denom else top
    if not numer and not denom:
        body = ""
    parts = [p for p in (head, body, *powers) if p]
    text = " ".join(parts)
    return ("-" if sign < 0 else "") + text


def product_latex(adjoint: sp.Expr | None, partial: sp.Expr,
                  names: Mapping[str, str] | None = None) -> str:
    """``adjoint · partial``, with the partial in parentheses when it is negative."""
    if adjoint is None:
        return latex(partial, names)
    left = latex(adjoint, names)
    if partial == 1:
        return left
    text = partial_latex(partial, names)
    if text.startswith("-"):
        text = r"\left(" + text + r"\right)"
    return left + r" \cdot " + text


def term_latex(c: Contribution, forward: Mapping[str, sp.Expr], graph: Graph,
               index: sp.Symbol, names: Mapping[str, str] | None = None) -> str:
    """One chain-rule term, e.g. ``Σ_{i=1}^m ∂ℓ/∂x̂_i · (−1/√(σ²_B + ε))``."""
    adjoint, partial, summed = split_contribution(c)
    partial = with_named_nodes(graph, partial, forward)
    if summed:
        if adjoint is not None:
            adjoint = adjoint.xreplace({S.j: index})
        partial = partial.xreplace({S.j: index})
        return (r"\sum_{" + latex(index) + "=1}^{m} "
                + product_latex(adjoint, partial, names))
    if isinstance(partial, sp.Sum):
        return _scaled_sum(adjoint, partial.xreplace({S.j: index}), names)
    return product_latex(adjoint, partial, names)


def _scaled_sum(adjoint: sp.Expr | None, total: sp.Sum, names: Mapping[str, str] | None) -> str:
    (k, low, high), = total.limits
    body = partial_latex(total.function, names)
    text = r"\sum_{" + latex(k) + "=" + latex(low) + "}^{" + latex(high, names) + "} " + body
    return text if adjoint is None else latex(adjoint, names) + r" \cdot " + text


def local_partial_latex(c: Contribution, forward: Mapping[str, sp.Expr], graph: Graph,
                        names: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(∂source/∂target, its value) for the justification of a chain-rule term."""
    _adjoint, partial, summed = split_contribution(c)
    index = S.j if summed else S.i
    partial = with_named_nodes(graph, partial, forward)
    source = (element_latex(c.source, index, names) if graph.is_elementwise(c.source)
              else name_latex(c.source, names))
    target = quantity_latex(graph, c.target, names)
    if summed:
        partial = partial.xreplace({S.j: S.i})
        source = source.replace("_{j}", "_{i}")
    if isinstance(partial, sp.Sum):
        value = _scaled_sum(None, partial.xreplace({S.j: S.i}), names)
    else:
        value = partial_latex(partial, names) if partial != 1 else "1"
    return r"\frac{\partial " + source + r"}{\partial " + target + "}", value
