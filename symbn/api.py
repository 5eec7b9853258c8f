"""The pipeline in one place: layer spec → graph → chain rule → closed form → proof.

>>> d = derive(LayerSpec())
>>> d.closed["beta"]
Sum(g(j), (j, 1, m))
>>> prove(d).holds
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from symbn import symbols as S
from symbn.batch import ConcreteBatch, Elem, SymbolicBatch, make_batch
from symbn.closed import (
    Normalized,
    closed_form,
    definitions,
    instantiate,
    limit_at_zero_spread,
    normalized,
    statistics_facts,
)
from symbn.derive import Step, backward
from symbn.errors import OptionError
from symbn.graph import Graph, build_graph
from symbn.proof import Proof, prove_concrete, prove_symbolic
from symbn.reductions import apply_facts
from symbn.spec import LayerSpec, checked_spec


@dataclass(frozen=True)
class Condition:
    """Where a closed form holds, and what the gradient is where it does not.

    ``limit`` is written as :attr:`Derivation.closed` is: with a concrete m, one expression per
    element (in g_0, g_1, …); ``limit_symbolic`` is the symbolic-m form it comes from, the
    same with a symbolic m.
    """

    statement: str
    explanation: str
    limit: dict[str, Elem] = field(default_factory=dict)
    limit_symbolic: dict[str, sp.Expr] = field(default_factory=dict)


@dataclass(frozen=True)
class Derivation:
    """Everything symbn derives for one layer variant and batch size.

    Attributes
    ----------
    spec, m
        The layer variant; ``m`` is ``None`` for a symbolic batch size.
    graph
        The forward graph.
    steps
        The chain-rule steps, in the order they are taken (∂L/∂y first).
    reduced_steps
        Each step after the reduction algebra (symbolic m; e.g. the second term of ∂L/∂μ
        vanishes because Σ(x_j − μ) = 0). Empty for concrete m.
    raw
        The raw gradients: the chain rule's result, nothing simplified.
    closed
        The compact closed forms, written in x̂, r (and σ) of :attr:`definitions`.
        With concrete m, one expression per element (``xhat_k`` stands for x̂ of element k).
    closed_symbolic, raw_symbolic
        The symbolic-m closed forms (the concrete ones are these, instantiated) and the
        symbolic-m raw gradients they were proved against.
    definitions
        What the abbreviations in the closed forms stand for.
    conditions
        Where the closed forms hold.

    """

    spec: LayerSpec
    m: int | None
    graph: Graph
    steps: tuple[Step, ...]
    reduced_steps: dict[str, sp.Expr]
    raw: dict[str, Elem]
    closed: dict[str, Elem]
    closed_symbolic: dict[str, sp.Expr]
    raw_symbolic: dict[str, Elem]
    definitions: dict[str, sp.Expr]
    conditions: tuple[Condition, ...]
    form: Normalized

    @property
    def wrt(self) -> tuple[str, ...]:
        """The names the gradients are taken with respect to."""
        return self.graph.wrt

    @property
    def limits(self) -> dict[str, Elem]:
        """The gradients where a condition fails (σ = 0 in ``std`` placement), by name; {} if none.

        Written as :attr:`closed` is: with a concrete m, one expression per element (at m = 3
        it was the symbolic-m form, in g(i) and a Sum to m, beside closed forms in g_0, g_1, …).

        >>> import symbn
        >>> symbn.derive(symbn.LayerSpec(eps_placement="std"), m=2).limits["x"]
        (gamma*(g_0 - g_1)/(2*eps), gamma*(-g_0 + g_1)/(2*eps))
        >>> symbn.derive(symbn.LayerSpec()).limits
        {}
        """
        return {name: value for c in self.conditions for name, value in c.limit.items()}

    @property
    def limits_symbolic(self) -> dict[str, sp.Expr]:
        """:attr:`limits` in symbolic-m form (the same as it with a symbolic m).

        What generated code and the mpmath reference evaluate, whatever the batch size.
        """
        return {name: value for c in self.conditions for name, value in c.limit_symbolic.items()}

    def _repr_latex_(self) -> str:
        """The derivation as LaTeX, for Jupyter."""
        from symbn.document import repr_latex  # the printers come after the pipeline

        return repr_latex(self)


@dataclass(frozen=True)
class ProofReport:
    """The outcome of :func:`prove`: every claim and whether it holds."""

    proofs: tuple[Proof, ...]

    @property
    def holds(self) -> bool:
        """True when every claim was shown."""
        return all(p.holds for p in self.proofs)


def derive(spec: LayerSpec | None = None, m: int | None = None) -> Derivation:
    """Derive the gradients of a normalization layer.

    Parameters
    ----------
    spec
        The layer and variant (default: batch norm, ε inside the root, biased variance,
        affine, training mode).
    m
        A concrete batch size (explicit elements x_0 … x_{m-1}), or ``None`` for a symbolic m.

    Raises
    ------
    OptionError
        For a spec that is not a :class:`LayerSpec`, an m that is not a whole number ≥ 1
        (NumPy integers are whole numbers, booleans are not), or m = 1 with unbiased variance.

    """
    spec = checked_spec(LayerSpec() if spec is None else spec)
    m = spec.check_batch_size(m)
    graph = build_graph(spec)
    symbolic = backward(graph, SymbolicBatch())
    form = normalized(graph, symbolic.forward)
    facts_xhat = statistics_facts(graph, form)
    facts_x = statistics_facts(graph, None)
    closed_sym = {w: closed_form(symbolic.raw[w], graph, form, facts_xhat) for w in graph.wrt}
    if m is None:
        steps, raw, closed = symbolic.steps, symbolic.raw, dict(closed_sym)
        reduced = {s.name: _reduce_step(s.expr, facts_x) for s in steps}
    else:
        concrete = backward(graph, make_batch(m))
        steps, raw, reduced = concrete.steps, concrete.raw, {}
        closed = {w: _instantiate(closed_sym[w], graph, m, facts_xhat) for w in graph.wrt}
    return Derivation(
        spec=spec, m=m, graph=graph, steps=steps, reduced_steps=reduced, raw=raw,
        closed=closed, closed_symbolic=closed_sym, raw_symbolic=symbolic.raw,
        definitions={str(k): v for k, v in definitions(form).items()},
        conditions=_conditions(spec, graph, closed_sym, m), form=form,
    )


def _reduce_step(expr: Elem, facts: dict[sp.Sum, sp.Expr]) -> sp.Expr:
    assert isinstance(expr, sp.Expr)
    return sp.factor_terms(apply_facts(expr, facts))


def _instantiate(expr: sp.Expr, graph: Graph, m: int, facts: dict[sp.Sum, sp.Expr]) -> Elem:
    """The symbolic closed form at m; with one element, Σ x̂ = 0 means x̂_0 = 0."""
    known: dict[sp.Basic, sp.Expr] = {}
    total = sp.Sum(S.element_function(graph.normalized)(S.j), (S.j, 1, S.m))
    if m == 1 and facts.get(total) == 0:
        known[sp.Symbol(f"{graph.normalized}_0", real=True)] = sp.Integer(0)

    def at(k: int) -> sp.Expr:
        value = instantiate(expr, m, k)
        return sp.factor(value.xreplace(known)) if known else value

    if graph.is_elementwise("x") and expr.has(S.i):
        return tuple(at(k) for k in range(m))
    return at(0)


def _conditions(spec: LayerSpec, graph: Graph, closed: dict[str, sp.Expr], m: int | None
                ) -> tuple[Condition, ...]:
    """Where the closed forms hold: the spread's condition, then the batch size's if any.

    The unbiased variance of a batch divides by m − 1, so in training mode the closed forms
    hold for m ≥ 2 only (derive refuses m = 1 there); a review found every unbiased document
    saying they held for every m, and the ``std`` one's condition naming m = 1.
    """
    batch = (Condition(
        "m >= 2",
        "The unbiased variance divides the sum of squares by one less than the batch size, "
        "so the closed forms hold for batches of at least 2 elements; a batch of 1 is refused.",
    ),) if spec.smallest_batch == 2 else ()
    if spec.eps_placement == "sqrt" and not spec.uses_batch_statistics:
        return (Condition("running_var + eps > 0",
                          "Always true (eps > 0, and a variance is never negative): the closed "
                          "forms hold for every input."),)
    if spec.eps_placement == "sqrt":
        return (Condition(
            "var + eps > 0",
            "Always true (eps > 0): the closed forms hold for every input"
            f"{' of at least 2 elements' if batch else ''}, a constant batch included.",
        ), *batch)
    if not spec.uses_batch_statistics:
        return (Condition("sigma + eps > 0", "Always true (eps > 0, sigma = sqrt(running_var))."),)
    limit = {"x": limit_at_zero_spread(closed["x"], graph)}
    written = limit if m is None else {
        name: tuple(instantiate(v, m, k) for k in range(m)) for name, v in limit.items()}
    one = batch == ()  # a batch of one element is allowed, and constant
    return (Condition(
        "sigma > 0",
        "With eps outside the root, x̂ = (x − μ)/(σ + ε) and σ = √σ²: the chain rule goes "
        "through d√σ²/dσ² = 1/(2σ), so the closed form for dL/dx divides by σ and reads 0/0 at "
        f"a constant batch (σ = 0{', which includes m = 1' if one else ''}). The layer is still "
        "differentiable there — (x − μ)·σ is O(|x − μ|²) — and the gradient is the limit "
        f"σ → 0⁺ given here{' (for m = 1 it is 0, since x̂ ≡ 0)' if one else ''}. Generated "
        "code must use it instead of evaluating the closed form. With eps inside the root (the "
        "standard placement) nothing of this arises: √(σ² + ε) is smooth for ε > 0.",
        written, limit,
    ), *batch)


def checked_derivation(value: object) -> Derivation:
    """``value`` if it is a :class:`Derivation`; otherwise an OptionError saying what to give.

    >>> checked_derivation(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: derivation=None is not allowed; give what symbn.derive returns, ...
    """
    if not isinstance(value, Derivation):
        raise OptionError.bad_value("derivation", value,
                                    "give what symbn.derive returns, such as "
                                    "symbn.prove(symbn.derive(symbn.LayerSpec()))")
    return value


def prove(derivation: Derivation) -> ProofReport:
    """Prove each closed form equal to the raw derivative.

    With symbolic m, the closed form minus the raw chain-rule result reduces to exactly 0 under
    the reduction algebra; with concrete m, additionally the symbolic-m closed form,
    instantiated at m, equals the explicit derivative element by element.
    """
    d = checked_derivation(derivation)
    graph, form = d.graph, d.form
    facts_x = statistics_facts(graph, None)
    proofs = []
    for w in d.wrt:
        raw_w = d.raw_symbolic[w]
        assert isinstance(raw_w, sp.Expr)
        proofs.append(prove_symbolic(w, d.closed_symbolic[w], raw_w, graph, form, facts_x))
        if d.m is not None:
            proofs.append(prove_concrete(w, d.closed_symbolic[w], d.raw[w], graph, form,
                                         ConcreteBatch(d.m)))
    return ProofReport(tuple(proofs))
