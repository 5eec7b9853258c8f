r"""LaTeX for symbn's expressions, as a person writes them.

``x(i)`` prints as :math:`x_i`, ``xhat(i)`` as :math:`\hat{x}_i`, ``dL_dxhat(j)`` as
:math:`\frac{\partial \ell}{\partial \hat{x}_j}`, ``mu`` as :math:`\mu_B`, ``var`` as
:math:`\sigma_B^2` and its root as :math:`\sigma_B`; sums keep SymPy's :math:`\sum_{j=1}^{m}`.
Terms are ordered the way people write them: positive terms first and ε last, so
``-mu + x(i)`` reads :math:`x_i - \mu_B` and ``eps + var`` reads :math:`\sigma_B^2 + \epsilon`;
a coefficient times a sum of sums stays outside the parentheses,
:math:`\frac{\gamma r}{m}\left(m g_i - \dots\right)`.

>>> import sympy as sp
>>> from symbn import symbols as S
>>> latex(S.element_function("xhat")(S.i) * S.var)
'\\sigma_B^{2} \\hat{x}_{i}'
>>> latex(S.element_function("x")(S.i) - S.mu)
'x_{i} - \\mu_B'
>>> latex(1 / sp.sqrt(S.var + S.eps))
'\\frac{1}{\\sqrt{\\sigma_B^{2} + \\epsilon}}'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from symbn import symbols as S

# Name of a symbol or element function -> its LaTeX.
NAMES: Mapping[str, str] = {
    "mu": r"\mu_B",
    "var": r"\sigma_B^{2}",
    "sigma": r"\sigma_B",
    "eps": r"\epsilon",
    "gamma": r"\gamma",
    "beta": r"\beta",
    "running_mean": r"\mathrm{E}[x]",
    "running_var": r"\mathrm{Var}[x]",
    "xhat": r"\hat{x}",
    "r": "r",
    "L": r"\ell",
}


def name_latex(name: str, names: Mapping[str, str] | None = None) -> str:
    r"""LaTeX for a quantity's name (``xhat`` → ``\hat{x}``, ``dL_dvar`` → a partial).

    ``names`` overrides entries of :data:`NAMES` (e.g. ``{"sigma": r"\sigma"}``).

    >>> name_latex("dL_dmu")
    '\\frac{\\partial \\ell}{\\partial \\mu_B}'
    """
    table = {**NAMES, **(names or {})}
    if name.startswith("dL_d"):
        return r"\frac{\partial \ell}{\partial " + name_latex(name[4:], names) + "}"
    if name in table:
        return table[name]
    base, _, index = name.partition("_")
    if index.isdigit():
        return f"{name_latex(base, names)}_{{{index}}}"
    return name


def _term_key(term: sp.Expr) -> tuple[int, int, int]:
    """Sort key of a term: positive terms first, then terms with elements, then by size.

    ε alone goes last, so that ``eps + var`` reads σ² + ε.
    """
    negative = 1 if term.could_extract_minus_sign() else 0
    scalar = 0 if _is_batch_quantity(term) else 1
    return (negative, scalar, 10**6 if term == S.eps else sp.count_ops(term))


class SymbnLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with symbn's names for symbols and elements."""

    def __init__(self, settings: dict[str, Any] | None = None,
                 names: Mapping[str, str] | None = None) -> None:
        super().__init__(settings)
        self._names = dict(names or {})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return name_latex(expr.name, self._names)

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        if not isinstance(expr, sp.core.function.AppliedUndef):
            return super()._print_Function(expr, exp)
        name = expr.func.__name__
        (index,) = expr.args
        sub = self._print(index)
        if name.startswith("dL_d"):
            inner = _subscript(name_latex(name[4:], self._names), sub)
            text = r"\frac{\partial \ell}{\partial " + inner + "}"
        else:
            text = _subscript(name_latex(name, self._names), sub)
        return f"{text}^{{{exp}}}" if exp is not None else text

    def _print_Pow(self, expr: sp.Pow) -> str:
        if expr.base == S.var and expr.exp == sp.Rational(1, 2):
            return name_latex("sigma", self._names)
        return super()._print_Pow(expr)

    def _print_Add(self, expr: sp.Add, order: str | None = None) -> str:
        terms = sorted(self._as_ordered_terms(expr, order=order), key=_term_key)
        out = ""
        for k, term in enumerate(terms):
            text = self._print(term)
            if k == 0:
                out = text
            elif text.startswith("-"):
                out += " - " + text[1:].lstrip()
            else:
                out += " + " + text
        return out

    def _print_Mul(self, expr: sp.Expr) -> str:
        r"""A scalar coefficient prints in front of elements and sums: ``\frac{γ r}{m} (…)``."""
        rest = [a for a in expr.args if _is_batch_quantity(a)]
        front = sp.Mul(*(a for a in expr.args if a not in rest))
        rest.sort(key=lambda a: (a.has(sp.Sum), isinstance(a, sp.Add)))
        if not any(a.has(sp.Sum) or _has_adjoint(a) for a in rest) or (
                front == 1 and not any(isinstance(a, sp.Add) for a in rest)):
            return super()._print_Mul(expr)
        body = " ".join(self._factor(a) for a in rest)
        sign = "- " if not front.is_Add and front.could_extract_minus_sign() else ""
        front = -front if sign else front
        if front == 1:
            return sign + body
        # a sum of scalars in front (x_0 - mu at a concrete m) keeps its parentheses
        return sign + self.parenthesize(front, PRECEDENCE["Mul"], strict=True) + " " + body

    def _factor(self, expr: sp.Expr) -> str:
        if isinstance(expr, sp.Add):
            return r"\left(" + self._print(expr) + r"\right)"
        return self._print(expr)


