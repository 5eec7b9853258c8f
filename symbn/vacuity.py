"""Vacuity: whether a check's inputs can tell a right backward from a wrong one.

:func:`mutants` are wrong variants of the proven ∂L/∂x, each the shape of a classic bug (a term
dropped, a sign flipped, γ left out, the batch statistics held constant, the inverse std read
as a variance), and :func:`wrong_variants` the layer variants whose right ∂L/∂x is a classic
bug for another (ε on the other side of the root, the other variance).
:func:`surviving_mutants` names those that no input tells apart from the right dx, and
:func:`degenerate_data_warnings` names inputs under which right and wrong look alike (m = 1,
dy constant along the batch, γ ≡ 1). :func:`symbn.checker.check_backward` reports both for the
inputs a user supplies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import mpmath
import numpy as np
import sympy as sp

from symbn import symbols as S
from symbn.cases import Case
from symbn.check_report import UNINFORMATIVE
from symbn.check_truth import Truth, case_truth, tolerance
from symbn.evaluate import evaluate
from symbn.precision import working_digits
from symbn.reference import Reference
from symbn.spec import LayerSpec

__all__ = ["degenerate_data_warnings", "mutants", "surviving_mutants", "wrong_variants"]


def mutants(ref: Reference) -> dict[str, sp.Expr]:
    """Wrong variants of the proven ∂L/∂x, each the shape of a classic bug.

    >>> names = sorted(mutants(Reference(LayerSpec())))
    >>> len(names), names[:2]
    (9, ['dy used instead of gamma*dy', 'inverse std read as a variance'])
    """
    d = ref.derivation
    closed = d.closed_symbolic["x"]
    out: dict[str, sp.Expr] = {}
    if d.spec.affine:
        out["dy used instead of gamma*dy"] = closed.xreplace({S.gamma: sp.Integer(1)})
    if d.spec.uses_batch_statistics:
        g = S.element_function("g")(S.i)
        out["mu and var treated as constants"] = (S.gamma if d.spec.affine else 1) * S.r * g
    out["inverse std read as a variance"] = closed.xreplace({S.r: 1 / sp.sqrt(S.r + S.eps)})
    inner = [a for a in sp.Mul.make_args(closed) if isinstance(a, sp.Add)]
    if inner:
        terms = sp.Add.make_args(inner[0])
        for t in terms:
            rest = sp.Add(*(u for u in terms if u != t))
            out[f"term {t} missing"] = closed.xreplace({inner[0]: rest})
            out[f"sign of {t} flipped"] = closed.xreplace({inner[0]: rest - t})
    return out


def wrong_variants(spec: LayerSpec) -> dict[str, LayerSpec]:
    """The variants whose right ∂L/∂x is a classic wrong one for ``spec``, by the bug's name.

    ε on the other side of the root, and in training the other variance: the README's list of
    classic wrong backwards has both, and inputs a user supplied could tell neither apart with
    no warning (a review: ε outside the root at a spread of 30, the unbiased variance at
    m = 4096).

    Each name says what input tells the two apart: float32 data of unit spread with ε = 1e-5
    cannot tell where ε goes (the two differ by about ε/σ², within float32's tolerance).

    >>> [name.split(";")[0] for name in wrong_variants(LayerSpec())]
    ['eps outside the root, (x - mu)/(sigma + eps)', 'the unbiased variance (divided by m - 1)']
    """
    near = "; a case whose variance is near eps tells them apart (eps = 0.5 at unit spread)"
    small = "; a case of at most a few hundred elements per channel tells them apart"
    out = {}
    if spec.eps_placement == "sqrt":
        out["eps outside the root, (x - mu)/(sigma + eps)" + near] = replace(
            spec, eps_placement="std")
    else:
        out["eps inside the root, (x - mu)/sqrt(var + eps)" + near] = replace(
            spec, eps_placement="sqrt")
    if spec.uses_batch_statistics and spec.variance == "biased":
        out["the unbiased variance (divided by m - 1)" + small] = replace(spec, variance="unbiased")
    elif spec.uses_batch_statistics:
        out["the biased variance (divided by m)" + small] = replace(spec, variance="biased")
    return out


def surviving_mutants(ref: Reference, cases: Sequence[Case], dps: int) -> list[str]:
    """The mutants no input tells apart from the right dx: a property of the inputs alone.

    Both kinds: :func:`mutants` and the right dx of each of :func:`wrong_variants` (on the
    inputs where that variant is defined). The backward under test plays no part, so one that
    raises or returns garbage does not make good inputs look weak.
    """
    alive = dict(mutants(ref))
    variants = wrong_variants(ref.spec)
    others: dict[str, Reference] = {}
    for case in cases:
        if not alive and not variants:
            break
        truth = case_truth(ref, case, dps)
        tol = tolerance(case.x.dtype, truth.m, truth.kappas["x"])
        for name, expr in list(alive.items()):
            if _distinguishes(ref, truth, expr, tol, dps):
                del alive[name]
        for name, spec in list(variants.items()):
            if truth.m < spec.smallest_batch:
                continue
            if name not in others:  # one Reference per variant (setdefault built one per case)
                others[name] = Reference(spec)
            other = others[name]
            if _apart(truth, case_truth(other, case, dps).columns["dx"], tol):
                del variants[name]
    return sorted([*alive, *variants])


def _distinguishes(ref: Reference, truth: Truth, expr: sp.Expr, tol: np.ndarray,
                   dps: int) -> bool:
    cols = truth.columns
    x2, g2 = cols["x"], cols["g"]
    with working_digits(dps):
        for c in range(x2.shape[1]):
            st = cols["stats"][c]
            if ref._at_limit(st):
                continue
            scalars = ref._scalars(st, cols["eps"], mpmath.mpf(float(cols["gamma"][c])),
                                   st.center, st.variance)
            elements = {"x": [mpmath.mpf(float(v)) for v in x2[:, c]],
                        "g": [mpmath.mpf(float(v)) for v in g2[:, c]], "xhat": st.xhat}
            wrong = np.array([float(v) for v in evaluate(expr, elements, scalars)])
            if _apart(truth, wrong[:, None], tol, c):
                return True
    return False


def _apart(truth: Truth, wrong: np.ndarray, tol: np.ndarray, first: int = 0) -> bool:
    """Whether the (m, k) columns ``wrong`` differ from the right dx of channels first, ….

    By more than a channel's tolerance; an uninformative channel tells nothing.
    """
    for j in range(wrong.shape[1]):
        c = first + j
        if tol[c] >= UNINFORMATIVE:
            continue
        right = truth.columns["dx"][:, c]
        denom = np.abs(right) + truth.scales["x"][c]
        if (np.abs(wrong[:, j] - right) / np.where(denom > 0, denom, np.inf)).max() > tol[c]:
            return True
    return False


def degenerate_data_warnings(spec: LayerSpec, cases: Sequence[Case]) -> list[str]:
    """Warnings about inputs under which right and wrong backwards look alike."""
    warnings = []
    for case in cases:
        x2, g2 = case.columns(case.x), case.columns(case.dy)
        if spec.uses_batch_statistics and x2.shape[0] == 1:
            warnings.append(f"{case.name}: m = 1 makes dx ≡ 0 for every backward that returns "
                            "0 there; use m >= 2")
        elif spec.uses_batch_statistics and np.all(g2 == g2[:1]):
            warnings.append(f"{case.name}: dy is constant along the batch, which makes dx ≡ 0 "
                            "for right and many wrong backwards; use a random dy")
        if spec.affine and case.gamma is not None and np.all(np.asarray(case.gamma) == 1):
            warnings.append(f"{case.name}: gamma ≡ 1 hides a backward that uses dy instead of "
                            "gamma*dy; use gamma != 1")
    return warnings
