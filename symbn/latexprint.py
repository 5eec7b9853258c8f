"""LaTeX for symbn's expressions, as a person writes them.

``x(i)`` prints as :math:`x_i`, ``xhat(i)`` as :math:`\\hat{x}_i`, ``dL_dxhat(j)`` as
:math:`\\frac{\\partial L}{\\partial \\hat{x}_j}`, ``mu`` as :math:`\\mu_B`, ``var`` as
:math:`\\sigma_B^2`; sums keep SymPy's :math:`\\sum_{j=1}^{m}`.

>>> import sympy as sp
>>> from symbn import symbols as S
>>> latex(S.element_function("xhat")(S.i) * S.var)
'\\\\sigma_B^{2} \\\\hat{x}_{i}'
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.latex import LatexPrinter

# Name of a symbol or element function -> its LaTeX.
NAMES: dict[str, str] = {
    "mu": r"\mu_B",
    "var": r"\sigma_B^{2}",
    "sigma": r"\sigma_B",
    "eps": r"\epsilon",
    "gamma": r"\gamma",
    "beta": r"\beta",
    "running_mean": r"\hat{\mu}",
    "running_var": r"\hat{\sigma}^{2}",
    "xhat": r"\hat{x}",
    "r": "r",
    "L": r"\ell",
}


def name_latex(name: str) -> str:
    """LaTeX for a quantity's name (``xhat`` → ``\\hat{x}``, ``dL_dvar`` → a partial)."""
    if name.startswith("dL_d"):
        return r"\frac{\partial \ell}{\partial " + name_latex(name[4:]) + "}"
    if name in NAMES:
        return NAMES[name]
    base, _, index = name.partition("_")
    if index.isdigit():
        return f"{name_latex(base)}_{{{index}}}"
    return name


class SymbnLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with symbn's names for symbols and elements."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        return name_latex(expr.name)

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        if not isinstance(expr, sp.core.function.AppliedUndef):
            return super()._print_Function(expr, exp)
        name = expr.func.__name__
        (index,) = expr.args
        sub = self._print(index)
        if name.startswith("dL_d"):
            text = r"\frac{\partial \ell}{\partial " + _subscript(name_latex(name[4:]), sub) + "}"
        else:
            text = _subscript(name_latex(name), sub)
        return f"{text}^{{{exp}}}" if exp is not None else text


def _subscript(base: str, sub: str) -> str:
    if base.endswith("}") and "_" in base and not base.startswith("\\frac"):
        return f"{base[:-1]},{sub}}}"
    if "_" in base:
        return f"{{{base}}}_{{{sub}}}"
    return f"{base}_{{{sub}}}"


def latex(expr: sp.Basic) -> str:
    """LaTeX for an expression of symbn's."""
    return SymbnLatexPrinter({"mul_symbol": None}).doprint(expr)
