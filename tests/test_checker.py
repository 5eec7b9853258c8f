"""The checker: rejects classic wrong backwards, accepts right ones, flags vacuous checks."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symbn
from symbn.checker import (
    Case,
    check_backward,
    check_case,
    default_cases,
    load_function,
    tolerance,
)
from symbn.errors import OptionError
from symbn.reference import Reference
from symbn.strategies import cases, hard_cases
from symbn.vacuity import mutants, surviving_mutants

# -- a zoo of backwards, written as users write them -----------------------------------------
# All take (dy, x, gamma, *, eps, axis) with axis the channel axis and compute in float64
# (as PyTorch's CPU kernel accumulates), returning arrays of the input dtype.


def _layout(x: np.ndarray, axis: int) -> tuple[tuple[int, ...], list[int], int]:
    axis %= x.ndim
    axes = tuple(k for k in range(x.ndim) if k != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return axes, shape, x.size // x.shape[axis]


def _out(x: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a).astype(x.dtype) for a in arrays)


def staged(dy, x, gamma, *, eps, axis, bug=""):
    """Ioffe & Szegedy, Section 3, step by step (∂x̂, ∂σ², ∂μ, ∂x)."""
    axes, shape, m = _layout(x, axis)
    given = x                                     # the outputs keep x's dtype
    x, dy, gamma = x.astype(np.float64), dy.astype(np.float64), gamma.reshape(shape)
    mu = x.mean(axes, keepdims=True)
    divisor = m - 1 if bug == "unbiased" else m
    with np.errstate(all="ignore"):
        var = ((x - mu) ** 2).sum(axes, keepdims=True) / divisor
        inv = 1 / (np.sqrt(var) + eps) if bug == "eps outside" else 1 / np.sqrt(var + eps)
        if bug == "invstd as var":
            inv = 1 / np.sqrt(inv + eps)          # the saved inverse std read as a variance
        xhat = (x - mu) * inv
        dxhat = dy if bug == "no gamma" else dy * gamma
        if bug == "constants":
            dx = dxhat * inv
        else:
            dvar = np.sum(dxhat * (x - mu), axes, keepdims=True) * -0.5 * inv**3
            dmu = np.sum(-dxhat * inv, axes, keepdims=True) \
                + dvar * np.mean(-2 * (x - mu), axes, keepdims=True)
            dx = dxhat * inv + dvar * 2 * (x - mu) / m + dmu / m
    return _out(given, dx, np.sum(dy * xhat, axes), np.sum(dy, axes))


def compact(dy, x, gamma, *, eps, axis, bug=""):
    """The compact form dx = γr/m (m·dy − Σdy − x̂·Σ(dy·x̂))."""
    axes, shape, m = _layout(x, axis)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mu = x64.mean(axes, keepdims=True)
    r = 1 / np.sqrt(((x64 - mu) ** 2).mean(axes, keepdims=True) + eps)
    xhat = (x64 - mu) * r
    gamma = np.ones_like(gamma) if bug == "no gamma" else gamma
    sum_dy = dy64.sum(axes, keepdims=True)
    sum_dy_xhat = (dy64 * xhat).sum(axes, keepdims=True)
    third = 0 if bug == "no xhat term" else xhat * sum_dy_xhat
    second = -sum_dy if bug == "sign" else sum_dy
    dx = gamma.reshape(shape) * r / m * (m * dy64 - second - third)
    return _out(x, dx, sum_dy_xhat.reshape(-1), sum_dy.reshape(-1))


def torch_style(dy, x, gamma, *, eps, axis):
    """PyTorch's CPU kernel: dotp, sum, k = dotp·invstd²/n, dx = (dy − sum/n − xc·k)·invstd·w."""
    axes, shape, n = _layout(x, axis)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mean = x64.mean(axes, keepdims=True)
    invstd = 1 / np.sqrt(((x64 - mean) ** 2).mean(axes, keepdims=True) + eps)
    xc = x64 - mean
    dotp = (xc * dy64).sum(axes, keepdims=True)
    total = dy64.sum(axes, keepdims=True)
    k = dotp * invstd**2 / n
    dx = (dy64 - total / n - xc * k) * invstd * gamma.reshape(shape)
    return _out(x, dx, (dotp * invstd).reshape(-1), total.reshape(-1))


def _bug(base: Callable[..., tuple[np.ndarray, ...]], bug: str) -> Callable[..., object]:
    def backward(dy, x, gamma, *, eps, axis):
        return base(dy, x, gamma, eps=eps, axis=axis, bug=bug)
    backward.__name__ = f"{base.__name__}_{bug.replace(' ', '_')}"
    return backward


RIGHT = {"staged (Ioffe & Szegedy)": staged, "compact": compact,
         "PyTorch invstd/k": torch_style}
WRONG = {
    "dy instead of gamma*dy": _bug(compact, "no gamma"),
    "mu and var treated as constants": _bug(staged, "constants"),
    "unbiased instead of biased variance": _bug(staged, "unbiased"),
    "eps outside the sqrt": _bug(staged, "eps outside"),
    "inverse std used as a variance": _bug(staged, "invstd as var"),
    "xhat*sum(dy*xhat) term missing": _bug(compact, "no xhat term"),
    "sign error in one term": _bug(compact, "sign"),
}


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference(symbn.LayerSpec())


# -- the must-shows ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", WRONG)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_wrong_backward_is_rejected(name: str, dtype: str) -> None:
    """Each classic wrong backward fails the check, in float64 and in float32."""
    report = check_backward(WRONG[name], dtype=dtype)
    assert not report.passed
    assert "FAIL" in report.format()


@pytest.mark.parametrize("name", RIGHT)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_right_backward_is_accepted(name: str, dtype: str) -> None:
    """Three right backwards in different styles pass, with no warnings in float64."""
    report = check_backward(RIGHT[name], dtype=dtype)
    assert report.passed, report.format()
    if dtype == "float64":
        assert report.warnings == ()


