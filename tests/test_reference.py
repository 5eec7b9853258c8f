"""The mpmath reference: forward pass, proven gradient, the σ = 0 limit, structured identities."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symbn
import symbn.checker
from symbn import fd
from symbn.errors import OptionError
from symbn.evaluate import evaluate
from symbn.reference import Reference, as_matrix
from symbn.strategies import cases

VARIANTS = symbn.all_variants()


@pytest.fixture(scope="module")
def references() -> dict[symbn.LayerSpec, Reference]:
    return {spec: Reference(spec) for spec in VARIANTS}


def data(seed: int = 0, shape: tuple[int, int] = (6, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = shape[1]
    return {"x": rng.normal(size=shape) * 2 + 1, "dy": rng.normal(size=shape),
            "gamma": rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c),
            "beta": rng.normal(size=c), "running_mean": rng.normal(size=c),
            "running_var": rng.uniform(0.5, 2, c)}


def numpy_forward(spec: symbn.LayerSpec, d: dict[str, np.ndarray], eps: float) -> np.ndarray:
    x = d["x"]
    if spec.mode == "train":
        mu = x.mean(0)
        var = ((x - mu) ** 2).sum(0) / (len(x) - (spec.variance == "unbiased"))
    else:
        mu, var = d["running_mean"], d["running_var"]
    den = np.sqrt(var + eps) if spec.eps_placement == "sqrt" else np.sqrt(var) + eps
    xhat = (x - mu) / den
    return d["gamma"] * xhat + d["beta"] if spec.affine else xhat


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: s.describe())
def test_closed_form_agrees_with_finite_differences_to_30_digits(
        spec: symbn.LayerSpec, references: dict[symbn.LayerSpec, Reference]) -> None:
    """Every variant's proven gradient matches mpmath FD of the forward pass to >= 30 digits."""
    ref, d = references[spec], data()
    kw = {"eps": 1e-5, "running_mean": d["running_mean"], "running_var": d["running_var"]}
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], dps=50, **kw)
    with mpmath.workdps(50):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], **kw)
    assert set(exact) == set(ref.derivation.wrt)
    for w in exact:
        assert fd.agreement_digits(exact[w], numeric[w]) >= 30, w


@pytest.mark.parametrize("spec", VARIANTS[::3], ids=lambda s: s.describe())
def test_forward_matches_a_plain_numpy_forward(
        spec: symbn.LayerSpec, references: dict[symbn.LayerSpec, Reference]) -> None:
    """The mpmath forward pass computes the layer the spec describes (checked in float64)."""
    d = data(1)
    with mpmath.workdps(30):
        y = references[spec].forward(d["x"], d["gamma"], d["beta"], eps=1e-3,
                                     running_mean=d["running_mean"],
                                     running_var=d["running_var"])
    np.testing.assert_allclose(y.astype(float), numpy_forward(spec, d, 1e-3), rtol=1e-13)


def test_std_placement_uses_the_limit_at_a_constant_channel(
        references: dict[symbn.LayerSpec, Reference]) -> None:
    """ε outside the root at σ = 0: the gradient is the stated limit, finite, and equals FD."""
    spec = symbn.LayerSpec(eps_placement="std")
    ref, d = references[spec], data(2, (5, 2))
    d["x"][:, 0] = 0.75
    with mpmath.workdps(50):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
        g = d["dy"][:, 0]
        expected = d["gamma"][0] * (g - g.mean()) / 1e-5     # γ(m·g − Σg)/(ε·m)
    np.testing.assert_allclose(exact["x"][:, 0].astype(float), expected, rtol=1e-12)
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=50)
    assert fd.agreement_digits(exact["x"], numeric["x"]) >= 30


def test_unbiased_variance_with_one_element_is_refused(
        references: dict[symbn.LayerSpec, Reference]) -> None:
    """m = 1 with unbiased variance divides by 0: an OptionError, not a NaN."""
    ref = references[symbn.LayerSpec(variance="unbiased")]
    with pytest.raises(OptionError, match="m - 1 = 0"), mpmath.workdps(20):
        ref.gradient([[1.0]], [[2.0]], [1.5], eps=1e-5)


def test_bad_shapes_are_refused_with_the_shape_named() -> None:
    """Data that is not (m, D), or γ of the wrong length, names the shape it got."""
    with pytest.raises(OptionError, match=r"x.shape"):
        as_matrix(np.zeros(3))
    ref = Reference(symbn.LayerSpec())
    with pytest.raises(OptionError, match=r"gamma.shape=\(3,\)"), mpmath.workdps(20):
        ref.gradient(np.ones((4, 2)), np.arange(8.0).reshape(4, 2), [1, 2, 3], eps=1e-5)


