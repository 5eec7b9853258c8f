"""NumPy source for symbn's symbolic-batch expressions: sums become ``np.sum`` over the batch axes.

SymPy's stock :class:`~sympy.printing.numpy.NumPyPrinter` prints a ``Sum`` as a
``builtins.sum`` generator over the index, one Python step per element. Here a sum over the
batch index ``j`` is one vectorized reduction over the reduced axes, kept broadcastable
(``keepdims=True``) and accumulated in a chosen dtype; an element ``f(i)`` or ``f(j)`` is the
whole array that holds f.

>>> import sympy as sp
>>> from symbn import symbols as S
>>> g, xs = S.element_function("g"), S.element_function("xs")
>>> p = BatchNumPyPrinter({"arrays": {"g": "dy", "xs": "xs"}})
>>> p.doprint(sp.Sum(g(S.j) * xs(S.j), (S.j, 1, S.m)) / S.m)
'np.sum(dy*xs, axis=axes, keepdims=True, dtype=np.float64)/m'
>>> p.doprint(2 * g(S.i) + sp.sqrt(S.var + S.eps))
'np.sqrt(eps + var) + 2*dy'
"""

from __future__ import annotations

from typing import Any, ClassVar

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from symbn import symbols as S
from symbn.errors import OptionError


class BatchNumPyPrinter(NumPyPrinter):
    """Print symbolic-batch expressions as vectorized NumPy code.

    Settings (besides NumPyPrinter's)
    ---------------------------------
    arrays
        ``{element function name: array variable}``, e.g. ``{"g": "dy", "x": "x"}``. An
        element function not named here is an error, never a silent loop.
    axes
        The name of the variable that holds the tuple of reduced axes (default ``"axes"``).
    accumulate
        The dtype sums accumulate in (default ``"np.float64"``); empty for the array's own.
    product
        The name of a function that forms a product of more than two factors on mantissas
        and exponents (see :meth:`_print_Mul`); empty (the default) for plain products.

    """

    _default_settings: ClassVar[dict[str, Any]] = {
        **NumPyPrinter._default_settings,
        "arrays": {},
        "axes": "axes",
        "accumulate": "np.float64",
        "product": "",
    }

    def _module_format(self, fqn: str, register: bool = True) -> str:
        """Write ``numpy.f`` as ``np.f``: generated modules ``import numpy as np``."""
        out = super()._module_format(fqn, register)
        return "np." + out[len("numpy."):] if out.startswith("numpy.") else out

    def _print_AppliedUndef(self, expr: sp.Expr) -> str:
        """An element ``f(i)`` or ``f(j)`` is the whole array that holds f."""
        name = expr.func.__name__
        arrays = self._settings["arrays"]
        if name not in arrays:
            raise OptionError.bad_value(
                "element", f"{name}{expr.args}",
                f"no array is named for {name!r}; known: {sorted(arrays)}")
        (index,) = expr.args
        if index not in (S.i, S.j):
            raise OptionError.bad_value("index", index, "elements are indexed by i or j")
        return str(arrays[name])

    def _print_Sum(self, expr: sp.Sum) -> str:
        """``Sum(body, (j, 1, m))`` as one reduction over the batch axes."""
        (index, low, high), = expr.limits
        if index != S.j or low != 1 or high != S.m:
            raise OptionError.bad_value("limits", expr.limits, "sums run over (j, 1, m)")
        printed = self._print(expr.function)
        dtype = self._settings["accumulate"]
        extra = f", dtype={dtype}" if dtype else ""
        return f"np.sum({printed}, axis={self._settings['axes']}, keepdims=True{extra})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """Two branches, the last unconditional, as ``np.where``; more branches as NumPy does."""
        if len(expr.args) == 2 and expr.args[1].cond == sp.true:
            (value, cond), (other, _) = expr.args
            return (f"np.where({self._print(cond)}, {self._print(value)}, "
                    f"{self._print(other)})")
        return str(super()._print_Piecewise(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        """``1/b`` rather than NumPy's ``b**(-1.0)``; ``b**3`` as ``(b**2*b)``; others as NumPy.

        NumPy squares fast but takes the general (slow) power function for other integer
        exponents, so cubes are a square and a product (in parentheses, so that ``2/r**3``
        stays ``2/(r**2*r)``).

        >>> r, s = sp.symbols("r s")
        >>> BatchNumPyPrinter().doprint(r**3 + 1/s), BatchNumPyPrinter().doprint(2/r**3)
        ('(r**2*r) + 1/s', '2/(r**2*r)')
        """
        base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Pow"])
        if expr.exp == -1:
            return f"1/{base}"
        if expr.exp == 3:
            return f"({base}**2*{base})"
        return str(super()._print_Pow(expr, rational=rational))

    def _print_Mul(self, expr: sp.Mul) -> str:
        """With the ``product`` setting, a product with a cube as a call that forms it safely.

        The call, ``_product((gamma, 1), (r, 3), …)``, works on mantissas and exponents (so do
        higher powers). Multiplied in turn, factors of very different sizes can overflow or
        underflow on the way where the product does not: r³ is inf with ε = 1e-300 while a
        constant channel's Σ dy·xs is 0, and no order suits every input (γ = dy = 1e150
        overflows γ·Σ dy·xs; γ = 1e-100 with dy = 1e110 overflows r³·Σ dy·xs). The named
        function (in the generated module) has no such steps. A number stays outside. Without
        the setting, or without a cube, a product prints as SymPy prints it.

        >>> r, s, t = sp.symbols("r s t")
        >>> printer = BatchNumPyPrinter({"product": "_product"})
        >>> printer.doprint(-2*s*t*r**3/(s + 1)), printer.doprint(s*r**2)
        ('-2*_product((r, 3), (s, 1), (t, 1), (s + 1, -1))', 'r**2*s')
        """
        name = self._settings["product"]
        coefficient, rest = expr.as_coeff_Mul()
        factors = [f.as_base_exp() for f in rest.as_ordered_factors()]
        factors = [(b, e) if e.is_Integer else (b**e, sp.Integer(1)) for b, e in factors]
        factors = [f for f in factors if f[1] > 0] + [f for f in factors if f[1] < 0]
        if not name or all(e < 3 for _, e in factors):
            return str(super()._print_Mul(expr))
        call = f"{name}({', '.join(f'({self._print(b)}, {int(e)})' for b, e in factors)})"
        if coefficient == 1:
            return call
        return f"-{call}" if coefficient == -1 else f"{self._print(coefficient)}*{call}"

    def _print_StrictGreaterThan(self, expr: sp.Expr) -> str:
        """``a > b`` as an operator, which numexpr and NumPy both read."""
        return f"{self._print(expr.lhs)} > {self._print(expr.rhs)}"


def numpy_code(expr: sp.Expr, arrays: dict[str, str], **settings: Any) -> str:
    """Print one expression; ``arrays`` names the array of each element function.

    >>> from symbn import symbols as S
    >>> numpy_code(sp.Sum(S.element_function("g")(S.j), (S.j, 1, S.m)), {"g": "dy"},
    ...            accumulate="")
    'np.sum(dy, axis=axes, keepdims=True)'
    """
    return str(BatchNumPyPrinter({"arrays": arrays, **settings}).doprint(expr))
