"""A derivation as text for people, as LaTeX equations, or as JSON for programs.

In JSON every expression is given twice: ``expr``, readable SymPy syntax, and ``srepr``, which
``sympy.sympify`` turns back into exactly the same expression (plain ``sympify`` of ``expr``
would read ``gamma`` and ``beta`` as SymPy's functions of those names).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sympy as sp

from symbn import symbols as S
from symbn.api import Derivation, ProofReport, checked_derivation
from symbn.batch import Elem, as_tuple
from symbn.graph import Node
from symbn.latexprint import definition_latex, latex, name_latex, variant_names


def _elements(d: Derivation, name: str, values: Elem) -> Iterable[tuple[str, sp.Expr]]:
    """(label, expression) for each element of an elementwise quantity, or the scalar."""
    items = as_tuple(values)
    if d.m is not None and d.graph.is_elementwise(name) and len(items) == d.m:
        return [(f"{name}_{k}", e) for k, e in enumerate(items)]
    index = "i" if d.graph.is_elementwise(name) else ""
    return [(name + (f"({index})" if index else ""), items[0])]


def _sum_vanished(d: Derivation, name: str, expr: Elem) -> bool:
    """Whether the reduction algebra removed a sum from a step (e.g. the 2nd term of dL/dmu)."""
    if name not in d.reduced_steps or not isinstance(expr, sp.Expr):
        return False
    return len(d.reduced_steps[name].atoms(sp.Sum)) < len(expr.atoms(sp.Sum))


def _pretty(expr: sp.Expr) -> str:
    return sp.pretty(expr, use_unicode=True, wrap_line=False)


def _header(d: Derivation) -> list[str]:
    every = "every batch size" + (" m >= 2" if d.spec.smallest_batch == 2 else "")
    size = f"symbolic m (valid for {every})" if d.m is None else f"m = {d.m}"
    lines = [f"Layer: {d.spec.describe()}", f"Batch size: {size}", "",
             "Forward graph (sums run over the batch, j = 1..m):"]
    for node in d.graph.nodes:
        lines.append(f"  {node.name:5s} = {node_text(d, node)}    ({node.note})")
    return lines


def node_text(d: Derivation, node: Node) -> str:
    """A node's definition with elements written x(i) and sums Sum(..., (j, 1, m))."""
    names = [n for n in node.inputs if d.graph.is_elementwise(n)]
    index = S.j if node.reduction else S.i
    body = node.expr.xreplace({S.placeholder(n): S.element_function(n)(index) for n in names})
    if node.reduction:
        body = node.scale * sp.Sum(body, (S.j, 1, S.m))
    return str(body) + (f", m = {d.m}" if d.m is not None and node.reduction else "")


def _normalized_definition(d: Derivation) -> str:
    """x̂ written with the abbreviation r: ``xhat(i) = (x(i) - mu)*r``."""
    x_i = S.element_function("x")(S.i)
    center = -d.form.value.xreplace({x_i: 0}) / d.form.scale
    if d.m is None:
        return f"xhat(i) = {(x_i - sp.simplify(center)) * S.r}"
    x_k = sp.Symbol("x_k", real=True)
    return f"xhat_k = {(x_k - sp.simplify(center)) * S.r}, for k = 0..{d.m - 1}"


def to_text(d: Derivation, proof: ProofReport | None = None) -> str:
    """A derivation for people: graph, chain-rule steps, closed forms, conditions, proof."""
    checked_derivation(d)
    lines = _header(d)
    lines += ["", "Chain rule, from the loss L = Sum_j g(j)*y(j) back to the inputs:"]
    for step in d.steps:
        for label, expr in _elements(d, step.name, step.expr):
            lines.append(f"  dL/d{label} =")
            lines += ["    " + row for row in _pretty(expr).splitlines()]
        if _sum_vanished(d, step.name, step.expr):
            lines.append("    where a sum vanishes (Sum_j (x(j) - mu) = 0), leaving")
            lines += ["    " + row for row in _pretty(d.reduced_steps[step.name]).splitlines()]
    lines += ["", "Closed forms:"]
    for name in d.wrt:
        for label, expr in _elements(d, name, d.closed[name]):
            lines.append(f"  dL/d{label} =")
            lines += ["    " + row for row in _pretty(expr).splitlines()]
    lines += ["", "where:"]
    for name, value in d.definitions.items():
        lines.append(f"  {name} = {value}")
    lines.append("  " + _normalized_definition(d))
    lines += ["", "Conditions:"]
    for c in d.conditions:
        lines.append(f"  {c.statement}: {c.explanation}")
        for name, value in c.limit.items():
            lines += [f"    where it fails, dL/d{label} = {expr}"
                      for label, expr in _elements(d, name, value)]
    if proof is not None:
        lines += ["", "Proof:"]
        for p in proof.proofs:
            mark = "proved" if p.holds else "FAILED"
            lines.append(f"  [{mark}] {p.claim}" + ("" if p.holds else f": {p.residual}"))
    return "\n".join(lines) + "\n"


