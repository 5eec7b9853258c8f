"""The content of a derivation document, as blocks both LaTeX and Markdown can print.

Prose is ASCII with inline math between ``$…$``; equations are (left, right, note) rows of
LaTeX math. :mod:`symbn.document` prints the blocks as a ``.tex`` document or as Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from symbn import symbols as S
from symbn.api import Condition, Derivation, ProofReport
from symbn.batch import SymbolicBatch
from symbn.closed import statistics_facts
from symbn.derive import Step, forward_values
from symbn.document_math import (
    adjoint_latex,
    element_latex,
    local_partial_latex,
    node_value,
    quantity_latex,
    sums_over_i,
    term_latex,
)
from symbn.latexprint import definition_latex, latex, name_latex, variant_names
from symbn.reductions import apply_facts, is_zero


@dataclass(frozen=True)
class Equation:
    """One displayed equation ``lhs = rhs``, with an optional note in words."""

    lhs: str
    rhs: str
    note: str = ""
    relation: str = "="


@dataclass(frozen=True)
class Block:
    """A heading, a paragraph or a list (``text``; ``markdown`` if it must differ), or equations."""

    kind: Literal["heading", "text", "items", "equations"]
    text: str = ""
    markdown: str | None = None
    equations: tuple[Equation, ...] = ()


def heading(text: str) -> Block:
    """A section heading."""
    return Block("heading", text)


def para(text: str, markdown: str | None = None) -> Block:
    """A paragraph of ASCII prose with ``$…$`` math."""
    return Block("text", text, markdown)


def display(*rows: Equation) -> Block:
    """Displayed equations, aligned at their relation signs."""
    return Block("equations", equations=tuple(rows))


def names_for(d: Derivation) -> dict[str, str]:
    """The names a variant's documents print (:func:`symbn.latexprint.variant_names`)."""
    return variant_names(d.spec.uses_batch_statistics)


_ORDINALS = ("first", "second", "third", "fourth", "fifth")


def title(d: Derivation) -> str:
    """The document's title."""
    return "Batch normalization: the backward pass, derived by symbn"


def options_section(d: Derivation) -> list[Block]:
    """The variant's options, each with what it means."""
    spec = d.spec
    eps = {"sqrt": r"$\epsilon$ inside the root, $\hat{x}_i = (x_i - \mu)/\sqrt{\sigma^2"
                   r" + \epsilon}$, as in Ioffe and Szegedy (2015) and every major framework",
           "std": r"$\epsilon$ outside the root, $\hat{x}_i = (x_i - \mu)/(\sigma + \epsilon)$"
                  r" with $\sigma = \sqrt{\sigma^2}$, as some lecture notes write it"}
    var = {"biased": r"the batch variance divides the sum of squares by $m$",
           "unbiased": r"the batch variance divides the sum of squares by $m - 1$"}
    if not spec.uses_batch_statistics:
        var = {k: v + " (in evaluation mode this only concerns how the running variance was "
                      "estimated: it is an input here)" for k, v in var.items()}
    affine = (r"$y_i = \gamma \hat{x}_i + \beta$ with learned scale $\gamma$ and shift $\beta$"
              if spec.affine else r"no learned parameters: $y_i = \hat{x}_i$")
    mode = (r"training: $\mu_B$ and $\sigma_B^2$ are computed from the batch and depend on "
            r"every $x_i$" if spec.uses_batch_statistics else
            r"evaluation: the population statistics $\mathrm{E}[x]$ and $\mathrm{Var}[x]$ "
            r"(running averages) are fixed inputs")
    rows = [("eps_placement", spec.eps_placement, eps[spec.eps_placement]),
            ("variance", spec.variance, var[spec.variance]),
            ("affine", "yes" if spec.affine else "no", affine),
            ("mode", spec.mode, mode)]
    blocks = [heading("Variant")]
    blocks.append(Block(
        "items",
        text="\n".join(r"\texttt{" + name.replace("_", r"\_") + f"={value}}}: {meaning}."
                       for name, value, meaning in rows),
        markdown="\n".join(f"`{name}={value}`: {meaning}." for name, value, meaning in rows)))
    why = " (the variance divides by $m - 1$)" if d.spec.smallest_batch == 2 else ""
    blocks.append(para(rf"The batch size $m$ stays a symbol: every result holds for every "
                       rf"{_every_m(d)}{why}."))
    return blocks


def _every_m(d: Derivation) -> str:
    """The batch sizes the results hold for: every m, or m ≥ 2 with unbiased batch variance."""
    return r"$m \geq 2$" if d.spec.smallest_batch == 2 else "$m$"


