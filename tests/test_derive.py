"""The derived gradients against independent ground truths, for every variant."""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

import symbn
from symbn import symbols as S
from symbn.evaluate import evaluate
from symbn.spec import LayerSpec, all_variants
from tests.naive import naive_gradients

VARIANTS = all_variants()


def _ids(spec: LayerSpec) -> str:
    return spec.describe().replace(", ", "-").replace(" ", "_")


def _sizes(spec: LayerSpec) -> list[int]:
    low = 2 if spec.variance == "unbiased" and spec.mode == "train" else 1
    return list(range(low, 5))


def _point(m: int, seed: int) -> dict[str, list[sp.Rational] | sp.Rational]:
    rng = random.Random(seed)
    def q() -> sp.Rational:
        return sp.Rational(rng.randint(-900, 900), rng.randint(50, 300))
    return {"x": [q() for _ in range(m)], "g": [q() for _ in range(m)], "gamma": q(),
            "beta": q(), "eps": sp.Rational(1, 7), "rm": q(), "rv": sp.Rational(3, 2)}


def _symbn_env(spec: LayerSpec, m: int, p: dict) -> dict[sp.Symbol, sp.Expr]:
    """Values for the symbols of symbn's concrete closed forms, computed from the data."""
    xs = p["x"]
    if spec.mode == "train":
        mu = sum(xs) / m
        divisor = m if spec.variance == "biased" else m - 1
        var = sum((x - mu) ** 2 for x in xs) / divisor
    else:
        mu, var = p["rm"], p["rv"]
    sigma = sp.sqrt(var)
    r = 1 / sp.sqrt(var + p["eps"]) if spec.eps_placement == "sqrt" else 1 / (sigma + p["eps"])
    env: dict[sp.Symbol, sp.Expr] = {
        S.mu: mu, S.var: var, S.running_mean: mu, S.running_var: var, S.eps: p["eps"],
        S.gamma: p["gamma"], S.beta: p["beta"], S.r: r, S.sigma: sigma,
    }
    for k in range(m):
        env[sp.Symbol(f"x_{k}", real=True)] = xs[k]
        env[sp.Symbol(f"g_{k}", real=True)] = p["g"][k]
        env[sp.Symbol(f"xhat_{k}", real=True)] = (xs[k] - mu) * r
    return env


@pytest.mark.parametrize("spec", VARIANTS, ids=_ids)
def test_closed_form_matches_naive_expansion(spec: LayerSpec) -> None:
    """Closed forms equal sympy.diff of the fully expanded layer at random points (m = 1..4)."""
    for m in _sizes(spec):
        d = symbn.derive(spec, m)
        p = _point(m, seed=m)
        if spec.eps_placement == "std" and spec.mode == "train" and m == 1:
            continue  # sigma = 0 always: covered by test_std_placement_at_constant_batch
        env = _symbn_env(spec, m, p)
        xs, naive, sym = naive_gradients(spec, m)
        nenv = {**dict(zip(xs, p["x"], strict=True)), **dict(zip(sym["g"], p["g"], strict=True)),
                sym["gamma"]: p["gamma"], sym["beta"]: p["beta"], sym["eps"]: p["eps"],
                sym["rm"]: p["rm"], sym["rv"]: p["rv"]}
        for w in d.wrt:
            ours = d.closed[w] if isinstance(d.closed[w], tuple) else (d.closed[w],)
            for a, b in zip(ours, naive[w], strict=True):
                va, vb = sp.N(a.xreplace(env), 50), sp.N(b.xreplace(nenv), 50)
                assert abs(va - vb) <= sp.Float("1e-40", 50) * (1 + abs(vb)), (w, m, va, vb)