def test_failure_report_names_input_and_both_values() -> None:
    """The report names, per output, the worst error, the input and analytic/reference values."""
    text = check_backward(WRONG["sign error in one term"]).format()
    assert "dx" in text and "analytic" in text and "reference" in text
    assert "random (8, 4)" in text and "tolerance" in text


def test_a_gradient_off_by_one_part_in_a_million_fails() -> None:
    """A right gradient scaled by 1 + 1e-6 fails in float64 (gradcheck's defaults pass it)."""
    def scaled(dy, x, gamma, *, eps, axis):
        dx, dg, db = compact(dy, x, gamma, eps=eps, axis=axis)
        return dx * (1 + 1e-6), dg, db
    assert not check_backward(scaled).passed


def test_wrong_dgamma_alone_is_caught() -> None:
    """A backward whose dx is right but dgamma is off by 2.001x fails on dgamma."""
    def off(dy, x, gamma, *, eps, axis):
        dx, dg, db = compact(dy, x, gamma, eps=eps, axis=axis)
        return dx, dg * 2.001, db
    report = check_backward(off)
    assert not report.passed
    assert not report.worst()["dgamma"].passed and report.worst()["dx"].passed


@pytest.mark.parametrize("name", RIGHT)
@settings(max_examples=100)
@given(case=cases(hard=True, structured=True, large=64))
def test_no_false_alarm_on_right_code(name: str, case: Case, reference: Reference) -> None:
    """Right backwards pass on hypothesis inputs, hard ones included (default-run size)."""
    result = check_case(RIGHT[name], case, reference=reference)
    assert result.passed, result.explain()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", RIGHT)
@settings(max_examples=2000)
@given(data=st.data())
def test_no_false_alarm_on_right_code_2000_examples(name: str, dtype: str, data: st.DataObject,
                                                    reference: Reference) -> None:
    """>= 2,000 hypothesis examples per right backward and dtype, hard inputs included."""
    case = data.draw(cases(hard=True, structured=True, large=128, dtype=dtype), label="case")
    result = check_case(RIGHT[name], case, reference=reference)
    assert result.passed, result.explain()


@settings(max_examples=50)
@given(case=hard_cases(dtype="float32", large=64))
def test_no_false_alarm_in_float32_hard_inputs(case: Case, reference: Reference) -> None:
    """float32 hard inputs (offset, constant, below eps, near overflow) raise no false alarm."""
    result = check_case(compact, case, reference=reference)
    assert result.passed, result.explain()


# -- tolerances, vacuity, robustness ----------------------------------------------------------

def test_tolerance_follows_the_dtype_and_the_conditioning() -> None:
    """float32 tolerances are 2^29 × float64 ones, and grow with κ and √m."""
    assert tolerance("float32", 16, 1.0) / tolerance("float64", 16, 1.0) == pytest.approx(2**29)
    assert tolerance("float64", 16, 10.0) == pytest.approx(10 * tolerance("float64", 16, 1.0))
    assert tolerance("float64", 100, 1.0) > tolerance("float64", 4, 1.0)


def test_report_states_the_tolerance_it_used() -> None:
    """Each case says its tolerance and how it was derived."""
    report = check_backward(compact)
    assert "tolerance rule" in report.format()
    assert all("u = 1.11e-16 (float64)" in c.tolerance_note for c in report.cases)


def test_uninformative_float32_inputs_are_flagged_not_passed_silently() -> None:
    """float32 at mean offset 1e4 leaves too few digits: a warning says dx was not checked."""
    report = check_backward(compact, dtype="float32")
    assert any("mean offset" in w and "not checked" in w for w in report.warnings)


def test_a_case_too_ill_conditioned_to_judge_says_so(reference: Reference) -> None:
    """float32 x = 1e4 + N(0, 1): dx's tolerance is too loose to judge, so a backward missing
    a term passes that case (its dx is finite); the result says it is not informative, and
    its explanation says dx was checked for finite values only. An ordinary case is."""
    rng = np.random.default_rng(8)
    gamma = np.array([1.5, -0.7, 2.0], np.float32)
    offset = Case((1e4 + rng.standard_normal((64, 3))).astype(np.float32),
                  rng.standard_normal((64, 3)).astype(np.float32), gamma)
    ordinary = Case(rng.standard_normal((64, 3)).astype(np.float32),
                    rng.standard_normal((64, 3)).astype(np.float32), gamma)
    wrong = WRONG["xhat*sum(dy*xhat) term missing"]
    loose = check_case(wrong, offset, reference=reference)
    assert loose.passed and not loose.informative
    assert "uninformative: dx (192 element(s)) checked for finite values only" in loose.explain()
    judged = check_case(wrong, ordinary, reference=reference)
    assert judged.informative and not judged.passed
    assert "uninformative" not in judged.explain()
    right = check_case(compact, offset, reference=reference)
    assert right.passed and not right.informative
    # one channel ill-conditioned, dx wrong there only: the worst element judged is elsewhere,
    # and the result said informative (a review)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    x[:, 0] += np.float32(1e4)
    mixed = Case(x, rng.standard_normal((64, 3)).astype(np.float32), gamma)

    def wrong_in_channel_0(dy, x, gamma, *, eps, axis):
        dx, dgamma, dbeta = compact(dy, x, gamma, eps=eps, axis=axis)
        dx[:, 0] = 0
        return dx, dgamma, dbeta
    partly = check_case(wrong_in_channel_0, mixed, reference=reference)
    assert partly.passed and not partly.informative
    assert "uninformative: dx (64 element(s))" in partly.explain()
    report = check_backward(wrong_in_channel_0, cases=[mixed])
    assert any("dx: 64 element(s) not checked" in w for w in report.warnings)