def forward_section(d: Derivation, names: Mapping[str, str]) -> list[Block]:
    """The forward graph: the statistics, the normalized input and the output."""
    graph = d.graph
    rows = [Equation(quantity_latex(graph, n.name, names), latex(node_value(graph, n), names),
                     n.note) for n in graph.nodes[:-1]]
    text = (r"For one channel and a mini-batch $x_1, \dots, x_m$ the layer computes, step by "
            r"step:")
    after = (r"The loss $\ell$ depends on the outputs $y_i$; all the rest of the network "
             r"enters the backward pass only through the upstream gradient "
             r"$g_i = \frac{\partial \ell}{\partial y_i}$.")
    blocks = [heading("Forward pass"), para(text), display(*rows)]
    if d.spec.eps_placement == "std" and d.spec.uses_batch_statistics:
        blocks.append(para(r"where $\sigma_B = \sqrt{\sigma_B^2}$ is the batch standard "
                           r"deviation."))
    blocks.append(para(after))
    if not d.spec.uses_batch_statistics:
        blocks.append(para(r"In evaluation mode $\mathrm{E}[x]$ and $\mathrm{Var}[x]$ are "
                           r"constants: the gradient does not flow through any statistic."))
    return blocks


def _reads(d: Derivation, step: Step, forward: Mapping[str, sp.Expr],
           names: Mapping[str, str]) -> str:
    """Why a step has the terms it has: which nodes read the quantity, and their partials."""
    graph = d.graph
    parts = []
    for c in step.contributions:
        partial, value = local_partial_latex(c, forward, graph, names)
        if graph.is_elementwise(c.source) and not step.elementwise:
            who = (f"every ${element_latex(c.source, names=names)}$ "
                   r"($i = 1, \dots, m$)")
        elif graph.is_elementwise(c.source):
            who = f"${element_latex(c.source, names=names)}$"
        else:
            who = f"${name_latex(c.source, names)}$"
        parts.append(f"{who}, with ${partial} = {value}$")
    target = quantity_latex(graph, step.name, names)
    joined = "; and ".join(parts)
    summed = any(graph.is_elementwise(c.source) and not step.elementwise
                 for c in step.contributions)
    tail = ", so the chain rule sums over the batch:" if summed else ", so by the chain rule:"
    return f"${target}$ is read by {joined}{tail}"


def _vanishing(step: Step, facts: Mapping[sp.Sum, sp.Expr]) -> list[int]:
    """Which terms of a step the reduction algebra turns into 0."""
    return [k for k, c in enumerate(step.contributions)
            if isinstance(c.expr, sp.Expr) and c.expr.has(sp.Sum)
            and is_zero(apply_facts(c.expr, dict(facts)))]


def steps_section(d: Derivation, names: Mapping[str, str]) -> list[Block]:
    """Every chain-rule step with its justification, from ∂ℓ/∂y back to the inputs."""
    graph = d.graph
    forward = {k: v for k, v in forward_values(graph, SymbolicBatch()).items()
               if k not in graph.elementwise_inputs and isinstance(v, sp.Expr)}
    facts = statistics_facts(graph, None)
    blocks = [heading("Chain rule"),
              para(r"The adjoints are taken from the loss back to the inputs, each in terms of "
                   r"the ones before it, in the order of Ioffe and Szegedy (2015), Section 3.")]
    for step in d.steps:
        lhs = adjoint_latex(step.name, step.elementwise, names)
        index = S.j if step.elementwise else S.i
        if step.name == "y":
            blocks.append(para(r"The upstream gradient is given:"))
            blocks.append(display(Equation(lhs, latex(step.expr, names))))
            continue
        terms = [term_latex(c, forward, graph, index, names) for c in step.contributions]
        blocks.append(para(_reads(d, step, forward, names)))
        blocks.append(display(Equation(lhs, " + ".join(terms) or "0")))
        gone = _vanishing(step, facts)
        if gone:
            which = " and ".join(_ORDINALS[k] for k in gone)
            keep = [t for k, t in enumerate(terms) if k not in gone]
            blocks.append(para(
                f"The {which} term vanishes because "
                r"$\sum_{i=1}^{m} (x_i - \mu_B) = \sum_{i=1}^{m} x_i - m \mu_B = 0$ "
                r"by the definition of $\mu_B$, leaving"))
            blocks.append(display(Equation(lhs, " + ".join(keep) or "0")))
    return blocks