@pytest.mark.parametrize("spec", [s for s in VARIANTS if s.mode == "train"], ids=_ids)
def test_batch_of_one_has_zero_input_gradient(spec: LayerSpec) -> None:
    """With m = 1, x̂ ≡ 0, so dL/dx is exactly 0 (raw chain rule and closed form)."""
    if spec.variance == "unbiased":
        with pytest.raises(symbn.OptionError, match="m - 1 = 0"):
            symbn.derive(spec, 1)
        return
    d = symbn.derive(spec, 1)
    (raw,) = d.raw["x"]
    assert sp.simplify(raw.xreplace({S.mu: sp.Symbol("x_0", real=True)})) == 0
    assert sp.simplify(raw) == 0
    assert d.closed["x"] == (0,)


@pytest.mark.parametrize("spec", [s for s in VARIANTS if s.mode == "eval"], ids=_ids)
def test_eval_mode_gradient_is_gamma_g_r(spec: LayerSpec) -> None:
    """In eval mode the statistics are constants: dL/dx = γ·g·r exactly."""
    d = symbn.derive(spec)
    g = S.element_function("g")(S.i)
    expected = (S.gamma if spec.affine else 1) * g * S.r
    assert sp.simplify(d.closed["x"] - expected) == 0
    r_def = d.definitions["r"].xreplace({S.sigma: d.definitions.get("sigma", S.sigma)})
    want = (1 / sp.sqrt(S.running_var + S.eps) if spec.eps_placement == "sqrt"
            else 1 / (sp.sqrt(S.running_var) + S.eps))
    assert sp.simplify(r_def - want) == 0


def test_default_closed_form_is_the_textbook_one() -> None:
    """dx = (γr/m)(m·g − Σg − x̂·Σ(g·x̂)), dγ = Σ g·x̂, dβ = Σ g (Ioffe & Szegedy, compact)."""
    d = symbn.derive()
    g, xhat = S.element_function("g"), S.element_function("xhat")
    sg = sp.Sum(g(S.j), (S.j, 1, S.m))
    sgx = sp.Sum(g(S.j) * xhat(S.j), (S.j, 1, S.m))
    textbook = S.gamma * S.r / S.m * (S.m * g(S.i) - sg - xhat(S.i) * sgx)
    assert sp.expand(d.closed["x"] - textbook) == 0
    assert d.closed["gamma"] == sgx
    assert d.closed["beta"] == sg
    assert d.definitions["r"] == 1 / sp.sqrt(S.var + S.eps)


def test_unbiased_and_std_change_the_closed_form() -> None:
    """The variants get their own closed forms: m/(m−1) and (σ+ε)/σ factors on the x̂ term."""
    base = symbn.derive().closed["x"]
    unbiased = symbn.derive(LayerSpec(variance="unbiased")).closed["x"]
    std = symbn.derive(LayerSpec(eps_placement="std")).closed["x"]
    g, xhat = S.element_function("g"), S.element_function("xhat")
    term = xhat(S.i) * sp.Sum(g(S.j) * xhat(S.j), (S.j, 1, S.m))
    assert sp.simplify((unbiased - base) / (S.gamma * S.r * term / S.m)) == -1 / (S.m - 1)
    coefficient = sp.simplify((std - base) / (S.gamma * S.r * term / S.m))
    assert sp.simplify(coefficient + S.eps / S.sigma) == 0


def _std_loss(xs: list, gs: list, gamma: float, eps: float) -> mpmath.mpf:
    m = len(xs)
    mu = mpmath.fsum(xs) / m
    sigma = mpmath.sqrt(mpmath.fsum((x - mu) ** 2 for x in xs) / m)
    return mpmath.fsum(g * gamma * (x - mu) / (sigma + eps) for x, g in zip(xs, gs, strict=True))