def _user_case(dy_const: bool = False, gamma_one: bool = False, m: int = 8) -> Case:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(m, 3))
    dy = np.ones_like(x) * np.array([0.3, -1.0, 2.0]) if dy_const else rng.normal(size=x.shape)
    gamma = np.ones(3) if gamma_one else np.array([1.5, -0.7, 2.0])
    return Case(x, dy, gamma, name="user data")


def test_constant_upstream_gradient_is_flagged_as_vacuous() -> None:
    """A user's dy constant along the batch: warned, and mutants survive (dx ≡ 0 for all)."""
    report = check_backward(compact, cases=[_user_case(dy_const=True)])
    assert report.passed
    assert any("dy is constant" in w for w in report.warnings)
    assert any(w.startswith("vacuous") for w in report.warnings)


def test_gamma_one_hides_the_dy_bug_and_is_flagged() -> None:
    """γ ≡ 1 lets 'dy instead of γ·dy' pass: the checker says so."""
    report = check_backward(WRONG["dy instead of gamma*dy"], cases=[_user_case(gamma_one=True)])
    assert report.passed
    assert any("gamma ≡ 1" in w for w in report.warnings)
    assert any("dy used instead of gamma*dy" in w for w in report.warnings)


@pytest.mark.parametrize(("bug", "scale", "m", "survivor"), [
    ("eps outside", 30.0, 64, "eps outside the root"),
    ("unbiased", 1.0, 4096, "the unbiased variance"),
])
def test_inputs_that_hide_eps_placement_or_the_variance_are_flagged(
        bug: str, scale: float, m: int, survivor: str) -> None:
    """ε outside the root moves dx by about ε/σ² of its scale (at a spread of 30, 1e-8; at
    unit spread, 5e-6, as in most float32 data), and at m = 4096 the unbiased variance by
    1e-4: float32 tolerances pass both. Such user inputs passed those wrong backwards with no
    warning (a review); the wrong variant's dx is now a mutant, and its surviving says the
    inputs are too weak."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(m, 4)) * scale).astype(np.float32)
    case = Case(x, rng.normal(size=x.shape).astype(np.float32),
                np.array([1.5, -0.7, 2.0, 0.9], np.float32), name="user data")
    report = check_backward(_bug(staged, bug), cases=[case])
    assert report.passed
    vacuous = [w for w in report.warnings if w.startswith("vacuous")]
    assert any(survivor in w for w in vacuous), report.warnings
    assert not check_backward(_bug(staged, bug), dtype="float32").passed  # symbn's own inputs


def test_batch_of_one_is_flagged() -> None:
    """m = 1 makes dx ≡ 0: warned."""
    report = check_backward(compact, cases=[_user_case(m=1)])
    assert any("m = 1" in w for w in report.warnings)


def test_good_user_data_gets_no_vacuity_warning() -> None:
    """Random dy, γ ≠ 1, m = 8: every mutant of the closed form is caught, no warning."""
    report = check_backward(compact, cases=[_user_case()])
    assert report.passed and report.warnings == ()


@pytest.mark.parametrize("spec", symbn.all_variants(), ids=lambda s: s.describe())
def test_symbns_own_inputs_catch_every_mutant(spec: symbn.LayerSpec) -> None:
    """For every variant, symbn's own inputs tell each mutant of the right dx apart."""
    ref = Reference(spec)
    chosen = default_cases(spec)
    results = [check_case(_reference_backward(ref), c, spec=spec, reference=ref) for c in chosen]
    assert all(r.passed for r in results)
    assert mutants(ref)
    assert surviving_mutants(ref, chosen, 30) == []


def _reference_backward(ref: Reference) -> Callable[..., object]:
    """The reference itself as a backward (float64), to exercise the checker on every variant."""
    import mpmath

    def backward(dy, x, *rest, eps, axis):
        spec = ref.spec
        gamma = rest[0] if spec.affine else None
        stats = rest[1:] if spec.affine else rest
        rm, rv = (stats[0], stats[1]) if spec.mode == "eval" else (None, None)
        moved = np.moveaxis(x, axis, -1)
        x2 = moved.reshape(-1, moved.shape[-1])
        g2 = np.moveaxis(dy, axis, -1).reshape(x2.shape)
        with mpmath.workdps(30):
            grads = ref.gradient(g2, x2, gamma, eps=eps, running_mean=rm, running_var=rv)
        dx = np.moveaxis(grads["x"].astype(float).reshape(moved.shape), -1, axis)
        if not spec.affine:
            return dx
        return dx, grads["gamma"].astype(float), grads["beta"].astype(float)
    return backward


def test_exceptions_and_bad_outputs_are_failures_not_crashes() -> None:
    """A backward that raises, returns the wrong shape or too few outputs: a failing report."""
    def raises(dy, x, gamma, *, eps, axis):
        raise RuntimeError("boom")

    def flat(dy, x, gamma, *, eps, axis):
        dx, dg, db = compact(dy, x, gamma, eps=eps, axis=axis)
        return dx.ravel(), dg, db

    def two(dy, x, gamma, *, eps, axis):
        return compact(dy, x, gamma, eps=eps, axis=axis)[:2]

    def leaves(dy, x, gamma, *, eps, axis):
        import sys
        sys.exit(5)

    for fn, text in ((raises, "raised RuntimeError: boom"), (flat, "shape"),
                     (two, "returned the wrong thing: expected (dx, dgamma, dbeta), got a "
                           "tuple of 2"), (leaves, "raised SystemExit: 5")):
        report = check_backward(fn)
        assert not report.passed
        assert text in report.format()


@pytest.mark.parametrize("changes", ["x", "dy", "gamma"])
def test_a_backward_that_changes_its_input_in_place_fails(changes: str) -> None:
    """Right outputs, but an input changed in place afterwards (or first): a failure naming it.
    It passed every check before a review found it."""
    def after(dy, x, gamma, *, eps, axis):
        out = compact(dy, x, gamma, eps=eps, axis=axis)
        {"x": x, "dy": dy, "gamma": gamma}[changes][...] *= 1 + 2**-20
        return out

    report = check_backward(after)
    assert not report.passed
    assert f"the backward changed its input {changes} in place" in report.format()
    case = default_cases(symbn.LayerSpec())[0]
    kept = case.x.copy()
    assert check_case(compact, case).passed and np.array_equal(case.x, kept)