def closed_section(d: Derivation, names: Mapping[str, str]) -> list[Block]:
    """The simplified closed forms and what their abbreviations stand for."""
    graph = d.graph
    xhat = element_latex(graph.normalized, names=names)
    facts = statistics_facts(graph, d.form)
    intro = (r"Substituting each step into the next, writing every $x_i$ through "
             f"${xhat}$ and collecting terms gives the closed forms")
    blocks = [heading("Closed forms")]
    if facts:
        rows = [Equation(latex(sums_over_i(k), names),
                         latex(sp.factor(v.xreplace(_presentation(d))), names))
                for k, v in facts.items()]
        blocks.append(para(intro + r", using the facts about the normalized batch"))
        blocks.append(display(*rows))
        blocks.append(para(r"which follow from the definitions of $\mu_B$ and $\sigma_B^2$:"))
    else:
        blocks.append(para(intro + ":"))
    rows = [Equation(adjoint_latex(w, graph.is_elementwise(w), names),
                     latex(sums_over_i(d.closed_symbolic[w]), names)) for w in d.wrt]
    blocks.append(display(*rows))
    where = [Equation(name_latex(k, names), definition_latex(v, names))
             for k, v in d.definitions.items()]
    where.append(Equation(xhat, latex(d.form.value, names)))
    blocks.append(para(r"where $g_i = \frac{\partial \ell}{\partial y_i}$ and"))
    blocks.append(display(*where))
    if _is_reference_variant(d):
        blocks.append(para(
            r"This is the compact form $dx = \frac{\gamma r}{m}\left(m \cdot dy - \sum dy - "
            r"\hat{x} \sum dy \cdot \hat{x}\right)$ that frameworks implement; the steps above are "
            r"the equations of Ioffe and Szegedy (2015), Section 3."))
    return blocks


def _presentation(d: Derivation) -> dict[sp.Expr, sp.Expr]:
    """σ² written as the square of σ where the closed forms use σ = √σ²."""
    sigma = d.definitions.get("sigma")
    return {sigma.base: S.sigma**2} if isinstance(sigma, sp.Pow) else {}


def _is_reference_variant(d: Derivation) -> bool:
    spec = d.spec
    return (spec.eps_placement == "sqrt" and spec.variance == "biased" and spec.affine
            and spec.uses_batch_statistics)


_UNICODE_MATH = (
    ("∂ℓ/∂xᵢ", r"$\partial\ell/\partial x_i$"), ("d√σ²/dσ²", r"$d\sqrt{\sigma^2}/d\sigma^2$"),
    ("(x − μ)", r"$(x - \mu)$"), ("m = 1", "$m = 1$"),
    ("σ = √Var[x]", r"$\sigma = \sqrt{\mathrm{Var}[x]}$"), ("x̂", r"$\hat{x}$"),
    ("√(σ² + ε)", r"$\sqrt{\sigma^2 + \epsilon}$"),
    ("√σ²", r"$\sqrt{\sigma^2}$"), ("|x − μ|²", r"$|x - \mu|^2$"), ("σ²", r"$\sigma^2$"),
    ("0⁺", r"$0^+$"), ("μ", r"$\mu$"), ("σ", r"$\sigma$"), ("ε", r"$\epsilon$"),
    ("−", "$-$"), ("·", r"$\cdot$"), ("≡", r"$\equiv$"), ("→", r"$\to$"), ("—", "---"),
    ("√", r"$\surd$"), ("²", "$^2$"),
)


def prose_latex(text: str) -> str:
    r"""Unicode prose from the core (condition explanations) as ASCII LaTeX with ``$…$``.

    >>> prose_latex("σ = √σ² when eps > 0")
    '$\\sigma = \\sqrt{\\sigma^2}$ when $\\epsilon > 0$'
    >>> prose_latex("x̂ ≡ 0.5 or x̂ ≡ −1 when eps > 0.25.")
    '$\\hat{x} \\equiv 0.5$ or $\\hat{x} \\equiv - 1$ when $\\epsilon > 0.25$.'
    >>> prose_latex("x̂ = (x − μ)/(σ + ε), x̂ ≡ 0 and O(|x − μ|²)")
    '$\\hat{x} = (x - \\mu)/(\\sigma + \\epsilon)$, $\\hat{x} \\equiv 0$ and $O(|x - \\mu|^2)$'
    """
    out = re.sub(r"([&%#_])", r"\\\1", prose_markdown(text))
    for plain, tex in _UNICODE_MATH:
        out = out.replace(plain, tex)
    merge = re.compile(r"\$([^$]*)\$([ ()+=/0-9<>.]*?)\$([^$]*)\$")
    while True:
        merged = merge.sub(r"$\1\2\3$", out, count=1)
        if merged == out:
            break
        out = merged
    number = r"([0-9]+(?:\.[0-9]+)?)"  # 0, 0.5: not a sentence's full stop
    out = re.sub(r"\$([^$]*)\$ ([<>=]) " + number, r"$\1 \2 \3$", out)
    out = re.sub(r"\$([^$]*(?:\\equiv|[<>=])(?: -)?)\$ ?" + number, r"$\1 \2$", out)  # ≡ −1
    out = re.sub(r"\bO\(\$([^$]*)\$\)", r"$O(\1)$", out)  # O(|x − μ|²)
    out = re.sub(r"\$([^$]*)\$(\)*)", _closing, out)  # (σ + ε) ends in math, not after it
    return out.encode("ascii", "replace").decode("ascii")