def _has_adjoint(expr: sp.Expr) -> bool:
    """Whether ``expr`` refers to an adjoint ∂ℓ/∂q (``dL_dq`` or ``dL_dq(j)``)."""
    names = [s.name for s in expr.free_symbols if isinstance(s, sp.Symbol)]
    names += [f.func.__name__ for f in expr.atoms(sp.core.function.AppliedUndef)]
    return any(n.startswith("dL_d") for n in names)


def _is_batch_quantity(expr: sp.Expr) -> bool:
    """Whether ``expr`` involves elements, sums or adjoints (not just scalars)."""
    return (expr.has(sp.Sum) or bool(expr.atoms(sp.core.function.AppliedUndef))
            or _has_adjoint(expr))


def _subscript(base: str, sub: str) -> str:
    if base.endswith("}") and "_" in base and not base.startswith("\\frac"):
        return f"{base[:-1]},{sub}}}"
    if "_" in base:
        return f"{{{base}}}_{{{sub}}}"
    return f"{base}_{{{sub}}}"


def variant_names(uses_batch_statistics: bool) -> dict[str, str]:
    r"""Name overrides for a variant: :math:`\sigma_B` is a batch statistic in training only.

    In evaluation mode σ is the root of the running variance, printed :math:`\sigma`.

    >>> variant_names(False)
    {'sigma': '\\sigma'}
    """
    return {} if uses_batch_statistics else {"sigma": r"\sigma"}


def definition_latex(value: sp.Expr, names: Mapping[str, str] | None = None) -> str:
    r"""A definition's right side; a root is written out (σ_B = √σ²_B, not σ_B = σ_B).

    >>> definition_latex(sp.sqrt(S.var))
    '\\sqrt{\\sigma_B^{2}}'
    """
    if isinstance(value, sp.Pow) and value.exp == sp.Rational(1, 2):
        return r"\sqrt{" + latex(value.base, names) + "}"
    return latex(value, names)


def latex(expr: sp.Basic, names: Mapping[str, str] | None = None) -> str:
    """LaTeX for an expression of symbn's; ``names`` overrides entries of :data:`NAMES`."""
    return SymbnLatexPrinter({"mul_symbol": None}, names).doprint(expr)