def test_a_backward_that_squeezes_one_channel_fails() -> None:
    """symbn's own inputs have one channel: a backward squeezing dγ and dβ to shape () there
    fails, naming the shape (it passed every input before a review found it)."""
    def squeezed(dy, x, gamma, *, eps, axis):
        dx, dgamma, dbeta = compact(dy, x, gamma, eps=eps, axis=axis)
        return dx, dgamma.squeeze(), dbeta.squeeze()

    for dtype in ("float64", "float32"):
        report = check_backward(squeezed, dtype=dtype)
        assert not report.passed
        assert [r.case.name for r in report.cases if not r.passed] == ["one channel (12, 1)"]
        assert "shape (), expected (1,)" in report.format()


def test_a_backward_of_another_signature_is_an_option_error() -> None:
    """A backward that cannot take the variant's arguments (``--no-affine`` forgotten, or
    given) is one OptionError naming both signatures, not a failure per input; so is a
    backward that is not a function."""
    def no_affine(dy, x, *, eps, axis):
        return dy

    with pytest.raises(OptionError, match=r"no_affine\(dy, x, \*, eps, axis\) cannot be called "
                       r"as backward\(dy, x, gamma, \*, eps, axis\)"):
        check_backward(no_affine)
    with pytest.raises(OptionError, match=r"cannot be called as backward\(dy, x, \*, eps, axis\)"):
        check_backward(compact, affine=False)
    with pytest.raises(OptionError, match="cannot be called as"):
        check_case(no_affine, default_cases(symbn.LayerSpec())[0])
    for fn in ("layers.py:bn_backward", None):
        with pytest.raises(OptionError, match="not a function"):
            check_backward(fn)  # type: ignore[arg-type]
    assert check_backward(no_affine, affine=False).passed is False  # called: dx = dy is wrong


@settings(max_examples=12, deadline=None, derandomize=True)
@given(case=cases(eps_placement="std", nchw=True))
def test_a_drawn_case_is_checked_as_the_variant_it_was_drawn_for(case: Case) -> None:
    """cases(eps_placement="std") draws std cases: check_case takes the variant from the case
    (a right std backward passed 9 examples in 80, checked as the default variant), and refuses
    to check it as another."""
    spec = symbn.LayerSpec(eps_placement="std")
    assert case.spec == spec
    result = check_case(_codegen().load(spec).backward, case)
    assert result.passed, result.explain()
    with pytest.raises(OptionError, match=r"was made for batchnorm, eps_placement=std.*but is "
                                          r"checked as batchnorm, eps_placement=sqrt"):
        check_case(compact, case, spec=symbn.LayerSpec())


def test_a_reference_of_another_variant_is_refused(reference: Reference) -> None:
    """check_case(reference=...) judged a std case by the default variant's gradient: a sqrt
    backward passed and the right std one failed (a review). A reference of another variant,
    or something else, is an OptionError; one of the variant checked is used."""
    std = symbn.LayerSpec(eps_placement="std")
    case = default_cases(std)[0]
    right = _codegen().load(std).backward
    with pytest.raises(OptionError, match=r"reference is for batchnorm, eps_placement=sqrt.*"
                                          r"checked as batchnorm, eps_placement=std"):
        check_case(compact, case, spec=std, reference=reference)
    with pytest.raises(OptionError, match=r"reference is a LayerSpec, not a symbn\.reference"):
        check_case(right, case, spec=std, reference=std)  # type: ignore[arg-type]
    mixed = Reference(std, reference.derivation)  # a derivation of another variant
    with pytest.raises(OptionError, match="reference is for batchnorm, eps_placement=sqrt"):
        check_case(right, case, spec=std, reference=mixed)
    assert check_case(right, case, spec=std, reference=Reference(std)).passed
    assert not check_case(compact, case, spec=std, reference=Reference(std)).passed


def test_a_sqrt_backward_fails_cases_drawn_for_std() -> None:
    """The converse: the default backward is checked against the std gradient the cases were
    drawn for, and fails most of them (it passed all 80 such examples before; it passes where
    the two agree, as at m = 1, where dx is 0 in both)."""
    verdicts = []

    @settings(max_examples=12, deadline=None, derandomize=True)
    @given(case=cases(eps_placement="std", hard=False))
    def run(case: Case) -> None:
        verdicts.append(check_case(compact, case).passed)
    run()
    assert len(verdicts) >= 10 and verdicts.count(False) > len(verdicts) / 2, verdicts


def test_nan_output_fails() -> None:
    """NaN in dx (e.g. 0/0 at a constant channel) is a failure."""
    def nan(dy, x, gamma, *, eps, axis):
        dx, dg, db = compact(dy, x, gamma, eps=eps, axis=axis)
        dx = dx.copy()
        dx.flat[0] = np.nan
        return dx, dg, db
    assert not check_backward(nan).passed


def _codegen():  # the generated code comes from another issue's module
    if importlib.util.find_spec("symbn.codegen") is None:
        pytest.skip("symbn.codegen is not importable (the code-generation issue is not merged)")
    from symbn import codegen
    return codegen


def test_sys_exit_in_a_target_file_is_an_option_error(tmp_path: Path) -> None:
    """A file that calls sys.exit as it is imported: an OptionError naming it (the checker
    exited with the file's status, 0 with no output: a pass in CI)."""
    (tmp_path / "leaves.py").write_text("import sys\nsys.exit(0)\n", encoding="utf-8")
    with pytest.raises(OptionError, match=r"importing .*leaves\.py failed: SystemExit: 0"):
        load_function(f"{tmp_path / 'leaves.py'}:backward")


