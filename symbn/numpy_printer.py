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
    data
        Names of the symbols that hold data (sums over the batch), which a power multiplies
        into first (see :meth:`_print_Mul`).

    """

    _default_settings: ClassVar[dict[str, Any]] = {
        **NumPyPrinter._default_settings,
        "arrays": {},
        "axes": "axes",
        "accumulate": "np.float64",
        "data": frozenset(),
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
        """A product of a cube (or higher power) and data: the data times the base, in turn.

        The factors that hold data (those with a symbol named in the ``data`` setting) are
        multiplied by the base one at a time, then by the rest: ``gamma/m*(r*(r*(r*t0)))``, not
        ``gamma*(r**2*r)*t0/m``. Each step is then a quantity of the data's own scale (r·t0 is
        a sum of dy·x̂), so it overflows only where the result does: with ε = 1e-300 a constant
        channel has r³ = inf and t0 = 0, and r³ first gave NaN; the other way round, γ·t0 first
        overflows for γ = dy = 1e150. Without data in it, a product prints as SymPy prints it.

        >>> r, s, t = sp.symbols("r s t")
        >>> printer = BatchNumPyPrinter({"data": {"t"}})
        >>> printer.doprint(2*s*t*r**3/(s + 1)), printer.doprint(r**3*(t - 1))
        ('2*s/(s + 1)*(r*(r*(r*t)))', 'r*(r*(r*(t - 1)))')
        >>> printer.doprint(s*r**3)
        '(r**2*r)*s'
        """
        data = self._settings["data"]
        powers = [f for f in expr.args if isinstance(f, sp.Pow) and f.base.is_Symbol
                  and f.exp.is_Integer and f.exp > 2]
        held = [f for f in expr.args
                if f not in powers and {v.name for v in f.free_symbols} & set(data)]
        if not powers or not held:
            return str(super()._print_Mul(expr))
        level = sp.printing.precedence.PRECEDENCE["Mul"]
        text = self.parenthesize(sp.Mul(*held), level, strict=True)
        for k, base in enumerate(p.base for p in sorted(powers, key=sp.default_sort_key)
                                 for _ in range(int(p.exp))):
            text = f"{self.parenthesize(base, level)}*{text if k == 0 else f'({text})'}"
        rest = sp.Mul(*(f for f in expr.args if f not in powers and f not in held))
        return text if rest == 1 else f"{self.parenthesize(rest, level, strict=True)}*({text})"

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
