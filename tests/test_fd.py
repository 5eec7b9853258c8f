"""Finite differences: Richardson accuracy, full and directional modes, the Taylor test."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import symbn
from symbn import fd, fd_projections
from symbn.errors import OptionError
from symbn.reference import Reference


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference(symbn.LayerSpec())


def sample(seed: int = 0, shape: tuple[int, int] = (6, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"dy": rng.normal(size=shape), "x": rng.normal(size=shape) * 2 + 1,
            "gamma": rng.uniform(0.5, 2, shape[1]), "beta": rng.normal(size=shape[1])}


def test_richardson_reaches_the_working_precision_on_a_known_derivative() -> None:
    """d/dt sin(1 + t) at 0 is cos 1: 3 Richardson levels at the tied step give >= 45 digits."""
    with mpmath.workdps(fd.working_dps(50, 3)):
        est = fd.central_difference(lambda t: mpmath.sin(1 + t), step=fd.step_for(50, 3))
        error = abs(est.value - mpmath.cos(1))
    assert error < mpmath.mpf(10) ** -45


def test_richardson_beats_a_plain_central_difference_at_the_same_step() -> None:
    """Extrapolation removes the h² term: far smaller error than one central difference."""
    with mpmath.workdps(60):
        f = lambda t: mpmath.exp(2 * t) / (1 + t**2)  # noqa: E731
        exact = mpmath.diff(f, 0)
        plain = fd.central_difference(f, step=mpmath.mpf("1e-3"), levels=1)
        extrapolated = fd.central_difference(f, step=mpmath.mpf("1e-3"), levels=4)
        assert abs(extrapolated.value - exact) < abs(plain.value - exact) * mpmath.mpf(10) ** -10


def test_levels_must_be_positive() -> None:
    """levels=0 is refused, naming what is allowed."""
    with pytest.raises(OptionError, match="at least 1"):
        fd.central_difference(lambda t: t, step=1, levels=0)


def test_full_gradient_agrees_with_the_closed_form(ref: Reference) -> None:
    """Every partial by FD matches the proven gradient to >= 30 digits at dps=50."""
    d = sample()
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=50)
    with mpmath.workdps(50):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
    assert min(fd.agreement_digits(exact[w], numeric[w]) for w in exact) >= 30


def test_full_gradient_tells_a_wrong_gradient_apart(ref: Reference) -> None:
    """A gradient off by one part in 1e12 agrees with FD to only ~12 digits."""
    d = sample(1)
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=40)
    with mpmath.workdps(40):
        wrong = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)["x"] * \
            (1 + mpmath.mpf("1e-12"))
    assert 10 < fd.agreement_digits(wrong, numeric["x"]) < 14


def test_offset_inputs_keep_their_digits(ref: Reference) -> None:
    """x = 1e20 + N(0,1): the extra working digits keep >= 45 of 50 digits of agreement
    (without them, 38; at the offset of 1e7 this test used, 44 either way, so it could not
    fail: an audit)."""
    d = sample(2, (5, 2))
    d["x"] = 1e20 + d["x"]
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=50)
    with mpmath.workdps(50):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
    assert fd.agreement_digits(exact["x"], numeric["x"]) >= 45


def test_directional_projections_agree(ref: Reference) -> None:
    """uᵀJv by FD of L(x + t v) equals ∇L·v to >= 30 digits for random directions."""
    d = sample(3, (64, 3))
    results = fd_projections.directional(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                                         dps=50, directions=2)
    assert len(results) == 2 and min(r.digits for r in results) >= 30


def test_directional_detects_a_wrong_gradient(ref: Reference) -> None:
    """A perturbed gradient gives a projection that disagrees with the FD one."""
    d = sample(4, (32, 2))
    with mpmath.workdps(50):
        grads = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
        grads["x"] = grads["x"] * (1 + mpmath.mpf("1e-8"))
    results = fd_projections.directional(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                                         dps=50, gradient=grads, directions=1)
    assert results[0].digits < 12


def test_taylor_remainder_shrinks_like_h_squared_only_for_the_right_gradient(
        ref: Reference) -> None:
    """Rates → 2 with the proven gradient; → 1 with a wrong one (dy used for γ·dy)."""
    d = sample(5)
    right = fd_projections.taylor_test(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5)
    assert right.passed and all(abs(r - 2) < 0.05 for r in right.rates[-3:])
    with mpmath.workdps(50):
        grads = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
        grads["x"] = grads["x"] / np.array([mpmath.mpf(float(g)) for g in d["gamma"]])
    wrong = fd_projections.taylor_test(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                                       gradient=grads)
    assert not wrong.passed and abs(wrong.rates[-1] - 1) < 0.1


def test_taylor_test_fails_a_gradient_slightly_wrong(ref: Reference) -> None:
    """dx 1e-4 wrong: the rates climb above 2 (2.035 to 2.729 on verify's input) as δ·h cancels
    the h² term; "rate ≥ 1.8" passed it and ``symbn verify`` printed "ok" (a review)."""
    from symbn.commands.verify import _args, _fd_inputs

    _, data = _fd_inputs(symbn.LayerSpec())[0]
    args, kw = _args(ref, data)
    with mpmath.workdps(50):
        grads = ref.gradient(args[0], args[1], args[2], **kw)
        grads["x"] = grads["x"] * (1 + mpmath.mpf("1e-4"))
    wrong = fd_projections.taylor_test(ref, *args, dps=50, gradient=grads, **kw)
    assert not wrong.passed and max(wrong.rates) > 2.2
    assert fd_projections.taylor_test(ref, *args, dps=50, **kw).passed


def test_linear_loss_is_reported_exact() -> None:
    """Eval mode without affine: L is linear in x, the remainder is at rounding level."""
    spec = symbn.LayerSpec(mode="eval", affine=False)
    d = sample(6)
    result = fd_projections.taylor_test(Reference(spec), d["dy"], d["x"], eps=1e-5,
                            running_mean=[0.1, 0.2, 0.3], running_var=[1.0, 2.0, 0.5])
    assert result.exact and result.passed


def test_agreement_digits_counts_significant_digits() -> None:
    """Normwise digits: 1e-20 relative error is 20 digits; equal arrays are infinite."""
    with mpmath.workdps(40):
        a = [mpmath.mpf(2), mpmath.mpf(-4)]
        b = [mpmath.mpf(2), mpmath.mpf(-4) * (1 + mpmath.mpf("1e-20"))]
        assert fd.agreement_digits(b, a) == pytest.approx(20, abs=0.01)
        assert fd.agreement_digits(a, a) == float("inf")


def test_fd_leaves_mpmath_precision_alone(ref: Reference) -> None:
    """Working at 70+ digits inside, the global precision is unchanged afterwards."""
    before = mpmath.mp.prec
    d = sample(7, (3, 1))
    fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=60)
    assert mpmath.mp.prec == before


# -- symbn verify -----------------------------------------------------------------------------

def test_verify_rows_all_pass_for_a_hard_variant() -> None:
    """ε outside the root, unbiased: FD on every input (constant channel too) reaches 30 digits."""
    from symbn.commands.verify import finite_difference_rows
    rows = finite_difference_rows(symbn.LayerSpec(eps_placement="std", variance="unbiased"),
                                  50, directional_m=64)
    assert rows and all(r.passed for r in rows), [r for r in rows if not r.passed]
    assert any("constant channel" in r.case for r in rows)


def test_verify_command_prints_a_table_and_exit_status_follows_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`symbn verify batchnorm --dps 30` prints a row per check; a failing row means exit 1."""
    from symbn import cli
    from symbn.commands import verify
    if verify not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, verify))
    monkeypatch.setattr(verify, "generated_code_rows", lambda spec, backend, dps: [])
    assert cli.main(["verify", "batchnorm", "--dps", "30"]) == 0
    out = capsys.readouterr().out
    assert "closed form vs FD, full gradient" in out and "Taylor" in out and "FAIL" not in out
    failing = [verify.Row("generated code", "x", "wrong", False)]
    monkeypatch.setattr(verify, "generated_code_rows", lambda spec, backend, dps: failing)
    assert cli.main(["verify", "batchnorm", "--dps", "30"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_verify_dps_reaches_the_generated_code_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated code's rows take the checker's reference at --dps digits (they took 30
    whatever the header said, a review found)."""
    from symbn.commands import verify

    asked: list[int] = []
    real = verify.check_backward

    def spy(*args: object, **kwargs: object) -> object:
        asked.append(kwargs["dps"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(verify, "check_backward", spy)
    verify.generated_code_rows(symbn.LayerSpec(), "numpy", 40)
    assert asked == [40, 40]


def test_verify_checks_the_generated_code() -> None:
    """With symbn.codegen present, verify runs the generated backward through the checker."""
    import importlib.util
    if importlib.util.find_spec("symbn.codegen") is None:
        pytest.skip("symbn.codegen is not importable (the code-generation issue is not merged)")
    from symbn.commands.verify import generated_code_rows
    rows = generated_code_rows(symbn.LayerSpec())
    assert [r.check for r in rows] == ["generated code (numpy) vs reference (float64)",
                                       "generated code (numpy) vs reference (float32)"]
    assert all(r.passed for r in rows), [r.result for r in rows]  # the float32 row too


def test_verify_fails_a_closed_form_finite_differences_disagree_with(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A closed form whose dx is off by 1e-9 of itself (9 digits, where 12 are required at
    dps = 20) fails verify's finite-difference rows, and the command exits 1 (an audit:
    verify's rows passing whatever the digits passed every test)."""
    from symbn.cli import main
    from symbn.commands import verify

    real = Reference.gradient

    def off(self: Reference, *args: object, **kwargs: object) -> dict[str, np.ndarray]:
        grads = real(self, *args, **kwargs)  # type: ignore[arg-type]
        return grads | {"x": grads["x"] * (1 + mpmath.mpf("1e-9"))}

    monkeypatch.setattr(Reference, "gradient", off)
    rows = verify.finite_difference_rows(symbn.LayerSpec(), 20, directional_m=8)
    verdicts = {r.check: r.passed for r in rows}
    assert verdicts["closed form vs FD, full gradient"] is False
    assert verdicts["closed form vs FD, uᵀJv (3 directions)"] is False
    monkeypatch.setattr(verify, "generated_code_rows", lambda *a: [])
    assert main(["verify", "batchnorm", "--dps", "20"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_verify_fails_a_wrong_generated_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's generated-code rows fail where the generated backward is wrong, in both dtypes
    (an audit: rows passing whatever the checker said passed every test)."""
    import types

    import symbn.codegen
    from symbn.commands import verify

    right = symbn.codegen.load(symbn.LayerSpec()).backward

    def wrong(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, *, eps: float,
              axis: int) -> tuple[np.ndarray, ...]:
        dx, dgamma, dbeta = right(dy, x, gamma, eps=eps, axis=axis)
        return dx * x.dtype.type(1.01), dgamma, dbeta

    monkeypatch.setattr(symbn.codegen, "load",
                        lambda spec, backend="numpy": types.SimpleNamespace(backward=wrong))
    rows = verify.generated_code_rows(symbn.LayerSpec())
    assert [r.passed for r in rows] == [False, False]
    assert all("failed on" in r.result for r in rows)


def test_verify_checks_the_numexpr_backend_when_asked() -> None:
    """`--backend numexpr` runs the numexpr module through the checker, both dtypes passing."""
    pytest.importorskip("numexpr")
    from symbn.commands.verify import generated_code_rows
    rows = generated_code_rows(symbn.LayerSpec(eps_placement="std"), "numexpr")
    assert [r.check for r in rows] == ["generated code (numexpr) vs reference (float64)",
                                       "generated code (numexpr) vs reference (float32)"]
    assert all(r.passed for r in rows), [r.result for r in rows]


# -- arguments checked up front ----------------------------------------------------------------

BAD_ARGUMENTS = [
    ("taylor_test", {"first_step": 0}, "first_step=0 is not allowed; use a finite real number"),
    ("taylor_test", {"first_step": float("nan")}, "first_step=nan is not allowed"),
    ("taylor_test", {"first_step": -1e-2}, "first_step=-0.01 is not allowed"),
    ("taylor_test", {"first_step": 1e-30}, "first_step=1e-30 is not allowed; at dps=50 with 5 "
                                           "halvings the remainders would be at rounding level"),
    ("taylor_test", {"dps": 0}, "dps=0 is not allowed; use at least 20 digits"),
    ("taylor_test", {"halvings": 0}, "halvings=0 is not allowed; use at least 1 halving"),
    ("taylor_test", {"eps": float("nan")}, "eps=nan is not allowed; use a finite real number > 0"),
    ("taylor_test", {"eps": -1e-5}, "eps=-1e-05 is not allowed"),
    ("taylor_test", {"seed": -1}, "seed=-1 is not allowed"),
    ("directional", {"levels": 0}, "levels=0 is not allowed; use at least 1 level"),
    ("directional", {"directions": 0}, "directions=0 is not allowed"),
    ("directional", {"dps": 10}, "dps=10 is not allowed"),
    ("directional", {"eps": 0}, "eps=0 is not allowed"),
    ("full_gradient", {"step": 0}, "step=0 is not allowed; use a finite real number > 0"),
    ("full_gradient", {"step": float("inf")}, "step=inf is not allowed"),
    ("full_gradient", {"levels": 0}, "levels=0 is not allowed"),
    ("full_gradient", {"dps": 5}, "dps=5 is not allowed"),
    ("full_gradient", {"eps": "1e-5"}, "eps='1e-5' is not allowed"),
]


@pytest.mark.parametrize(("function", "changes", "text"), BAD_ARGUMENTS,
                         ids=[f"{f}-{next(iter(c))}={next(iter(c.values()))}"
                              for f, c, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_up_front(ref: Reference, function: str, changes: dict,
                                            text: str) -> None:
    """Each bad argument: an OptionError naming it and what is allowed, never a silent pass."""
    d = sample(8, (4, 2))
    with mpmath.workdps(50):
        wrong = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
        wrong["x"] = wrong["x"] * 2
    kwargs = {"eps": 1e-5} | ({"gradient": wrong} if function == "taylor_test" else {})
    with pytest.raises(OptionError, match=text.replace("(", r"\(")):
        module = fd if function == "full_gradient" else fd_projections
        getattr(module, function)(ref, d["dy"], d["x"], d["gamma"], d["beta"], **kwargs | changes)


def test_central_difference_refuses_a_zero_step() -> None:
    """step=0 would divide by zero: refused with the rule."""
    with pytest.raises(OptionError, match="step=0 is not allowed"):
        fd.central_difference(lambda t: t, step=0)


def test_the_smallest_first_step_still_tells_right_from_wrong(ref: Reference) -> None:
    """At the least first step allowed the Taylor test passes a right and fails a wrong one."""
    d = sample(9)
    first = float(fd_projections.smallest_first_step(50, 5)) * 1.01
    with mpmath.workdps(50):
        wrong = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
        wrong["x"] = wrong["x"] * (1 + mpmath.mpf("1e-6"))
    assert fd_projections.taylor_test(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                          first_step=first).passed
    assert not fd_projections.taylor_test(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                              first_step=first, gradient=wrong).passed


def test_std_placement_near_a_constant_channel() -> None:
    """ε outside the root, σ far below ε (a channel 1 + a few units in the last place): the
    loss goes through σ = √σ², so the step is on σ's scale. On σ + ε ≈ ε, dx agreed to 11
    of 50 digits with the closed form, which is right there (a review); uᵀJv at an exactly
    constant channel had no plain-difference branch and agreed to 11 digits too."""
    ref = Reference(symbn.LayerSpec(eps_placement="std"))
    rng = np.random.default_rng(0)
    x = (1 + np.arange(5) * 2.0**-52)[:, None]
    dy = rng.normal(size=x.shape)
    numeric = fd.full_gradient(ref, dy, x, [1.3], [0.2], eps=1e-5, dps=50)
    with mpmath.workdps(50):
        exact = ref.gradient(dy, x, [1.3], eps=1e-5)
    assert fd.agreement_digits(exact["x"], numeric["x"]) >= 45
    constant = np.column_stack([np.full(5, 0.75), rng.normal(size=5)])
    results = fd_projections.directional(ref, rng.normal(size=constant.shape), constant,
                                         [1.3, 0.7], [0.2, -0.1], eps=1e-5, dps=50)
    assert min(r.digits for r in results) >= 45, [r.digits for r in results]


def test_an_mpmath_eps_keeps_its_digits_and_a_zero_gradient_agrees_on_its_scale(
        ref: Reference) -> None:
    """eps = mpf('1e-5') at 50 digits was cut to float64 inside the differences (16 digits of
    agreement with the reference, which takes it whole); and a dx that is truly 0 (dy constant
    along the batch) read as −10 digits against ‖b‖, its rounding noise, until given its
    natural scale (both found by a review)."""
    d = sample(7)
    with mpmath.workdps(50):
        eps = mpmath.mpf("1e-5")
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=eps)
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=eps, dps=50)
    assert fd.agreement_digits(exact["x"], numeric["x"]) >= 45
    flat = np.ones_like(d["dy"])
    with mpmath.workdps(50):
        zero = ref.gradient(flat, d["x"], d["gamma"], eps=1e-5)
    numeric = fd.full_gradient(ref, flat, d["x"], d["gamma"], d["beta"], eps=1e-5, dps=50)
    scale = max(abs(float(g)) for g in d["gamma"]) / math.sqrt(1e-5)  # ‖dy‖·|γ|·r, r ≤ 1/√ε
    assert fd.agreement_digits(zero["x"], numeric["x"], scale=scale) >= 40


def test_a_large_beta_costs_no_digits(ref: Reference) -> None:
    """β·Σ dy does not depend on x or γ, but its rounding did: β = 1e32 left dx, dγ and dβ at
    about 30 of 50 digits, a false failure (a review). The differences are taken at β = 0."""
    d = sample(8)
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], 1e32 * np.ones(3), eps=1e-5,
                               dps=50)
    with mpmath.workdps(50):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
    assert min(fd.agreement_digits(exact[w], numeric[w]) for w in exact) >= 45


def test_results_do_not_depend_on_mpmaths_global_precision(ref: Reference) -> None:
    """The data were converted at mpmath's global precision: under ``mp.dps = 5`` a float
    lost its last bits and full_gradient moved by 1e-6 (found in a read of this round's
    change). Converted exactly, the results are the same whatever the global precision."""
    d = sample(9)
    args = (d["dy"], d["x"], d["gamma"], d["beta"])
    before = fd.full_gradient(ref, *args, eps=1e-5, dps=30)
    projections = fd_projections.directional(ref, *args, eps=1e-5, dps=30)
    saved = mpmath.mp.dps
    try:
        mpmath.mp.dps = 5
        after = fd.full_gradient(ref, *args, eps=1e-5, dps=30)
        again = fd_projections.directional(ref, *args, eps=1e-5, dps=30)
    finally:
        mpmath.mp.dps = saved
    assert all((before[w] == after[w]).all() for w in before)
    assert [p.fd for p in projections] == [p.fd for p in again]


def test_bad_data_and_eps_are_named_not_mpmath_errors() -> None:
    """Found by a review of the Python API: eps = -1 gave mpmath's "cannot create mpf from
    mpc" and eps = 0 numbers; a NaN in x gave libmpf's "cannot convert inf or nan to int";
    arrays of different lengths, zip's ValueError."""
    ref = Reference(symbn.LayerSpec())
    x, dy, gamma = [[1.0, 2.0], [3.0, 5.0]], [[0.5, 1.0], [-1.0, 2.0]], [1.5, 0.5]
    for eps in (-1.0, 0.0, float("nan")):
        with pytest.raises(OptionError, match=r"eps=.* is not allowed; use a finite real"):
            ref.gradient(dy, x, gamma, eps=eps)
        with pytest.raises(OptionError, match=r"eps=.* is not allowed"):
            ref.forward(x, gamma, eps=eps)
    with pytest.raises(OptionError, match="x holds NaN or inf"):
        fd.full_gradient(ref, dy, [[1.0, float("nan")], [3.0, 5.0]], gamma, eps=1e-5, dps=20)
    with pytest.raises(OptionError, match="gamma holds NaN or inf"):
        ref.gradient(dy, x, [1.0, float("inf")], eps=1e-5)
    with pytest.raises(OptionError, match=r"a\.shape=\(2,\) is not allowed; a and b hold as"):
        fd.agreement_digits([1.0, 2.0], [1.0, 2.0, 3.0])