@pytest.mark.parametrize("spec", [symbn.LayerSpec(), symbn.LayerSpec(eps_placement="std")],
                         ids=lambda s: s.describe())
def test_generated_code_passes_the_checker(spec: symbn.LayerSpec) -> None:
    """symbn's generated backward (symbn.codegen) passes in float64 (two variants)."""
    codegen = _codegen()
    report = check_backward(codegen.load(spec).backward, spec.layer,
                            eps_placement=spec.eps_placement, variance=spec.variance,
                            affine=spec.affine, mode=spec.mode)
    assert report.passed, report.format()


@pytest.mark.slow
def test_generated_code_passes_the_checker_every_variant() -> None:
    """symbn's generated backward passes in float64 for all 16 variants."""
    codegen = _codegen()
    for spec in symbn.all_variants():
        report = check_backward(codegen.load(spec).backward, spec.layer,
                                eps_placement=spec.eps_placement, variance=spec.variance,
                                affine=spec.affine, mode=spec.mode)
        assert report.passed, report.format()


def test_load_function_reads_files_and_modules(tmp_path: Path) -> None:
    """path.py:fn and module:fn load; a missing file or function is an OptionError."""
    path = tmp_path / "mine.py"
    path.write_text("def bw(dy, x, gamma, *, eps, axis):\n    return 1\n")
    assert load_function(f"{path}:bw").__name__ == "bw"
    assert load_function("symbn.checker:check_backward") is check_backward
    for bad, text in ((f"{path}:nope", "no function 'nope'"),
                      (f"{tmp_path}/missing.py:bw", "there is no file"),
                      ("no_such_module_xyz:f", "cannot import module"),
                      ("just_a_name", "path/to/file.py:function")):
        with pytest.raises(OptionError, match=text):
            load_function(bad)


def test_unknown_dtype_is_refused() -> None:
    """dtype must be float64 or float32, and the error says so; given as a name, a NumPy dtype
    or a NumPy scalar type (np.float32 was refused while np.dtype("float32") was taken)."""
    with pytest.raises(OptionError, match="float64"):
        check_backward(compact, dtype="float16")
    with pytest.raises(OptionError, match="float64"):
        check_backward(compact, dtype=np.float16)  # type: ignore[arg-type]
    for dtype in ("float32", np.dtype("float32"), np.float32):
        report = check_backward(compact, dtype=dtype)  # type: ignore[arg-type]
        assert report.passed and report.dtype == "float32"


def test_a_spec_that_is_not_a_layer_spec_is_an_option_error() -> None:
    """check_case(spec="std"): an OptionError naming it (an AttributeError from inside)."""
    with pytest.raises(OptionError, match=r"spec='std' is not allowed; give a symbn\.LayerSpec"):
        check_case(compact, default_cases(symbn.LayerSpec())[0], spec="std")  # type: ignore[arg-type]


# -- the command line -------------------------------------------------------------------------

RIGHT_FILE = '''\
import numpy as np


def backward(dy, x, gamma, *, eps, axis):
    mu, var = x.mean(0), x.var(0)
    r = 1 / np.sqrt(var + eps)
    xhat, m = (x - mu) * r, x.shape[0]
    dx = gamma * r / m * (m * dy - dy.sum(0) - xhat * (dy * xhat).sum(0))
    return dx, (dy * xhat).sum(0), dy.sum(0)


def forgot_gamma(dy, x, gamma, *, eps, axis):
    dx, dgamma, dbeta = backward(dy, x, gamma, eps=eps, axis=axis)
    return dx / gamma, dgamma, dbeta
'''


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `symbn ARGS` (adding the check command if the lead has not wired it in yet)."""
    from symbn import cli as cli_module
    from symbn.commands import check
    if check not in cli_module.COMMANDS:
        monkeypatch.setattr(cli_module, "COMMANDS", (*cli_module.COMMANDS, check))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_module.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_check_command_names_the_input_a_2d_only_backward_fails_on(tmp_path: Path, cli) -> None:
    """`symbn check file.py:fn`: a right but (m, D)-only backward fails only on NCHW inputs."""
    path = tmp_path / "mine.py"
    path.write_text(RIGHT_FILE)
    code, out, _ = cli("check", f"{path}:backward", "--layer", "batchnorm")
    # The file only handles (m, D) with axis=-1: symbn's NCHW input (axis=1) fails, by name.
    assert code == 1 and "NCHW" in out
    assert "random (8, 4)" not in out.split("failures:")[1]


def test_check_command_fails_wrong_code_with_values(tmp_path: Path, cli) -> None:
    """Exit 1 and the analytic/reference values for a backward that drops γ."""
    path = tmp_path / "mine.py"
    path.write_text(RIGHT_FILE)
    code, out, _ = cli("check", f"{path}:forgot_gamma", "--layer", "batchnorm")
    assert code == 1 and "FAIL" in out and "analytic" in out and "reference" in out


def test_check_command_passes_and_exits_zero(cli) -> None:
    """Exit 0 and PASS for a right backward that handles any axis."""
    code, out, _ = cli("check", f"{Path(__file__).resolve()}:compact", "--dtype", "float32")
    assert code == 0 and "PASS" in out


@pytest.mark.parametrize("target", ["missing/file.py:fn", f"{Path(__file__).resolve()}:nope",
                                    "no_such_module_xyz:f"])
def test_check_command_bad_target_is_one_line_exit_2(target: str, cli) -> None:
    """A bad path, module or function name: one line on stderr, exit status 2."""
    code, out, err = cli("check", target)
    assert code == 2 and out == "" and err.count("\n") == 1 and "target" in err


# -- bad outputs, bad options, bad inputs ------------------------------------------------------

def _returning(change: Callable[[np.ndarray], object]) -> Callable[..., object]:
    def backward(dy, x, gamma, *, eps, axis):
        dx, dg, db = compact(dy, x, gamma, eps=eps, axis=axis)
        return change(dx), dg, db
    return backward


@pytest.mark.parametrize(("change", "dtype", "text"), [
    (lambda dx: dx + 1e3j, "float64", "dtype complex128 (not real floats)"),
    (lambda dx: dx.astype(np.complex128), "float64", "dtype complex128"),
    (lambda dx: dx.tolist(), "float64", "a list; expected a NumPy array of float64"),
    (lambda dx: dx.astype(np.float32), "float64", "dtype float32; expected a NumPy array of "
                                                  "float64, the dtype of x"),
    (lambda dx: dx.astype(np.int64), "float64", "dtype int64 (not real floats)"),
    (lambda dx: np.ma.masked_array(np.zeros_like(dx), True), "float64", "a MaskedArray"),
], ids=["complex", "complex, zero imaginary part", "list", "float32 for float64", "integers",
        "masked zeros"])
def test_outputs_that_break_the_generated_codes_contract_fail(change, dtype: str,
                                                              text: str) -> None:
    """dx complex, a list, integers or narrower than x: FAIL, and the report says why (not an
    "analytic nan reference nan" line)."""
    report = check_backward(_returning(change), dtype=dtype)
    assert not report.passed and not report.worst()["dx"].passed
    assert f"dx: FAIL, {text}" in report.format()
    assert "analytic nan" not in report.format()


def test_a_wider_float_result_is_compared_not_failed() -> None:
    """A right backward that computes and returns float64 for float32 inputs passes, compared
    at float32's tolerance; the same result off by 1e-3 fails."""
    assert check_backward(_returning(lambda dx: dx.astype(np.float64)), dtype="float32").passed
    wrong = _returning(lambda dx: dx.astype(np.float64) * (1 + 1e-3))
    assert not check_backward(wrong, dtype="float32").passed


