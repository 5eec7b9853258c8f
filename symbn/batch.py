"""The two representations of a batch: a symbolic size m, or m explicit elements.

An elementwise quantity is, with symbolic m, one expression in the element index ``i``
(``x(i)``); with concrete m, a tuple of m expressions (``x_0 … x_{m-1}``). Scalars are plain
expressions in both. The reverse-mode pass is written once against this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import sympy as sp

from symbn import symbols as S

Elem: TypeAlias = sp.Expr | tuple[sp.Expr, ...]


@dataclass(frozen=True)
class SymbolicBatch:
    """A batch of symbolic size ``m``: one representative element ``x(i)`` plus sums over j.

    >>> b = SymbolicBatch()
    >>> b.total(b.element("x"))
    Sum(x(j), (j, 1, m))
    """

    @property
    def size(self) -> sp.Expr:
        """The number of elements, the symbol ``m``."""
        return S.m

    def fix(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with the batch size put in (unchanged: m stays a symbol)."""
        return expr

    def element(self, name: str) -> sp.Expr:
        """Element i of ``name``: ``name(i)``."""
        return S.element_function(name)(S.i)

    def map(self, fn: Callable[..., sp.Expr], *elems: Elem) -> sp.Expr:
        """Apply ``fn`` to corresponding elements."""
        return fn(*elems)

    def total(self, elem: Elem) -> sp.Expr:
        """Σ_j of an elementwise quantity, left unevaluated."""
        assert isinstance(elem, sp.Expr)
        return sp.Sum(elem.xreplace({S.i: S.j}), (S.j, 1, S.m))

    def add(self, a: Elem, b: Elem) -> Elem:
        """Elementwise sum."""
        assert isinstance(a, sp.Expr) and isinstance(b, sp.Expr)
        return a + b

    def substitute(self, elem: Elem, refs: dict[str, Elem], scalars: dict[sp.Symbol, sp.Expr]
                   ) -> Elem:
        """Replace elementwise references ``name(k)`` (any index) and scalar symbols."""
        assert isinstance(elem, sp.Expr)
        out = elem
        for name, value in refs.items():
            assert isinstance(value, sp.Expr)
            out = out.replace(S.element_function(name), sp.Lambda(S.i, value))
        return out.xreplace(scalars) if scalars else out


@dataclass(frozen=True)
class ConcreteBatch:
    """A batch of ``m`` explicit elements ``x_0 … x_{m-1}``.

    >>> ConcreteBatch(3).element("x")
    (x_0, x_1, x_2)
    """

    m: int

    @property
    def size(self) -> sp.Expr:
        """The number of elements, as a SymPy integer."""
        return sp.Integer(self.m)

    def fix(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with the symbol m replaced by this batch's size."""
        return expr.xreplace({S.m: self.size})

    def element(self, name: str) -> tuple[sp.Expr, ...]:
        """The m symbols ``name_0 … name_{m-1}``."""
        return tuple(sp.Symbol(f"{name}_{k}", real=True) for k in range(self.m))

    def map(self, fn: Callable[..., sp.Expr], *elems: Elem) -> tuple[sp.Expr, ...]:
        """Apply ``fn`` element by element; a scalar argument is shared by every element."""
        def at(e: Elem, k: int) -> sp.Expr:
            return e[k] if isinstance(e, tuple) else e
        return tuple(fn(*(at(e, k) for e in elems)) for k in range(self.m))

    def total(self, elem: Elem) -> sp.Expr:
        """The explicit sum of the m elements."""
        assert isinstance(elem, tuple)
        return sp.Add(*elem)

    def add(self, a: Elem, b: Elem) -> Elem:
        """Elementwise sum."""
        assert isinstance(a, tuple) and isinstance(b, tuple)
        return tuple(p + q for p, q in zip(a, b, strict=True))

    def substitute(self, elem: Elem, refs: dict[str, Elem], scalars: dict[sp.Symbol, sp.Expr]
                   ) -> Elem:
        """Replace element symbols ``name_k`` of each reference and scalar symbols.

        ``elem`` may also be a scalar expression that mentions elements.
        """
        table: dict[sp.Basic, sp.Expr] = dict(scalars)
        for name, value in refs.items():
            assert isinstance(value, tuple)
            table.update(zip(self.element(name), value, strict=True))
        if isinstance(elem, tuple):
            return tuple(e.xreplace(table) for e in elem)
        return elem.xreplace(table)


Batch: TypeAlias = SymbolicBatch | ConcreteBatch


def make_batch(m: int | None) -> Batch:
    """The batch for a concrete size ``m``, or the symbolic one for ``None``."""
    return SymbolicBatch() if m is None else ConcreteBatch(m)


def as_tuple(elem: Elem) -> Sequence[sp.Expr]:
    """An elementwise value as a sequence (one item for the symbolic representation)."""
    return elem if isinstance(elem, tuple) else (elem,)