def test_evaluate_matches_the_closed_form_written_out() -> None:
    """symbn.evaluate (sums computed once) gives the textbook dx computed with numpy."""
    d = symbn.derive(symbn.LayerSpec())
    rng = np.random.default_rng(3)
    g, xhat = rng.normal(size=7), rng.normal(size=7)
    gamma, r = 1.3, 0.7
    want = gamma * r / 7 * (7 * g - g.sum() - xhat * (g * xhat).sum())
    sums: dict = {}
    with mpmath.workdps(30):
        got = evaluate(d.closed_symbolic["x"], {"g": g.tolist(), "xhat": xhat.tolist()},
                       {"gamma": gamma, "r": r}, sums)
    assert np.allclose([float(v) for v in got], want, rtol=1e-13, atol=1e-13)
    assert len(sums) == 2      # Σ g and Σ g·x̂, each computed once and kept for reuse


@settings(max_examples=40)
@given(case=cases(structured=False, large=64), data=st.data())
def test_gradient_sums_to_zero_in_training_mode(
        case: symbn.checker.Case, data: st.DataObject,
        references: dict[symbn.LayerSpec, Reference]) -> None:
    """Σ_i dx_i = 0 per channel in training mode, for every variant and any input."""
    spec = data.draw(st.sampled_from([s for s in VARIANTS if s.mode == "train"]))
    ref = references[spec]
    x2, g2 = case.columns(case.x), case.columns(case.dy)
    if spec.variance == "unbiased" and len(x2) == 1:
        return
    with mpmath.workdps(40):
        grads = ref.gradient(g2, x2, case.gamma if spec.affine else None, eps=case.eps)
        scale = np.abs(grads["x"].astype(float)).max() + 1e-300
        for c in range(x2.shape[1]):
            assert abs(mpmath.fsum(grads["x"][:, c])) <= 1e-25 * scale


@settings(max_examples=40)
@given(case=cases(dy_kind="constant", large=64))
def test_constant_upstream_gradient_gives_zero_dx(
        case: symbn.checker.Case, references: dict[symbn.LayerSpec, Reference]) -> None:
    """dy constant along the batch ⇒ dx = 0 exactly (training mode)."""
    default = references[symbn.LayerSpec()]
    with mpmath.workdps(40):
        grads = default.gradient(case.columns(case.dy), case.columns(case.x), case.gamma,
                                  eps=case.eps)
    big = float(np.abs(case.gamma).max() * np.abs(case.dy).max()) / np.sqrt(case.eps)
    assert np.abs(grads["x"].astype(float)).max() <= 1e-25 * big


@settings(max_examples=40)
@given(case=cases(dy_kind="xhat", large=64))
def test_upstream_gradient_xhat_gives_the_eps_identity(
        case: symbn.checker.Case, references: dict[symbn.LayerSpec, Reference]) -> None:
    """dy = x̂ ⇒ dx = γ·r·x̂·ε/(σ² + ε) for the default variant (ε's placement shows)."""
    default = references[symbn.LayerSpec()]
    x2 = case.columns(case.x)
    with mpmath.workdps(40):
        cols = as_matrix(x2)
        e = mpmath.mpf(case.eps)
        stats = [default.stats(col, e) for col in cols]
        dy = np.array([[float(v) for v in s.xhat] for s in stats]).T
        grads = default.gradient(dy, x2, case.gamma, eps=case.eps)
        for c, s in enumerate(stats):
            g = mpmath.mpf(float(case.gamma[c]))
            gcol = [mpmath.mpf(float(v)) for v in dy[:, c]]
            # dy is x̂ rounded to float64: compare with the identity's exact form in that dy,
            # dx = γ r/m (m·dy − Σdy − x̂·Σ(dy·x̂)), which for dy = x̂ is γ·r·x̂·ε/(σ²+ε).
            expected = [g * s.r * h * e / (s.variance + e) for h in s.xhat]
            bound = max(abs(g * s.r), mpmath.mpf(1)) * mpmath.mpf(2) ** -50 * len(gcol)
            for k, v in enumerate(grads["x"][:, c]):
                assert abs(v - expected[k]) <= bound * (1 + max(abs(h) for h in s.xhat))


def test_an_exact_eps_keeps_its_digits() -> None:
    """A SymPy Float of 40 digits, a SymPy Rational or a Fraction ε is taken exactly at the
    working precision, as an mpmath one is; a float ε is its 53 bits. Checking ε cut the first
    ones to a float (the 30-digit result moved at digit 17) and refused mpmath's Fraction-less
    conversion (a review)."""
    from fractions import Fraction

    ref = Reference(symbn.LayerSpec())
    x, dy, gamma = [[1.0, 2.0], [3.0, 5.0], [4.0, -1.0]], [[0.5, 1.0], [-1.0, 2.0], [2.0, 0.0]], \
        [1.5, 0.5]
    with mpmath.workdps(40):
        exact = ref.gradient(dy, x, gamma, eps=mpmath.mpf("1e-5"))["x"]
        for eps in (sp.Float("1e-5", 40), sp.Rational(1, 100000), Fraction(1, 100000)):
            assert (ref.gradient(dy, x, gamma, eps=eps)["x"] == exact).all(), eps
        rounded = ref.gradient(dy, x, gamma, eps=1e-5)["x"]
        assert not (rounded == exact).all()
        assert max(abs(a - b) for a, b in zip(rounded.flat, exact.flat, strict=True)) < 1e-15