def test_dps_above_a_thousand_is_refused() -> None:
    """dps at most 1000 (--dps 100000 ran past 300 s; 1000 takes about 2 s in symbn verify)."""
    with pytest.raises(OptionError, match=r"dps=100000 is not allowed; use at most 1000 digits"):
        check_backward(compact, dps=100000)
    assert check_case(compact, default_cases(symbn.LayerSpec())[0], dps=1000).passed


@pytest.mark.parametrize("dps", [10, 19, 0, -5, 25.0, True, "30"])
def test_dps_below_twenty_is_refused(dps: object) -> None:
    """dps must be a whole number >= 20, the rule of `symbn verify --dps`."""
    with pytest.raises(OptionError, match=r"dps=.* is not allowed; use at least 20 digits"):
        check_backward(compact, dps=dps)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="at least 20 digits"):
        check_case(compact, default_cases(symbn.LayerSpec())[0], dps=dps)  # type: ignore[arg-type]


def test_dps_twenty_passes_a_right_backward() -> None:
    """At the least precision allowed, a right backward still passes."""
    assert check_backward(compact, dps=20).passed


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True, None])
def test_bad_seed_is_refused(seed: object) -> None:
    """seed must be a whole number >= 0; the error names the value."""
    with pytest.raises(OptionError, match=r"seed=.* is not allowed; use a whole number >= 0"):
        check_backward(compact, seed=seed)  # type: ignore[arg-type]


def test_bad_dtype_is_refused_even_with_user_cases() -> None:
    """dtype is checked whether or not cases are given."""
    with pytest.raises(OptionError, match="dtype='float16'"):
        check_backward(compact, dtype="float16", cases=[_user_case()])


def _replace(case: Case, **changes: object) -> Case:
    import dataclasses
    return dataclasses.replace(case, **changes)  # type: ignore[arg-type]


_GOOD = _user_case()
_EVAL = symbn.LayerSpec(mode="eval")
BAD_CASES = {
    "eps < 0": (_replace(_GOOD, eps=-1), None, r"cases\[0\].eps=-1 is not allowed; use a "
                                               "finite real number > 0"),
    "eps = 0": (_replace(_GOOD, eps=0.0), None, "eps=0.0 is not allowed"),
    "eps nan": (_replace(_GOOD, eps=float("nan")), None, "eps=nan is not allowed"),
    "eps inf": (_replace(_GOOD, eps=float("inf")), None, "eps=inf is not allowed"),
    "eps a string": (_replace(_GOOD, eps="1e-5"), None, "eps='1e-5' is not allowed"),
    "axis out of range": (_replace(_GOOD, axis=5), None,
                          r"axis=5 is not allowed; x has shape \(8, 3\): use an integer -2 <= "
                          "axis < 2"),
    "axis a float": (_replace(_GOOD, axis=1.0), None, "axis=1.0 is not allowed"),
    "complex x": (_replace(_GOOD, x=_GOOD.x + 1j), None, "x.dtype='complex128' is not allowed; "
                                                         "use float64 or float32"),
    "float16 x": (_replace(_GOOD, x=_GOOD.x.astype(np.float16)), None, "x.dtype='float16'"),
    "x a list": (_replace(_GOOD, x=_GOOD.x.tolist()), None, "x is a list, not a NumPy array"),
    "nan in x": (_replace(_GOOD, x=np.full((8, 3), np.nan)), None, "x holds NaN or inf"),
    "dy of another dtype": (_replace(_GOOD, dy=_GOOD.dy.astype(np.float32)), None,
                            "dy.dtype='float32' is not allowed; use float64"),
    "dy of another shape": (_replace(_GOOD, dy=_GOOD.dy[:4]), None, r"dy.shape=\(4, 3\)"),
    "gamma omitted (affine)": (_replace(_GOOD, gamma=None), None,
                               r"cases\[0\].gamma is missing: .*affine.* shape \(3,\)"),
    "gamma of the wrong length": (_replace(_GOOD, gamma=np.ones(2) * 2), None,
                                  r"gamma.shape=\(2,\) is not allowed; use one value per channel"),
    "running stats omitted (eval)": (_GOOD, _EVAL, "running_mean is missing"),
    "negative running_var": (_replace(_GOOD, running_mean=np.zeros(3),
                                      running_var=np.array([1.0, -1.0, 2.0])), _EVAL,
                             "running_var holds -1.0; variances are >= 0"),
    "not a Case": ((_GOOD.x, _GOOD.dy, _GOOD.gamma), None,
                   r"cases\[0\] is a tuple, not a symbn.checker.Case"),
}


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_user_cases_are_refused_naming_the_value(name: str) -> None:
    """A bad field of a user's Case: OptionError naming it and what is allowed, fn not called."""
    case, spec, text = BAD_CASES[name]
    spec = spec or symbn.LayerSpec()
    called = []

    def spy(*args, **kwargs):
        called.append(1)
        raise AssertionError("the backward must not be called on a bad case")

    with pytest.raises(OptionError, match=text):
        check_backward(spy, mode=spec.mode, cases=[case])
    if isinstance(case, Case):
        with pytest.raises(OptionError, match=text.replace(r"cases\[0\]", "case")):
            check_case(spy, case, spec=spec)
    assert called == []


