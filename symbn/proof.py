"""Proofs that a closed form equals the raw chain-rule derivative.

* Symbolic m: ``closed − raw`` is written in the leaves, put in the normal form of
  :mod:`symbn.reductions` (linearity, ``Σ x = m μ``, ``Σ x² = m(σ² + μ²)``), every remaining sum
  and element is made an opaque symbol, radicals become symbols, and the rational function
  left must cancel to exactly 0.
* Concrete m: the symbolic closed form, instantiated for each element of a batch of m, minus the
  explicit chain-rule derivative of that element, must cancel to 0 once every statistic that
  occurs polynomially (μ) is replaced by its definition. Statistics under a radical (σ²) stay
  free symbols: the identity then holds for every value of them, in particular the true one.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbn import symbols as S
from symbn.batch import ConcreteBatch, Elem, as_tuple
from symbn.closed import Normalized, expand_abbreviations, instantiate
from symbn.graph import Graph
from symbn.reductions import apply_facts, is_zero


@dataclass(frozen=True)
class Proof:
    """One claim and whether it was shown; ``residual`` is what did not cancel."""

    claim: str
    holds: bool
    residual: str = "0"


def prove_symbolic(wrt: str, closed: sp.Expr, raw: sp.Expr, graph: Graph, form: Normalized,
                   facts_x: dict[sp.Sum, sp.Expr]) -> Proof:
    """Closed − raw == 0 for every m, under the reduction algebra."""
    difference = apply_facts(expand_abbreviations(closed, form, graph) - raw, facts_x)
    ok = is_zero(difference)
    residual = "0" if ok else str(sp.simplify(difference))
    return Proof(f"dL/d{wrt}: closed form == raw derivative, symbolic m", ok, residual)


def eliminate_by_statistics(graph: Graph, batch: ConcreteBatch) -> dict[sp.Symbol, sp.Expr]:
    """Use each statistic that is linear in the elements to eliminate the last element.

    ``μ = (1/m) Σ x_k`` gives ``x_{m-1} = m·μ − Σ_{k<m-1} x_k``: afterwards ``Σ (x_k − μ)``
    is identically 0 and every ``x_k − μ`` stays short, so the check costs O(m) per element.
    """
    xs = batch.element("x")
    out: dict[sp.Symbol, sp.Expr] = {}
    holder = S.placeholder("x")
    for node in graph.statistics:
        body = node.expr
        if sp.Poly(body, holder).degree() != 1 or node.expr.free_symbols - {holder}:
            continue
        total = batch.fix(node.scale) * sp.Add(*(body.xreplace({holder: x}) for x in xs))
        last = xs[-1]
        (value,) = sp.solve(sp.Eq(total.xreplace(out), S.placeholder(node.name)), last)
        out[last] = value
    return out


def prove_concrete(wrt: str, closed: sp.Expr, raw: Elem, graph: Graph, form: Normalized,
                   batch: ConcreteBatch) -> Proof:
    """The symbolic closed form, instantiated at m, equals the explicit derivative."""
    stats = eliminate_by_statistics(graph, batch)
    leaves = expand_abbreviations(closed, form, graph)
    bad = []
    for k, raw_k in enumerate(as_tuple(raw)):
        difference = (instantiate(leaves, batch.m, k) - raw_k).xreplace(stats)
        if not is_zero(difference):
            bad.append(k)
    claim = (f"dL/d{wrt}: symbolic-m closed form at m={batch.m} == explicit derivative"
             + (" (every element)" if graph.is_elementwise(wrt) else ""))
    return Proof(claim, not bad, "0" if not bad else f"nonzero for elements {bad}")

