"""Reverse-mode differentiation through the forward graph, recording every chain-rule step.

Each node's adjoint ∂L/∂node is built from the adjoints of the nodes that read it, exactly as
Ioffe & Szegedy write the backward pass: ∂L/∂x̂, then ∂L/∂σ², then ∂L/∂μ (which refers to
∂L/∂σ²), then ∂L/∂x. A step keeps references to earlier adjoints (``dL_dvar``); the raw
gradient is what is left after substituting them. The derivation never expands μ or σ² into
the elements, so its cost grows like m², not like the naive expansion's m^3.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbn import symbols as S
from symbn.batch import Batch, Elem
from symbn.graph import Graph, Node


@dataclass(frozen=True)
class Contribution:
    """One term of an adjoint: what ``source``'s adjoint sends to ``target`` along one edge."""

    source: str
    target: str
    expr: Elem


@dataclass(frozen=True)
class Step:
    """The adjoint ∂L/∂``name`` as the chain rule gives it, before any simplification.

    ``expr`` refers to earlier adjoints by name (``dL_dxhat(j)``, ``dL_dvar``);
    ``contributions`` are its terms, one per edge of the graph.
    """

    name: str
    elementwise: bool
    contributions: tuple[Contribution, ...]
    expr: Elem


@dataclass(frozen=True)
class Backward:
    """The result of the reverse pass: the steps, in order, and the raw gradients."""

    steps: tuple[Step, ...]
    raw: dict[str, Elem]
    forward: dict[str, Elem]


def forward_values(graph: Graph, batch: Batch) -> dict[str, Elem]:
    """Each elementwise node written in the leaves (scalars stay as symbols)."""
    values: dict[str, Elem] = {name: batch.element(name) for name in graph.elementwise_inputs}
    for node in graph.nodes:
        if not node.reduction:
            values[node.name] = _at_elements(node.expr, node, graph, batch, values)
    return values


def _at_elements(template: sp.Expr, node: Node, graph: Graph, batch: Batch,
                 values: dict[str, Elem]) -> Elem:
    """``template`` (in placeholders) evaluated element by element."""
    template = batch.fix(template)
    names = [n for n in node.inputs if graph.is_elementwise(n)]
    holders = [S.placeholder(n) for n in names]

    def fn(*elems: sp.Expr) -> sp.Expr:
        return template.xreplace(dict(zip(holders, elems, strict=True)))

    return batch.map(fn, *(values[n] for n in names))


def _scaled(batch: Batch, elem: Elem, factor: sp.Expr) -> Elem:
    return batch.map(lambda e, f: e * f, elem, factor)


def _reference(graph: Graph, batch: Batch, name: str) -> Elem:
    """The symbol(s) by which later steps refer to ∂L/∂``name``."""
    ref = S.adjoint_name(name)
    return batch.element(ref) if graph.is_elementwise(name) else sp.Symbol(ref, real=True)


def backward(graph: Graph, batch: Batch) -> Backward:
    """Run the chain rule from the loss back to the leaves in ``graph.wrt``.

    >>> from symbn.batch import ConcreteBatch
    >>> from symbn.graph import build_graph
    >>> from symbn.spec import LayerSpec
    >>> out = backward(build_graph(LayerSpec()), ConcreteBatch(2))
    >>> [s.name for s in out.steps]
    ['y', 'xhat', 'var', 'mu', 'x', 'gamma', 'beta']
    """
    values = forward_values(graph, batch)
    wanted = {n.name for n in graph.nodes[:-1]} | set(graph.wrt)
    pending: dict[str, list[Contribution]] = {}
    steps: list[Step] = []
    for node in reversed(graph.nodes):
        if node is graph.nodes[-1]:
            adjoint: Elem = sp.Integer(1)
        else:
            step = _close(graph, batch, node.name, pending.pop(node.name, []))
            steps.append(step)
            adjoint = _reference(graph, batch, node.name)
        for name in node.inputs:
            if name not in wanted:
                continue
            partial = _at_elements(sp.diff(node.expr, S.placeholder(name)), node, graph, batch,
                                   values)
            if node.reduction:
                # A scalar adjoint stays outside the sum, as Ioffe & Szegedy write
                # ∂L/∂σ² · Σ −2(x_j − μ)/m; an elementwise one goes inside it.
                local = _scaled(batch, partial, batch.fix(node.scale))
                if graph.is_elementwise(name):
                    expr = batch.map(lambda a, p: a * p, adjoint, local)
                else:
                    expr = adjoint * batch.total(local)
            else:
                term = batch.map(lambda a, p: a * p, adjoint, partial)
                expr = term if graph.is_elementwise(name) else batch.total(term)
            pending.setdefault(name, []).append(Contribution(node.name, name, expr))
    for name in graph.wrt:
        steps.append(_close(graph, batch, name, pending.pop(name, [])))
    raw = _resolve(steps, graph, batch)
    return Backward(steps=tuple(steps), raw={n: raw[n] for n in graph.wrt}, forward=values)


def _close(graph: Graph, batch: Batch, name: str, parts: list[Contribution]) -> Step:
    """Add up the contributions to ∂L/∂``name`` (zero if nothing reads it)."""
    elementwise = graph.is_elementwise(name)
    total: Elem = batch.map(lambda: sp.Integer(0)) if elementwise else sp.Integer(0)
    for part in parts:
        total = batch.add(total, part.expr) if elementwise else total + part.expr
    return Step(name, elementwise, tuple(parts), total)


def _resolve(steps: list[Step], graph: Graph, batch: Batch) -> dict[str, Elem]:
    """Substitute earlier adjoints into later ones, giving each adjoint in the leaves."""
    done_elem: dict[str, Elem] = {}
    done_scalar: dict[sp.Symbol, sp.Expr] = {}
    out: dict[str, Elem] = {}
    for step in steps:
        value = batch.substitute(step.expr, done_elem, done_scalar)
        out[step.name] = value
        ref = S.adjoint_name(step.name)
        if step.elementwise:
            done_elem[ref] = value
        else:
            assert isinstance(value, sp.Expr)
            done_scalar[sp.Symbol(ref, real=True)] = value
    return out