def test_a_single_case_instead_of_a_list_is_refused() -> None:
    """cases=Case(...) (not a list) says to give a list."""
    with pytest.raises(OptionError, match="give a list of Case"):
        check_backward(compact, cases=_GOOD)  # type: ignore[arg-type]


def test_a_backward_that_raises_does_not_make_good_inputs_look_vacuous() -> None:
    """Vacuity is about the inputs alone: a raising backward on good inputs gets no warning."""
    def raises(dy, x, gamma, *, eps, axis):
        raise RuntimeError("boom")
    report = check_backward(raises, cases=[_user_case()])
    assert not report.passed and "RuntimeError: boom" in report.format()
    assert report.warnings == ()
    weak = check_backward(raises, cases=[_user_case(dy_const=True)])
    assert any(w.startswith("vacuous") for w in weak.warnings)


def test_check_command_bad_seed_is_one_line_exit_2(cli) -> None:
    """`symbn check … --seed -1`: one line naming --seed on stderr, exit status 2."""
    code, out, err = cli("check", f"{Path(__file__).resolve()}:compact", "--seed", "-1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--seed=-1 is not allowed; use a whole number >= 0" in err


@pytest.mark.parametrize(("dtype", "offset", "factor"), [("float32", 1e3, 1.01),
                                                        ("float64", 1e3, 1 + 1e-12),
                                                        ("float64", 1e6, 1 + 1e-9)])
def test_eval_mode_dx_is_judged_without_trainings_conditioning(dtype, offset, factor):
    """Eval mode: dx = γ·r·dy forms neither x − μ nor x̂, so its κ is 1. With training's κ a
    float32 dx 1% wrong passed at a mean offset of 1e3, and a float64 one 1e-9 wrong at 1e6
    (a review); a right one passes."""
    from symbn.codegen import load

    right = load(symbn.LayerSpec(mode="eval")).backward

    def scaled(dy, x, gamma, running_mean, running_var, *, eps, axis):
        dx, dgamma, dbeta = right(dy, x, gamma, running_mean, running_var, eps=eps, axis=axis)
        return (dx * x.dtype.type(factor)).astype(x.dtype), dgamma, dbeta

    rng = np.random.default_rng(0)
    m, channels = 64, 3
    case = Case((offset + rng.normal(size=(m, channels))).astype(dtype),
                rng.normal(size=(m, channels)).astype(dtype),
                gamma=rng.uniform(0.5, 2, channels).astype(dtype),
                running_mean=np.full(channels, offset, dtype),
                running_var=rng.uniform(0.5, 2, channels).astype(dtype), name="mean offset")
    assert check_backward(right, mode="eval", cases=[case]).passed
    report = check_backward(scaled, mode="eval", cases=[case])
    assert not report.passed and "dx" in report.format()


def test_user_cases_from_the_python_api_review() -> None:
    """Found by a review of the Python API, each failing before: a Fraction ε crashed
    explain() (format 'g'); an unbiased case of m = 1 was refused by the reference unnamed,
    after earlier cases had run; a masked x was checked with its masked values; a 0-d array
    ε (which the generated code takes) was refused; ``case in [case]`` raised (arrays
    compared elementwise)."""
    from fractions import Fraction

    calls = []

    def counting(dy, x, gamma, *, eps, axis):
        calls.append(1)
        return compact(dy, x, gamma, eps=float(eps), axis=axis, bug="sign")
    rng = np.random.default_rng(3)
    x, dy, gamma = rng.normal(size=(8, 2)), rng.normal(size=(8, 2)), np.array([1.5, -0.5])
    failing = check_backward(counting, cases=[Case(x, dy, gamma, eps=Fraction(1, 100000))])
    assert not failing.passed and "eps=1e-05" in failing.cases[0].explain()
    assert "eps=1e-05" in str(failing)
    calls.clear()
    with pytest.raises(OptionError, match=r"cases\[1\]\.x\.shape=\(1, 2\) is not allowed; "
                                          r"batchnorm, eps_placement=sqrt, variance=unbiased"):
        check_backward(counting, variance="unbiased",
                       cases=[Case(x, dy, gamma), Case(x[:1], dy[:1], gamma)])
    assert calls == []  # refused before the backward ran
    masked = np.ma.masked_array(x, mask=np.arange(16).reshape(8, 2) == 3)
    with pytest.raises(OptionError, match=r"cases\[0\]\.x is a masked array with masked"):
        check_backward(compact, cases=[Case(masked, dy, gamma)])
    assert check_backward(compact, cases=[Case(x, dy, gamma, eps=np.array(1e-3))]).passed
    case = Case(x, dy, gamma)
    assert case in [case] and case != Case(x, dy, gamma) and len({case, case}) == 1


def test_check_backward_takes_the_variant_as_a_spec() -> None:
    """check_case takes spec=, check_backward did not, and check_backward(fn, LayerSpec())
    said "layer=LayerSpec(...) is not allowed" (a review): spec= is taken, and the message
    points at it."""
    std = symbn.LayerSpec(eps_placement="std")
    assert check_backward(_codegen().load(std).backward, spec=std).passed
    assert not check_backward(compact, spec=std).passed
    with pytest.raises(OptionError, match=r"give a LayerSpec as spec=LayerSpec"):
        check_backward(compact, std)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="either as spec=LayerSpec"):
        check_backward(compact, spec=std, variance="unbiased")
    with pytest.raises(OptionError, match="spec='std' is not allowed"):
        check_backward(compact, spec="std")  # type: ignore[arg-type]


