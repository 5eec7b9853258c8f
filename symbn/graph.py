"""The forward graph of a normalization layer: elementwise nodes and reductions over the batch.

A node's expression is written in *placeholders*: one symbol per input, standing for one
element of an elementwise quantity or for a scalar. A reduction node's value is
``scale * Σ_j expr``. The graph is data; the same reverse-mode pass (:mod:`symbn.derive`)
runs on every layer and both batch representations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from symbn import symbols as S
from symbn.spec import LayerSpec


@dataclass(frozen=True)
class Node:
    """One node of the forward graph.

    ``expr`` is in placeholders (:func:`symbn.symbols.placeholder`); for a reduction the
    node's value is ``scale * Σ_j expr``, a scalar.
    """

    name: str
    expr: sp.Expr
    reduction: bool = False
    scale: sp.Expr = field(default_factory=lambda: sp.Integer(1))
    note: str = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names this node reads, sorted."""
        return tuple(sorted(s.name for s in self.expr.free_symbols if isinstance(s, sp.Symbol)))


@dataclass(frozen=True)
class Graph:
    """A layer's forward graph, from inputs to the loss ``L = Σ_j g_j y_j``.

    Attributes
    ----------
    nodes
        In topological order; the last is the loss.
    elementwise_inputs
        Leaves with one value per element (``x`` and the upstream gradient ``g``).
    wrt
        Leaves the gradient is taken with respect to (``x`` and the learned parameters).
    normalized
        The node holding the normalized input; closed forms are written in it.

    """

    spec: LayerSpec
    nodes: tuple[Node, ...]
    elementwise_inputs: tuple[str, ...]
    wrt: tuple[str, ...]
    normalized: str = "xhat"

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def is_elementwise(self, name: str) -> bool:
        """Whether ``name`` has one value per element (else it is a scalar)."""
        if name in self.elementwise_inputs:
            return True
        return any(n.name == name and not n.reduction for n in self.nodes)

    @property
    def statistics(self) -> tuple[Node, ...]:
        """The reduction nodes that define batch statistics (every reduction but the loss)."""
        return tuple(n for n in self.nodes[:-1] if n.reduction)


def _normalize(centered: sp.Expr, variance: sp.Expr, placement: str) -> sp.Expr:
    if placement == "sqrt":
        return centered / sp.sqrt(variance + S.eps)
    return centered / (sp.sqrt(variance) + S.eps)


def batchnorm_graph(spec: LayerSpec) -> Graph:
    """The batch-normalization graph for ``spec``.

    >>> [n.name for n in batchnorm_graph(LayerSpec()).nodes]
    ['mu', 'var', 'xhat', 'y', 'L']
    >>> [n.name for n in batchnorm_graph(LayerSpec(mode="eval", affine=False)).nodes]
    ['xhat', 'y', 'L']
    """
    x, g = S.placeholder("x"), S.placeholder("g")
    xhat, y = S.placeholder("xhat"), S.placeholder("y")
    nodes: list[Node] = []
    if spec.uses_batch_statistics:
        divisor = S.m if spec.variance == "biased" else S.m - 1
        nodes.append(Node("mu", x, reduction=True, scale=1 / S.m, note="batch mean"))
        nodes.append(
            Node("var", (x - S.mu) ** 2, reduction=True, scale=1 / divisor,
                 note=f"batch variance ({spec.variance})")
        )
        center, variance = S.mu, S.var
    else:
        center, variance = S.running_mean, S.running_var
    nodes.append(Node("xhat", _normalize(x - center, variance, spec.eps_placement),
                      note="normalize"))
    output = S.gamma * xhat + S.beta if spec.affine else xhat
    nodes.append(Node("y", output, note="scale and shift" if spec.affine else "identity"))
    nodes.append(Node("L", g * y, reduction=True, note="loss with upstream gradient g"))
    wrt = ("x", "gamma", "beta") if spec.affine else ("x",)
    return Graph(spec=spec, nodes=tuple(nodes), elementwise_inputs=("x", "g"), wrt=wrt)


def build_graph(spec: LayerSpec) -> Graph:
    """The forward graph of the layer ``spec`` names."""
    builders = {"batchnorm": batchnorm_graph}
    return builders[spec.layer](spec)