def test_std_placement_at_constant_batch() -> None:
    """At σ = 0 the std-placement layer is differentiable; the stated limit is its gradient."""
    d = symbn.derive(LayerSpec(eps_placement="std"))
    (cond,) = d.conditions
    assert cond.statement == "sigma > 0"
    limit = cond.limit["x"]
    gs, gamma, eps = [0.3, -1.2, 2.0, 0.7], 1.7, 0.25
    with mpmath.workdps(40):
        xs = [mpmath.mpf(5)] * 4
        expected = evaluate(limit, {"g": gs}, {"gamma": gamma, "eps": eps})
        for k in range(4):
            def f(t: mpmath.mpf, k: int = k) -> mpmath.mpf:
                moved = list(xs)
                moved[k] += t
                return _std_loss(moved, gs, gamma, eps)
            # one-sided differences from both sides agree: a true derivative, not a kink
            right = (f(mpmath.mpf("1e-15")) - f(0)) / mpmath.mpf("1e-15")
            left = (f(0) - f(mpmath.mpf("-1e-15"))) / mpmath.mpf("1e-15")
            assert abs(right - expected[k]) < 1e-10
            assert abs(left - expected[k]) < 1e-10


def test_steps_follow_ioffe_szegedy() -> None:
    """The recorded adjoints are ∂L/∂y, ∂L/∂x̂, ∂L/∂σ², ∂L/∂μ, ∂L/∂x, ∂L/∂γ, ∂L/∂β, in order."""
    d = symbn.derive()
    assert [s.name for s in d.steps] == ["y", "xhat", "var", "mu", "x", "gamma", "beta"]
    dmu = next(s for s in d.steps if s.name == "mu")
    assert {c.source for c in dmu.contributions} == {"xhat", "var"}
    # the path through σ² is Σ −2(x_j − μ)/m times ∂L/∂σ², and the algebra removes it
    assert len(dmu.expr.atoms(sp.Sum)) == 2
    assert len(d.reduced_steps["mu"].atoms(sp.Sum)) == 1
    assert not d.reduced_steps["mu"].has(sp.Symbol("dL_dvar", real=True))


def test_bad_batch_sizes_are_rejected() -> None:
    """m ≤ 0 and non-integer m raise OptionError naming the value."""
    for bad in (0, -3, 2.5, True, "4"):
        with pytest.raises(symbn.OptionError, match="m="):
            symbn.derive(LayerSpec(), bad)  # type: ignore[arg-type]


def test_numpy_integers_are_batch_sizes_and_booleans_are_not() -> None:
    """m=np.int64(3) is m=3; np.bool_ is refused like bool."""
    import numpy as np
    assert symbn.derive(LayerSpec(), m=np.int64(3)).m == 3
    assert symbn.derive(LayerSpec(), m=np.int32(2)).closed == symbn.derive(LayerSpec(), 2).closed
    with pytest.raises(symbn.OptionError, match="m="):
        symbn.derive(LayerSpec(), np.bool_(True))  # type: ignore[arg-type]


def test_derive_and_prove_refuse_what_is_not_a_spec_or_derivation() -> None:
    """derive("batchnorm") and prove(None): OptionError saying what to give."""
    with pytest.raises(symbn.OptionError, match=r"spec='batchnorm' is not allowed; give a "
                                                r"symbn\.LayerSpec"):
        symbn.derive("batchnorm")  # type: ignore[arg-type]
    with pytest.raises(symbn.OptionError, match=r"derivation=None is not allowed; give what "
                                                r"symbn\.derive returns"):
        symbn.prove(None)  # type: ignore[arg-type]


def test_concrete_m_limit_is_given_per_element() -> None:
    """With m = 3, ``limits`` was in symbolic-m form (g(i), a Sum to m) beside closed forms in
    g_0, g_1, g_2 (a review); now one expression per element, from ``limits_symbolic``."""
    spec = LayerSpec(eps_placement="std")
    d3, every = symbn.derive(spec, m=3), symbn.derive(spec)
    per_element = d3.limits["x"]
    assert isinstance(per_element, tuple) and len(per_element) == 3
    gs = [sp.Symbol(f"g_{k}", real=True) for k in range(3)]
    for k, expr in enumerate(per_element):
        assert expr.free_symbols <= {*gs, S.gamma, S.eps}
        # gamma (m g_k - Σ g) / (eps m)
        assert sp.simplify(expr - S.gamma * (3 * gs[k] - sum(gs)) / (3 * S.eps)) == 0
    assert d3.limits_symbolic == every.limits == every.limits_symbolic
