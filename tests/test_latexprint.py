"""Tests of symbn.latexprint: symbn's names and the order people write terms in."""

from __future__ import annotations

import sympy as sp

import symbn
from symbn import symbols as S
from symbn.latexprint import latex, name_latex

x, g, xhat = (S.element_function(n) for n in ("x", "g", "xhat"))


def test_elements_print_with_subscripts_and_hats():
    """x(i), xhat(j) and an adjoint of an element print as x_i, x̂_j, ∂ℓ/∂x̂_j."""
    assert latex(x(S.i)) == "x_{i}"
    assert latex(xhat(S.j)) == r"\hat{x}_{j}"
    adjoint = S.element_function("dL_dxhat")(S.j)
    assert latex(adjoint) == r"\frac{\partial \ell}{\partial \hat{x}_{j}}"


def test_statistics_and_adjoint_names():
    """μ, σ², and the adjoint symbol dL_dvar print with the paper's names."""
    assert latex(S.mu) == r"\mu_B"
    assert latex(S.var) == r"\sigma_B^{2}"
    assert name_latex("dL_dvar") == r"\frac{\partial \ell}{\partial \sigma_B^{2}}"
    assert name_latex("x_3") == "x_{3}"


def test_positive_terms_first_and_eps_last():
    """-mu + x(i) reads x_i − μ_B, eps + var reads σ²_B + ε, beta + gamma·x̂ reads γx̂ + β."""
    assert latex(-S.mu + x(S.i)) == r"x_{i} - \mu_B"
    assert latex(S.eps + S.var) == r"\sigma_B^{2} + \epsilon"
    assert latex(S.beta + S.gamma * xhat(S.i)) == r"\gamma \hat{x}_{i} + \beta"


def test_root_of_variance_is_sigma_and_names_can_be_overridden():
    """√σ² prints as σ_B; a names table replaces an entry (σ without the batch subscript)."""
    assert latex(sp.sqrt(S.var) + S.eps) == r"\sigma_B + \epsilon"
    assert latex(S.sigma, {"sigma": r"\sigma"}) == r"\sigma"


def test_default_closed_form_reads_like_the_textbook():
    """The default closed form prints as (γr/m)(m g_i − Σg_j − x̂_i Σ g_j x̂_j), no Sum(."""
    d = symbn.derive(symbn.LayerSpec())
    text = latex(d.closed_symbolic["x"])
    assert text == (r"\frac{\gamma r}{m} \left(m g_{i} - \sum_{j=1}^{m} g_{j} - \hat{x}_{i} "
                    r"\sum_{j=1}^{m} g_{j} \hat{x}_{j}\right)")


def test_coefficient_of_a_sum_term_stays_in_front():
    """A rational coefficient of an element times a sum prints before them: m/(m−1) x̂_i Σ."""
    expr = S.m * xhat(S.i) * sp.Sum(g(S.j) * xhat(S.j), (S.j, 1, S.m)) / (S.m - 1)
    assert latex(expr).startswith(r"\frac{m}{m - 1} \hat{x}_{i} \sum")


def test_every_expression_of_every_variant_prints_without_program_names():
    """Steps and closed forms of all 16 variants print with no Sum(, dL_d or xhat left."""
    for spec in symbn.all_variants():
        d = symbn.derive(spec)
        exprs = [s.expr for s in d.steps] + list(d.closed_symbolic.values())
        for expr in exprs:
            text = latex(expr)
            for bad in ("Sum(", "dL_d", "xhat", "running_var", "KroneckerDelta"):
                assert bad not in text, (spec.describe(), text)


def test_a_sum_of_scalars_in_front_keeps_its_parentheses():
    """(x_0 − μ)·∂ℓ/∂σ² printed as x_0 − μ ∂ℓ/∂σ², which reads x_0 − μ·∂ℓ/∂σ²: a review found
    56 such terms in the ∂ℓ/∂μ and ∂ℓ/∂x_k steps of ``--format latex`` at m = 2 and 3 (at a
    concrete m an element is a plain symbol, so x_0 − μ went in front as a scalar)."""
    d = symbn.derive(symbn.LayerSpec(), m=2)
    step = next(s.expr for s in d.steps if s.name == "x")[0]  # ∂ℓ/∂x_0
    x0 = next(s for s in step.free_symbols if s.name == "x_0")
    dvar = next(s for s in step.free_symbols if s.name == "dL_dvar")
    partial_var = r"\frac{\partial \ell}{\partial \sigma_B^{2}}"
    assert latex(dvar * (x0 - S.mu)) == r"\left(x_{0} - \mu_B\right) " + partial_var
    assert r"\left(x_{0} - \mu_B\right) " + partial_var in latex(step)
    total = sp.Sum(g(S.j), (S.j, 1, S.m))
    assert latex((S.sigma + S.eps) * total) == (
        r"\left(\sigma_B + \epsilon\right) \sum_{j=1}^{m} g_{j}")
    assert latex(-(S.m - 1) * total) == r"\left(1 - m\right) \sum_{j=1}^{m} g_{j}"
    # a negative coefficient keeps its sign in front, without parentheses
    assert latex(-dvar / sp.sqrt(S.var + S.eps)) == (
        r"- \frac{1}{\sqrt{\sigma_B^{2} + \epsilon}} " + partial_var)