def to_latex(d: Derivation, proof: ProofReport | None = None) -> str:
    """The steps and closed forms as a LaTeX ``align*`` block (no document around it)."""
    checked_derivation(d)
    names = variant_names(d.spec.uses_batch_statistics)
    rows = []
    for step in d.steps:
        for label, expr in _elements(d, step.name, step.expr):
            rows.append(rf"\frac{{\partial \ell}}{{\partial {_latex_label(label)}}} &= "
                        + latex(expr, names))
    lines = [f"% {d.spec.describe()}; "
             + ("symbolic m" if d.m is None else f"m = {d.m}"),
             r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}",
             r"\begin{align*}"]
    closed = []
    for name in d.wrt:
        for label, expr in _elements(d, name, d.closed[name]):
            closed.append(rf"\frac{{\partial \ell}}{{\partial {_latex_label(label)}}} &= "
                          + latex(expr, names))
    for name, value in d.definitions.items():
        closed.append(f"{name_latex(name, names)} &= {definition_latex(value, names)}")
    lines += [" \\\\\n".join(closed), r"\end{align*}"]
    if proof is not None:
        lines += [f"% proof: {'every claim proved' if proof.holds else 'FAILED'}"]
    return "\n".join(lines) + "\n"


def _latex_label(label: str) -> str:
    name, _, rest = label.partition("(")
    if rest:
        return latex(S.element_function(name)(S.i))
    return name_latex(name)


def _expr_json(expr: sp.Expr) -> dict[str, str]:
    return {"expr": str(expr), "srepr": sp.srepr(expr)}


def _elem_json(d: Derivation, name: str, value: Elem) -> Any:
    items = [_expr_json(e) for e in as_tuple(value)]
    if d.m is not None and d.graph.is_elementwise(name) and len(items) == d.m:
        return items
    return items[0]


def to_json(d: Derivation, proof: ProofReport | None = None) -> str:
    """A derivation as JSON: layer, options, symbols, steps, gradients (raw and closed)."""
    checked_derivation(d)
    spec = d.spec
    data: dict[str, Any] = {
        "layer": spec.layer,
        "options": {"eps_placement": spec.eps_placement, "variance": spec.variance,
                    "affine": spec.affine, "mode": spec.mode},
        "m": d.m,
        "symbols": S.MEANINGS,
        "parsing": "sympy.sympify(item['srepr']) rebuilds an expression exactly",
        "graph": [{"name": n.name, "reduction": n.reduction, "scale": str(n.scale),
                   "expr": str(n.expr), "note": n.note} for n in d.graph.nodes],
        "steps": [{"adjoint": f"dL_d{s.name}", "elementwise": s.elementwise,
                   "value": _elem_json(d, s.name, s.expr),
                   **({"reduced": _expr_json(d.reduced_steps[s.name])}
                      if s.name in d.reduced_steps else {})} for s in d.steps],
        "gradients": {w: {"raw": _elem_json(d, w, d.raw[w]),
                          "closed": _elem_json(d, w, d.closed[w])} for w in d.wrt},
        "definitions": {k: _expr_json(v) for k, v in d.definitions.items()},
        "conditions": [{"statement": c.statement, "explanation": c.explanation,
                        "limit": {k: _elem_json(d, k, v) for k, v in c.limit.items()}}
                       for c in d.conditions],
    }
    if proof is not None:
        data["proof"] = {"holds": proof.holds,
                         "claims": [{"claim": p.claim, "holds": p.holds, "residual": p.residual}
                                    for p in proof.proofs]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


FORMATS = {"text": to_text, "latex": to_latex, "json": to_json}