def _closing(span: re.Match[str]) -> str:
    """A ``$…$`` span with more ( than ) takes in the ) that follow it."""
    body, after = span.group(1), span.group(2)
    take = max(0, min(body.count("(") - body.count(")"), len(after)))
    return f"${body}{after[:take]}${after[take:]}"


def prose_markdown(text: str) -> str:
    """Unicode prose from the core for Markdown: only program names are made readable."""
    out = re.sub(r"\beps\b", "ε", text).replace("dL/dx", "∂ℓ/∂xᵢ")
    return out.replace("sigma = sqrt(running_var)", "σ = √Var[x]")


def _statement(d: Derivation, c: Condition, names: Mapping[str, str]) -> str:
    table = dict(S.SCALARS)
    if not d.spec.uses_batch_statistics:
        table["var"] = S.running_var
        table["sigma"] = sp.sqrt(S.running_var)
    return latex(sp.parse_expr(c.statement, local_dict=table, evaluate=False), names)


def conditions_section(d: Derivation, names: Mapping[str, str]) -> list[Block]:
    """Where the closed forms hold and, where they do not, the gradient's limit."""
    blocks = [heading("Conditions")]
    for c in d.conditions:
        statement = _statement(d, c, names)
        blocks.append(para(f"The closed forms hold where ${statement}$. "
                           + prose_latex(c.explanation),
                           f"The closed forms hold where ${statement}$. "
                           + prose_markdown(c.explanation)))
        rows = [Equation(adjoint_latex(w, d.graph.is_elementwise(w), names),
                         latex(sums_over_i(v), names), r"at $\sigma_B = 0$")
                for w, v in c.limit_symbolic.items()]
        if rows:
            blocks.append(para(r"At a constant batch ($\sigma_B = 0$) the gradient is the "
                               r"limit $\sigma_B \to 0^+$ of the closed form:"))
            blocks.append(display(*rows))
    return blocks


def proof_section(d: Derivation, report: ProofReport) -> list[Block]:
    """What symbn proved about the closed forms, claim by claim."""
    names = names_for(d)
    lines = []
    for p in report.proofs:
        wrt = p.claim.split(":", 1)[0].removeprefix("dL/d")
        lhs = adjoint_latex(wrt, d.graph.is_elementwise(wrt), names) if wrt in d.wrt else wrt
        concrete = re.search(r"at m=(\d+)", p.claim)
        scope = (f"for a batch of $m = {concrete.group(1)}$, element by element"
                 if concrete else f"for every batch size {_every_m(d)}")
        verdict = "proved" if p.holds else f"NOT proved (residual: {prose_latex(p.residual)})"
        lines.append(f"${lhs}$: closed form = raw chain-rule derivative {scope}: {verdict}.")
    summary = ("Every claim was proved." if report.holds else
               "Some claim was NOT proved: the closed forms above are not trustworthy.")
    text = (r"symbn substituted every step into the next to get the raw derivative, written in "
            r"the inputs, and showed that the closed form minus the raw derivative is exactly "
            r"0, using only linearity of sums and the definitions of the statistics "
            r"($\sum_{i=1}^{m} x_i = m \mu_B$ and the sum of squares that defines "
            r"$\sigma_B^2$); radicals stay symbols, so nothing is evaluated numerically."
            if d.spec.uses_batch_statistics else
            r"symbn substituted every step into the next to get the raw derivative, written in "
            r"the inputs, and showed that the closed form minus the raw derivative is exactly 0.")
    return [heading("Proof"), para(text), Block("items", text="\n".join(lines)), para(summary)]


def updates_section(d: Derivation, names: Mapping[str, str]) -> list[Block]:
    """The gradient-descent updates of the learned parameters (affine variants only)."""
    if not d.spec.affine:
        return []
    rows = [Equation(name_latex(w, names),
                     name_latex(w, names) + r" - \alpha \frac{\partial \ell}{\partial "
                     + name_latex(w, names) + "} = " + name_latex(w, names) + r" - \alpha "
                     + latex(sums_over_i(d.closed_symbolic[w]), names), relation=r"\leftarrow")
            for w in d.wrt if w != "x"]
    return [heading("Gradient descent"),
            para(r"With learning rate $\alpha > 0$, one step of gradient descent updates the "
                 r"learned parameters as"), display(*rows),
            para(r"and passes $\frac{\partial \ell}{\partial x_i}$ on to the layer below.")]


def blocks(d: Derivation, report: ProofReport) -> list[Block]:
    """Every block of the document, in reading order."""
    names = names_for(d)
    return [*options_section(d), *forward_section(d, names), *steps_section(d, names),
            *closed_section(d, names), *conditions_section(d, names), *proof_section(d, report),
            *updates_section(d, names)]
