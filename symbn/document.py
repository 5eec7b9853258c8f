r"""A derivation as a complete LaTeX document, as Markdown for GitHub, and for Jupyter.

>>> import symbn
>>> d = symbn.derive(symbn.LayerSpec())
>>> tex = to_tex(d)
>>> tex.startswith("\\documentclass") and "\\end{document}" in tex
True
>>> "Sum(" in tex or "KroneckerDelta" in tex or "dL_d" in tex
False
"""

from __future__ import annotations

import sympy as sp

from symbn.api import Derivation, ProofReport, checked_derivation, prove
from symbn.document_math import adjoint_latex, node_value, quantity_latex
from symbn.document_sections import Block, Equation, blocks, names_for, title
from symbn.errors import OptionError
from symbn.latexprint import definition_latex, latex

PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[a4paper,margin=2.2cm]{geometry}
\usepackage{amsmath}
\usepackage{amssymb}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.6em}
\allowdisplaybreaks
"""


def _check(d: Derivation) -> None:
    checked_derivation(d)
    if d.m is not None:
        raise OptionError.bad_value(
            "m", d.m, "documents are written for a symbolic batch size: derive with m=None")


def command_line(d: Derivation) -> str:
    """The ``symbn latex`` command that writes this derivation's document."""
    spec = d.spec
    flags = [f"--eps-placement {spec.eps_placement}", f"--variance {spec.variance}"]
    if not spec.affine:
        flags.append("--no-affine")
    flags.append(f"--mode {spec.mode}")
    return f"symbn latex {spec.layer} " + " ".join(flags)


def _escape(text: str) -> str:
    return text.replace("_", r"\_")


def _tex_rows(rows: tuple[Equation, ...]) -> str:
    lines = []
    for eq in rows:
        note = r" && \text{" + eq.note + "}" if eq.note else ""
        lines.append(f"  {eq.lhs} &{eq.relation} {eq.rhs}{note}")
    return r"\begin{align*}" + "\n" + " \\\\\n".join(lines) + "\n" + r"\end{align*}"


def _tex_block(block: Block) -> str:
    if block.kind == "heading":
        return r"\section*{" + block.text + "}"
    if block.kind == "equations":
        return _tex_rows(block.equations)
    if block.kind == "items":
        items = "\n".join(r"  \item " + line for line in block.text.splitlines())
        return r"\begin{itemize}" + "\n" + items + "\n" + r"\end{itemize}"
    return block.text


def to_tex(d: Derivation, report: ProofReport | None = None) -> str:
    """The complete LaTeX document (``pdflatex`` compiles it with amsmath and geometry).

    ``report`` is the outcome of :func:`symbn.prove`; it is computed when not given.

    Raises
    ------
    OptionError
        For a derivation with a concrete batch size.

    """
    _check(d)
    report = report if report is not None else prove(d)
    body = "\n\n".join(_tex_block(b) for b in blocks(d, report))
    head = (PREAMBLE + "\\title{" + title(d) + "}\n\\author{}\n\\date{}\n"
            "\\begin{document}\n\\maketitle\n\n"
            "\\noindent Layer: {\\small\\texttt{" + _escape(d.spec.describe()) + "}}.\n"
            "\\par\\noindent Written by:\n{\\footnotesize\n\\begin{verbatim}\n" + command_line(d)
            + "\n\\end{verbatim}\n}\n\n")
    return head + body + "\n\n\\end{document}\n"


def _md_rows(rows: tuple[Equation, ...]) -> str:
    out = []
    for eq in rows:
        note = r" \qquad \text{(" + eq.note + ")}" if eq.note else ""
        out.append("$$\n" + f"{eq.lhs} {eq.relation} {eq.rhs}{note}" + "\n$$")
    return "\n\n".join(out)


def _md_block(block: Block) -> str:
    if block.kind == "heading":
        return "## " + block.text
    if block.kind == "equations":
        return _md_rows(block.equations)
    if block.kind == "items":
        text = block.markdown if block.markdown is not None else block.text
        return "\n".join("- " + line for line in text.splitlines())
    return block.markdown if block.markdown is not None else block.text


def to_markdown(d: Derivation, report: ProofReport | None = None) -> str:
    r"""The same document as Markdown, with ``$$`` math that GitHub renders.

    Each displayed equation is a ``$$`` block of one line (no ``\\`` line breaks, which
    Markdown would eat).
    """
    _check(d)
    report = report if report is not None else prove(d)
    head = (f"# {title(d)}\n\nLayer: `{d.spec.describe()}`.\n"
            f"Written by `{command_line(d)} --markdown`.\n\n")
    return head + "\n\n".join(_md_block(b) for b in blocks(d, report)) + "\n"


def repr_latex(d: Derivation) -> str:
    """A short LaTeX rendering for Jupyter: the forward graph and the closed forms.

    >>> import symbn
    >>> text = repr_latex(symbn.derive(symbn.LayerSpec(mode="eval")))
    >>> text.startswith("$$") and text.endswith("$$")
    True
    """
    checked_derivation(d)
    names = names_for(d)
    graph = d.graph
    label = d.spec.describe().replace("_", r"\_")  # eps\_placement: pdflatex reads _ as math
    rows = [r"\text{" + label + ("" if d.m is None else f", m = {d.m}") + r"}\\"]
    for n in graph.nodes[:-1]:
        rows.append(quantity_latex(graph, n.name, names) + " &= "
                    + latex(node_value(graph, n), names) + r"\\")
    for w in d.wrt:
        rows.append(adjoint_latex(w, graph.is_elementwise(w), names) + " &= "
                    + latex(d.closed_symbolic[w], names) + r"\\")
    for k, v in d.definitions.items():
        rows.append(latex(sp.Symbol(k), names) + " &= " + definition_latex(v, names)
                    + r"\\")
    return "$$\\begin{aligned}" + "\n".join(rows) + "\\end{aligned}$$"
