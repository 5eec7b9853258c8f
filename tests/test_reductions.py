"""The reduction algebra: linearity, facts from the statistics, exact zero tests."""

from __future__ import annotations

import sympy as sp

from symbn import symbols as S
from symbn.reductions import is_zero, linear_form, polynomial_is_zero, solve_facts

x, g = S.element_function("x"), S.element_function("g")


def _sum(body: sp.Expr) -> sp.Sum:
    return sp.Sum(body, (S.j, 1, S.m))


def test_linear_form_pulls_out_constants_and_counts() -> None:
    """Σ(a·x_j + c) = a·Σx_j + m·c for a, c free of j."""
    a, c = sp.symbols("a c")
    assert sp.expand(linear_form(_sum(a * x(S.j) + c)) - (a * _sum(x(S.j)) + S.m * c)) == 0


def test_facts_from_mean_and_variance() -> None:
    """μ = Σx/m and σ² = Σ(x−μ)²/m give Σx = mμ and Σx² = m(σ² + μ²)."""
    eqs = [linear_form(_sum(x(S.j)) / S.m) - S.mu,
           linear_form(_sum((x(S.j) - S.mu) ** 2) / S.m) - S.var]
    facts = solve_facts(eqs)
    assert facts[_sum(x(S.j))] == S.m * S.mu
    assert sp.expand(facts[_sum(x(S.j) ** 2)] - S.m * (S.var + S.mu**2)) == 0


def test_zero_tests_reject_nonzero() -> None:
    """The exact zero tests say False for expressions that are not identically zero."""
    r = 1 / sp.sqrt(S.var + S.eps)
    assert polynomial_is_zero(r**3 - (S.var + S.eps) ** sp.Rational(-3, 2))
    assert not polynomial_is_zero(r**3 - (S.var + S.eps) ** sp.Rational(-1, 2))
    assert is_zero(r**2 * (S.var + S.eps) - 1)
    assert not is_zero(r**2 * (S.var + 2 * S.eps) - 1)
    assert not is_zero(_sum(g(S.j)) - _sum(x(S.j)))
