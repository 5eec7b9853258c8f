"""Check anyone's backward function against symbn's proven gradient.

The function under test has the signature of symbn's generated code::

    backward(dy, x, gamma, *, eps, axis) -> (dx, dgamma, dbeta)

``axis`` is the channel axis (statistics reduce over every other axis); in eval mode
``running_mean, running_var`` follow ``gamma``; without affine there is no ``gamma`` and the
function returns ``dx`` alone. Each input is compared with the mpmath reference
(:class:`symbn.reference.Reference`), output by output, with a tolerance derived from the
dtype and the conditioning of that input (see :func:`tolerance`) and reported with it. As
in the generated code, each output is a NumPy array of real floats in the dtype of x (or a
wider float: float64 for float32 inputs is compared at float32's tolerance); a list, complex
values, integers or a narrower dtype fail the check, saying why.

Vacuity: a check that cannot tell right from wrong is flagged. symbn's own inputs use random
upstream gradients and γ ≠ 1; for inputs a user supplies, :func:`check_backward` warns about
degenerate data (m = 1, an upstream gradient constant along the batch, γ ≡ 1) and runs
*mutants* of the proven closed form (a term dropped, a sign flipped, γ left out, the batch
statistics held constant, ε on the other side of the root, the other variance): a mutant that
passes on every input means the inputs are too weak.

>>> import numpy as np
>>> def backward(dy, x, gamma, *, eps, axis):
...     mu, var = x.mean(axis=0), x.var(axis=0)
...     r = 1 / np.sqrt(var + eps)
...     xhat = (x - mu) * r
...     m = x.shape[0]
...     dx = gamma * r / m * (m * dy - dy.sum(0) - xhat * (dy * xhat).sum(0))
...     return dx, (dy * xhat).sum(0), dy.sum(0)
>>> check_backward(backward, cases=[default_cases(LayerSpec())[0]]).passed
True
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from symbn.api import checked_derivation
from symbn.cases import (
    DTYPES,
    Case,
    DTypeLike,
    check_dtype,
    check_seed,
    default_cases,
    parameter_names,
    signature,
    validate_case,
)
from symbn.check_report import UNINFORMATIVE, CaseResult, CheckReport, OutputCheck
from symbn.check_truth import SUBNORMAL_SPACINGS, TOLERANCE_RULE, Truth, case_truth, tolerance
from symbn.errors import OptionError
from symbn.fd import check_dps
from symbn.reference import Reference
from symbn.spec import EpsPlacement, LayerSpec, Mode, Variance, checked_spec
from symbn.targets import load_function
from symbn.vacuity import degenerate_data_warnings, surviving_mutants

__all__ = [
    "DTYPES",
    "UNINFORMATIVE",
    "Case",
    "CaseResult",
    "CheckReport",
    "OutputCheck",
    "check_backward",
    "check_case",
    "check_signature",
    "default_cases",
    "load_function",
    "tolerance",
]

def _per_element(case: Case, per_channel: np.ndarray, like: np.ndarray, w: str) -> np.ndarray:
    if w != "x":
        return per_channel
    layout = np.moveaxis(like, case.axis, -1).shape
    return np.moveaxis(np.broadcast_to(per_channel, layout), -1, case.axis)


def _compare(name: str, case: Case, analytic: Any, truth: Truth, w: str,
             dtype: np.dtype) -> OutputCheck:
    ref = truth.grads[w]
    tol_c = tolerance(dtype, truth.m, truth.kappas[w])
    wrong = _contract_violation(analytic, dtype, ref.shape)
    if wrong:
        return OutputCheck(name, case.name, math.inf, float(tol_c.min()), note=wrong,
                           valid=False)
    a = analytic.astype(np.float64)
    scale = _per_element(case, truth.scales[w], ref, w)
    tol = _per_element(case, tol_c, ref, w)
    with np.errstate(all="ignore"):
        denom = np.abs(ref) + scale
        # Results in the subnormal range carry an absolute error of a few spacings.
        floor = SUBNORMAL_SPACINGS * float(np.finfo(dtype).smallest_subnormal)
        diff = np.maximum(np.abs(a - ref) - floor, 0.0)
        diff = np.where(np.isnan(diff), np.inf, diff)
        err = np.where(diff == 0, 0.0, diff / np.where(denom > 0, denom, np.inf))
        err = np.where((denom == 0) & (diff > 0), np.inf, err)
        err = np.where(np.isfinite(a), err, np.inf)
        informative = tol < UNINFORMATIVE
        ratio = np.where(informative, err / tol, np.where(np.isfinite(a), -1.0, np.inf))
    if not ratio.size:
        return OutputCheck(name, case.name, 0.0, float(tol_c.min()))
    idx = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    unjudged = int((~informative).sum())
    note = f"{unjudged} element(s) in channels too ill-conditioned to check" if unjudged else ""
    return OutputCheck(name, case.name, float(err[idx]), float(tol[idx]),
                       tuple(int(k) for k in idx), float(a[idx]), float(ref[idx]), note,
                       unjudged=unjudged)


def _not_checked(o: OutputCheck, dtype: np.dtype) -> str:
    """The warning for an output checked for finite values only, in all or some channels."""
    if not o.informative:
        return (f"{o.case}: {o.output} not checked: tolerance {o.tolerance:.2g} is too loose "
                f"for {dtype} on this input")
    return (f"{o.case}: {o.output}: {o.unjudged} element(s) not checked: their channels' "
            f"tolerance is too loose for {dtype} on this input")


def _contract_violation(analytic: Any, dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """Why an output cannot be compared, or ``""`` when it can.

    Each output is a NumPy array of real floats at least as wide as x's dtype (the generated
    code keeps x's dtype; float64 for float32 inputs is compared at float32's tolerance),
    shaped like x (dx) or with one value per channel (dgamma, dbeta). A list fails (even of
    the right numbers), so do a masked array (whose masked elements a comparison would take as
    right), complex values (whose imaginary part it would drop), integers and a narrower dtype.
    """
    contract = f"expected a NumPy array of {dtype}, the dtype of x, as symbn's generated code " \
               "returns"
    if not isinstance(analytic, np.ndarray) or isinstance(analytic, np.ma.MaskedArray):
        return f"a {type(analytic).__name__}; {contract}"
    if analytic.dtype.kind != "f" or analytic.dtype.itemsize < dtype.itemsize:
        real = "" if analytic.dtype.kind == "f" else " (not real floats)"
        return f"dtype {analytic.dtype}{real}; {contract}"
    if analytic.shape != shape:
        return f"shape {analytic.shape}, expected {shape}"
    return ""


def _outputs(spec: LayerSpec, result: Any) -> dict[str, Any]:
    if spec.affine:
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise TypeError(f"expected (dx, dgamma, dbeta), got {_kind(result)}")
        return dict(zip(("x", "gamma", "beta"), result, strict=True))
    if isinstance(result, (tuple, list)):
        if len(result) != 1:
            raise TypeError(f"without affine the backward returns dx alone, got {_kind(result)}")
        result = result[0]
    return {"x": result}


def _kind(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


OUTPUT_NAMES = {"x": "dx", "gamma": "dgamma", "beta": "dbeta"}


def check_case(fn: Callable[..., Any], case: Case, *, spec: LayerSpec | None = None,
               dps: int = 30, reference: Reference | None = None) -> CaseResult:
    """Run ``fn`` on one case and compare each output with the reference.

    The variant is ``spec``, else the case's own (:attr:`Case.spec`, which the strategies
    set), else the default :class:`LayerSpec`; a case made for another variant than ``spec`` is
    an :class:`OptionError` (it was checked as the default variant, silently). ``case`` must
    pass :func:`symbn.cases.validate_case`, ``fn`` take its arguments
    (:func:`_callable_as_backward`) and ``dps`` pass :func:`symbn.fd.check_dps` (an
    :class:`OptionError` otherwise). Each output must be a NumPy array of real floats in the
    dtype of x or wider (see :func:`_contract_violation`); any other output is a failure, not
    an error.

    >>> import numpy as np
    >>> case = default_cases(LayerSpec(mode="eval", affine=False))[0]
    >>> def wrong(dy, x, running_mean, running_var, *, eps, axis):
    ...     return dy / np.sqrt(running_var)          # ε left out
    >>> check_case(wrong, case, spec=LayerSpec(mode="eval", affine=False)).passed
    False
    """
    spec = checked_spec(spec or getattr(case, "spec", None) or LayerSpec())
    validate_case(case, spec)
    _callable_as_backward(fn, spec, case)
    return _run_case(fn, case, spec, check_dps(dps), _checked_reference(reference, spec))


def _checked_reference(reference: Any, spec: LayerSpec) -> Reference:
    """``reference`` (a new one if None) if it is a :class:`Reference` for ``spec``.

    A reference of another variant judged the case as that variant: a backward with ε outside
    the root passed as the standard one, and the right one failed (a review).
    """
    if reference is None:
        return Reference(spec)
    if not isinstance(reference, Reference):
        raise OptionError(f"reference is a {type(reference).__name__}, not a "
                          "symbn.reference.Reference; give Reference(spec) or leave it out")
    for made_for in {reference.spec, checked_derivation(reference.derivation).spec}:
        if made_for != spec:
            raise OptionError(f"reference is for {made_for.describe()}, but the case is checked "
                              f"as {spec.describe()}: give Reference(spec) of the variant "
                              "checked, or leave it out")
    return reference


def check_signature(fn: Any, spec: LayerSpec) -> None:
    """An :class:`OptionError` where ``fn`` cannot be called as ``spec``'s backward.

    What :func:`check_backward` checks before it runs a case; ``symbn testgen`` checks it too,
    so that it does not write tests that fail on every input with the same error.

    >>> def backward(dy, x, gamma, *, eps, axis): ...
    >>> check_signature(backward, LayerSpec(mode="eval"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: backward(dy, x, gamma, *, eps, axis) cannot be called as ...
    """
    _callable_as_backward(fn, checked_spec(spec), default_cases(checked_spec(spec))[0])


def _callable_as_backward(fn: Any, spec: LayerSpec, case: Case) -> None:
    """An :class:`OptionError` where ``fn`` cannot be called as ``spec``'s backward.

    Not a failing report: a backward of another variant (``--no-affine`` forgotten) failed
    every case with the same TypeError, which read as a wrong gradient. A callable without a
    signature to read (some built-ins) is let through, to be called.
    """
    if not callable(fn):
        raise OptionError(f"the backward is a {type(fn).__name__}, not a function; give a "
                          f"function {signature(spec)}")
    try:
        parameters = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        parameters.bind(*case.arguments(spec), eps=case.eps, axis=case.axis)
    except TypeError as error:
        name = getattr(fn, "__qualname__", type(fn).__name__)
        raise OptionError(f"{name}{parameters} cannot be called as {signature(spec)} "
                          f"({spec.describe()}): {error}") from None


def _run_case(fn: Callable[..., Any], case: Case, spec: LayerSpec, dps: int,
              ref: Reference) -> CaseResult:
    """:func:`check_case` on a case and options already validated.

    The backward fails where it raises (SystemExit too: ``sys.exit`` in it is its failure, not
    the checker's exit status), returns what its variant does not, or changes an input in place
    (the caller's arrays are not the backward's to change, and the reference was made from
    them before).
    """
    truth = case_truth(ref, case, dps)
    dtype = case.x.dtype
    kappa = max(float(k.max()) for k in truth.kappas.values())
    note = f"16·u·κ·(1+√m) with u = {np.finfo(dtype).eps / 2:.3g} ({dtype}), " \
           f"m = {truth.m}, largest κ = {kappa:.3g}"
    given = case.arguments(spec)
    before = [np.array(a, copy=True) for a in given]
    try:
        with np.errstate(all="ignore"):     # overflow or 0/0 shows up in the comparison
            result = fn(*given, eps=case.eps, axis=case.axis)
    except (Exception, SystemExit) as error:
        return CaseResult(case, (), f"the backward raised {type(error).__name__}: {error}", note)
    changed = [n for n, a, b in zip(parameter_names(spec), given, before, strict=True)
               if not (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b))]
    if changed:
        return CaseResult(case, (), f"the backward changed its input {', '.join(changed)} in "
                          "place; it must leave its arguments as they are", note)
    try:
        outputs = _outputs(spec, result)
    except TypeError as error:
        return CaseResult(case, (), f"the backward returned the wrong thing: {error}", note)
    checks = tuple(_compare(OUTPUT_NAMES[w], case, outputs[w], truth, w, dtype)
                   for w in outputs)
    return CaseResult(case, checks, "", note)


# -- the user-facing check --------------------------------------------------------------------

def check_backward(fn: Callable[..., Any], layer: str = "batchnorm", *,
                   eps_placement: EpsPlacement = "sqrt", variance: Variance = "biased",
                   affine: bool = True, mode: Mode = "train", dtype: DTypeLike = "float64",
                   cases: Iterable[Case] | None = None, seed: int = 0,
                   dps: int = 30, spec: LayerSpec | None = None) -> CheckReport:
    """Check a backward function against symbn's proven gradient.

    Parameters
    ----------
    fn
        ``fn(dy, x, gamma, *, eps, axis) -> (dx, dgamma, dbeta)`` (see the module docstring
        for eval mode and ``affine=False``).
    layer, eps_placement, variance, affine, mode
        The variant ``fn`` implements (as in :class:`symbn.LayerSpec`).
    spec
        The variant as a :class:`symbn.LayerSpec` instead (as :func:`check_case` takes it);
        not with any of the five above.
    dtype
        ``"float64"`` or ``"float32"`` (or NumPy's float32, float64): the dtype of symbn's
        inputs (unused with ``cases``, whose x carries its dtype). The backward's outputs are
        real floats in the dtype of x or wider.
    cases
        Inputs to use instead of symbn's own (:func:`default_cases`), each a :class:`Case`
        that passes :func:`symbn.cases.validate_case`; degenerate ones are warned about, and
        so is a set of inputs on which a mutant of the right gradient passes.
    seed
        Seed of symbn's own inputs: a whole number >= 0.
    dps
        Digits of the mpmath reference: at least 20 (:func:`symbn.fd.check_dps`).

    Raises
    ------
    OptionError
        For a bad option or input, before the backward is called; a backward that raises or
        returns the wrong thing gives a failing report instead.

    Returns
    -------
    CheckReport
        ``report.passed``, per output the worst relative error with the input, both values and
        the tolerance used; ``print(report)`` shows the table.

    """
    spec = _variant(spec, layer, eps_placement, variance, affine, mode)
    dtype, seed, dps = check_dtype(dtype), check_seed(seed), check_dps(dps)
    own = cases is None
    if isinstance(cases, Case) or not (own or isinstance(cases, Iterable)):
        raise OptionError(f"cases is a {type(cases).__name__}; give a list of Case, such as "
                          "cases=[Case(x, dy, gamma)]")
    chosen = tuple(default_cases(spec, dtype, seed) if cases is None else cases)
    if not chosen:
        raise OptionError.bad_value("cases", [], "give at least one Case")
    for k, case in enumerate(chosen):
        validate_case(case, spec, f"cases[{k}]")
    _callable_as_backward(fn, spec, chosen[0])
    ref = Reference(spec)
    results = tuple(_run_case(fn, c, spec, dps, ref) for c in chosen)
    warnings = [] if own else degenerate_data_warnings(spec, chosen)
    warnings += [_not_checked(o, np.asarray(r.case.x).dtype)
                 for r in results for o in r.outputs if o.valid and not o.judged]
    if not own:
        survivors = surviving_mutants(ref, chosen, dps)
        warnings += [f"vacuous: these inputs cannot tell the right dx from one with {s}"
                     for s in survivors]
    used = str(np.asarray(chosen[0].x).dtype)
    return CheckReport(spec, used, results, tuple(warnings), TOLERANCE_RULE)


def _variant(spec: LayerSpec | None, *given: Any) -> LayerSpec:
    """check_backward's variant: ``spec``, or the LayerSpec of the five options ``given``.

    A LayerSpec given in the place of ``layer`` (``check_backward(fn, LayerSpec())``) was
    refused as "layer=LayerSpec(...) is not allowed" (a review); it is told to use spec=.
    """
    if isinstance(given[0], LayerSpec):
        raise OptionError(f"layer={given[0]!r} is not allowed; give a LayerSpec as "
                          "spec=LayerSpec(...), or the layer's name, 'batchnorm'")
    if spec is None:
        return LayerSpec(*given)
    if given != ("batchnorm", "sqrt", "biased", True, "train"):
        raise OptionError("give the variant either as spec=LayerSpec(...) or as layer, "
                          "eps_placement, variance, affine and mode, not both")
    return checked_spec(spec)