def test_checks_in_threads_leave_mpmath_as_they_found_it() -> None:
    """mpmath's precision is one for the process: four checks at once, each putting back
    what it found (another's precision), left mp.dps at 30 or 60 after all had finished,
    started at 15 (a review). symbn's precision blocks take one lock."""
    import threading

    import mpmath

    mpmath.mp.dps = 15
    verdicts: list[bool] = []

    def run(dps: int) -> None:
        verdicts.append(check_backward(compact, dps=dps).passed)
    threads = [threading.Thread(target=run, args=(dps,)) for dps in (20, 60, 100, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verdicts == [True] * 4
    assert mpmath.mp.dps == 15


def test_the_eps_placement_warning_says_what_input_tells_them_apart() -> None:
    """float32 data of unit spread with ε = 1e-5 cannot tell where ε goes (the two dx differ
    by about ε/σ², within float32's tolerance): every such user input is warned, so the
    warning says what to add, and adding it (ε = 0.5) silences it."""
    rng = np.random.default_rng(0)
    x, dy = (rng.normal(size=(64, 4)).astype(np.float32) for _ in range(2))
    gamma = np.array([1.5, -0.7, 2.0, 0.9], np.float32)
    weak = check_backward(compact, cases=[Case(x, dy, gamma)])
    assert weak.passed and len(weak.warnings) == 1
    assert "eps outside the root" in weak.warnings[0] and "eps = 0.5" in weak.warnings[0]
    both = check_backward(compact, cases=[Case(x, dy, gamma), Case(x, dy, gamma, eps=0.5)])
    assert both.passed and both.warnings == ()


# -- the tolerance's edges (an audit: loosening any of these passed every test) ----------------

def _shifted_backward(ref: Reference, case: Case, fraction: float,
                      channel: int | None = None) -> Callable[..., object]:
    """The reference's gradient, dx moved by ``fraction`` of each channel's tolerance on the
    measure the checker uses (|a − ref| / (|ref| + scale)); float64 results, which a float32
    case takes at float32's tolerance, so that no rounding moves the edge."""
    from symbn.check_truth import case_truth, tolerance

    truth = case_truth(ref, case, 30)
    tol = tolerance(case.x.dtype, truth.m, truth.kappas["x"])
    dx = truth.grads["x"]
    step = fraction * tol * (np.abs(dx) + truth.scales["x"])
    if channel is not None:
        step[..., [c for c in range(dx.shape[-1]) if c != channel]] = 0.0
    moved = dx + step

    def backward(dy, x, gamma, *, eps, axis):
        return moved, truth.grads["gamma"], truth.grads["beta"]
    return backward


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_tolerance_is_the_edge_of_the_verdict(reference: Reference, dtype: type) -> None:
    """A dx half a tolerance off passes; twice a tolerance off fails (a tolerance 10 times
    looser passed every test)."""
    rng = np.random.default_rng(11)
    case = Case(rng.normal(size=(32, 3)).astype(dtype), rng.normal(size=(32, 3)).astype(dtype),
                np.array([1.5, -0.7, 2.0], dtype))
    assert check_case(_shifted_backward(reference, case, 0.5), case).passed
    failed = check_case(_shifted_backward(reference, case, 2.0), case)
    assert not failed.passed and failed.outputs[0].error / failed.outputs[0].tolerance > 1.5


def test_each_channel_is_judged_on_its_own_scale(reference: Reference) -> None:
    """A dx wrong by 1e-6 of its scale in the channel of γ = 1e-8 alone fails: judged against
    the other channel's scale (1e8 times larger) it passed (an audit's mutation)."""
    rng = np.random.default_rng(12)
    case = Case(rng.normal(size=(32, 2)), rng.normal(size=(32, 2)), np.array([1e-8, 1.0]))
    assert check_case(_shifted_backward(reference, case, 0.5), case).passed
    from symbn.check_truth import case_truth
    truth = case_truth(reference, case, 30)
    dx = truth.grads["x"].copy()
    dx[:, 0] *= 1 + 1e-6
    result = check_case(lambda dy, x, gamma, *, eps, axis: (dx, truth.grads["gamma"],
                                                             truth.grads["beta"]), case)
    assert not result.passed and result.outputs[0].index[-1] == 0


def test_float32_at_an_offset_of_1e3_is_still_judged() -> None:
    """float32 at a mean offset of 1e3 has a dx tolerance near 0.04, below the 0.05 where the
    checker stops judging: a backward missing the x̂·Σ(dy·x̂) term fails there, judged (with
    the line at 0.005 it passed, uninformative; an audit)."""
    rng = np.random.default_rng(13)
    x = (1e3 + rng.normal(size=(64, 3))).astype(np.float32)
    case = Case(x, rng.normal(size=x.shape).astype(np.float32),
                np.array([1.5, -0.7, 2.0], np.float32))
    result = check_case(WRONG["xhat*sum(dy*xhat) term missing"], case)
    dx = result.outputs[0]
    assert not result.passed and result.informative and dx.informative
    assert 0.005 < dx.tolerance < 0.05
