"""Finite differences in mpmath: a second opinion on a gradient, at any precision.

Central differences with Richardson extrapolation: ``D(h) = (f(h) − f(−h))/(2h)`` has an error
series in even powers of h, so ``levels`` halvings of h and the Richardson tableau cancel the
first ``levels − 1`` terms and leave an error of order ``h^(2·levels)``. The step is tied to the
precision: with target ``dps`` digits the step is ``ρ·10^(−(dps+5)/(2·levels))`` (ρ is the
scale on which the function varies: √(σ²+ε) for batch norm), and the arithmetic runs at enough
extra digits (:func:`working_dps`) that the rounding error of the difference, about
``10^(−wp)/h``, stays below the target too. Three modes:

- :func:`full_gradient`: every partial derivative, one channel at a time (a partial with
  respect to an element of channel c only involves that channel's loss);
- :func:`symbn.fd_projections.directional`: random projections ``uᵀJv`` (u is the upstream
  gradient, v a random direction), ``2·levels`` forward passes per direction whatever the size
  of the input;
- :func:`symbn.fd_projections.taylor_test`: no step to choose: the remainder
  ``L(x+hv) − L(x) − h·∇L·v`` must shrink like h² for a right gradient (like h for a wrong one).

This module holds the central differences, their steps and precision, and the full gradient;
:mod:`symbn.fd_projections` the two modes along random directions.

Precision is always local (``mpmath.workdps``); results are rounded to the caller's precision.

>>> import mpmath
>>> with mpmath.workdps(40):
...     est = central_difference(lambda t: mpmath.exp(1 + t), step=mpmath.mpf("1e-6"))
...     print(abs(est.value - mpmath.e) < mpmath.mpf(10) ** -30)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import mpmath
import numpy as np

from symbn.errors import OptionError, check_positive, check_whole
from symbn.precision import working_digits
from symbn.reference import Reference, as_matrix, exact_eps

__all__ = [
    "MIN_DPS",
    "FDEstimate",
    "agreement_digits",
    "central_difference",
    "check_dps",
    "difference_plan",
    "exact_eps",
    "full_gradient",
    "step_for",
    "working_dps",
]


MIN_DPS = 20        # fewer digits cannot judge float64 results (symbn verify, symbn check)
MAX_DPS = 1000      # more runs for minutes, and no float needs it (see check_dps)


def check_dps(dps: object, name: str = "dps") -> int:
    """The digits of an mpmath computation: a whole number from :data:`MIN_DPS` to MAX_DPS.

    Above MAX_DPS a check runs for minutes (``--dps 100000`` ran past 300 s), and no float
    needs it: 50 digits settle float64.

    >>> check_dps(10)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: dps=10 is not allowed; use at least 20 digits, a whole number >= 20
    >>> check_dps(100000)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: dps=100000 is not allowed; use at most 1000 digits
    """
    digits = check_whole(name, dps, MIN_DPS, f"at least {MIN_DPS} digits, a whole number")
    if digits > MAX_DPS:
        raise OptionError.bad_value(name, dps, f"use at most {MAX_DPS} digits")
    return digits


def _check_levels(levels: object) -> int:
    return check_whole("levels", levels, 1, "at least 1 level, a whole number")


def _check_step(name: str, step: Any) -> mpmath.mpf:
    """A step: a finite real number > 0 (an mpmath number keeps its precision)."""
    if isinstance(step, mpmath.mpf) and 0 < step < mpmath.inf:
        return step
    return mpmath.mpf(check_positive(name, step))


@dataclass(frozen=True)
class FDEstimate:
    """A derivative estimate and the size of the last Richardson correction."""

    value: mpmath.mpf
    error: mpmath.mpf


def step_for(dps: int, levels: int, scale: Any = 1) -> mpmath.mpf:
    """The first step for ``dps`` digits with ``levels`` Richardson levels.

    >>> import mpmath
    >>> with mpmath.workdps(20):
    ...     print(mpmath.nstr(step_for(50, 3), 3))
    6.81e-10
    """
    return mpmath.mpf(scale) * mpmath.power(10, -mpmath.mpf(dps + 5) / (2 * levels))


def working_dps(dps: int, levels: int, offset_digits: int = 0) -> int:
    """Digits to compute with so that rounding in the differences stays below ``10^-dps``.

    The difference ``f(h) − f(−h)`` loses about ``(dps + 5)/(2·levels)`` digits to the step
    and ``offset_digits`` more when the input is far from 0 on the function's own scale.

    >>> working_dps(50, 3)
    69
    """
    return dps + (dps + 5) // (2 * levels) + 1 + max(0, int(offset_digits)) + 9


def central_difference(f: Callable[[mpmath.mpf], mpmath.mpf], *, step: Any,
                       levels: int = 3) -> FDEstimate:
    """f′(0) by central differences at ``step, step/2, …`` and Richardson extrapolation.

    Evaluates f at ``2·levels`` points, in the caller's working precision. With ``levels=1``
    this is the plain central difference (the right choice where f is not smooth enough for
    the even-power error series, e.g. ε outside the root at a constant batch).
    """
    _check_levels(levels)
    h = _check_step("step", step)
    table: list[list[mpmath.mpf]] = []
    for k in range(levels):
        hk = h / 2**k
        row = [(f(hk) - f(-hk)) / (2 * hk)]
        for n in range(1, k + 1):
            prev = table[k - 1][n - 1]
            row.append(row[n - 1] + (row[n - 1] - prev) / (4**n - 1))
        table.append(row)
    best = table[-1][-1]
    error = abs(best - table[-1][-2]) if levels > 1 else mpmath.mpf(0)
    return FDEstimate(best, error)


def _offset_digits(column: Sequence[mpmath.mpf], scale: mpmath.mpf) -> int:
    big = max(abs(v) for v in column)
    return 0 if big <= scale else int(mpmath.ceil(mpmath.log10(big / scale)))


def _scale(ref: Reference, st: Any) -> mpmath.mpf:
    """The scale on which a channel's loss varies with x: 1/r (√(σ²+ε), or σ+ε).

    With ε outside the root in training, the loss goes through σ = √σ², which is not smooth
    on a scale larger than σ itself: where 0 < σ < σ + ε that is the scale. A step on σ + ε
    ≈ ε left a channel of σ ~ 1e-16 with 11 of 50 digits, the extrapolation cancelling the
    wrong terms (a review).
    """
    if ref.spec.eps_placement == "std" and ref.spec.uses_batch_statistics and st.sigma > 0:
        return min(1 / st.r, st.sigma)
    return 1 / st.r


def difference_plan(dps: int, levels: int, offset: int, at_limit: bool
                    ) -> tuple[int, int, mpmath.mpf]:
    """(levels, working digits, relative step) of a central difference at ``dps`` digits.

    Richardson's ``levels`` and :func:`step_for`'s step; or, at a |t| term in the loss (ε
    outside the root at a constant channel, where the error of D(h) is O(h), not a series in
    h²), one level and a step of 10^-(dps+5), with the digits that step needs.
    """
    if at_limit:
        return 1, 2 * dps + 15 + offset, mpmath.power(10, -(dps + 5))
    return levels, working_dps(dps, levels, offset), step_for(dps, levels)


def full_gradient(ref: Reference, dy: Any, x: Any, gamma: Any = None, beta: Any = None, *,
                  eps: float, running_mean: Any = None, running_var: Any = None,
                  dps: int = 50, levels: int = 3, step: Any = None) -> dict[str, np.ndarray]:
    """Every partial derivative of ``L = Σ dy·y`` by finite differences.

    Returns ``{"x": (m, D), "gamma": (D,), "beta": (D,)}`` (only ``"x"`` without affine) as
    object arrays of mpmath numbers rounded to ``dps`` digits. ``step`` overrides the
    relative step (a multiple of each channel's scale 1/r).
    """
    dps, levels, eps = check_dps(dps), _check_levels(levels), exact_eps(eps)
    step = None if step is None else _check_step("step", step)
    cols, gcols = as_matrix(x), as_matrix(dy, "dy")
    params = ref._params(len(cols), gamma, beta, running_mean, running_var)
    m, channels = len(cols[0]), len(cols)
    out = {w: (np.empty((m, channels), dtype=object) if w == "x"
               else np.empty(channels, dtype=object)) for w in ref.derivation.wrt}
    for c in range(channels):
        channel = _Channel(ref, cols[c], gcols[c], params["gamma"][c], params["beta"][c],
                           eps, params["running_mean"][c], params["running_var"][c])
        for w, value in channel.partials(dps, levels, step).items():
            if w == "x":
                out["x"][:, c] = value
            else:
                out[w][c] = value[0]
    with working_digits(dps):
        return {w: _round(a) for w, a in out.items()}


@dataclass(frozen=True)
class _Channel:
    """One channel's loss as a function of its inputs, for partial derivatives."""

    ref: Reference
    col: list[mpmath.mpf]
    gcol: list[mpmath.mpf]
    gamma: mpmath.mpf
    beta: mpmath.mpf
    eps: float
    running_mean: Any
    running_var: Any

    def loss(self, k: int | None = None, t: Any = 0, dgamma: Any = 0,
             beta: Any = None) -> mpmath.mpf:
        """L with element k moved by t, γ by dgamma, and β replaced by ``beta`` if given."""
        col = self.col if k is None else [*self.col[:k], self.col[k] + t, *self.col[k + 1:]]
        return self.ref.channel_loss(col, self.gcol, self.gamma + dgamma,
                                     self.beta if beta is None else beta,
                                     mpmath.mpf(self.eps), self.running_mean, self.running_var)

    def partials(self, dps: int, levels: int, step: Any) -> dict[str, list[mpmath.mpf]]:
        """∂L/∂x_k for every k, and ∂L/∂γ, ∂L/∂β with affine."""
        with working_digits(dps):  # the step too: whatever mpmath's global precision is
            st = self.ref.stats(self.col, mpmath.mpf(self.eps), self.running_mean,
                                self.running_var)
            scale = _scale(self.ref, st)
            lv, wp, relative = difference_plan(dps, levels, _offset_digits(self.col, scale),
                                               self.ref._at_limit(st))
        with working_digits(wp):
            h = (relative if step is None else mpmath.mpf(step)) * scale
            # β·Σ dy does not depend on x or γ, but its rounding does: β = 1e32 cost dx, dγ and
            # dβ 20 digits (a review). The differences are taken at β = 0: L is linear in β,
            # so ∂L/∂β is the same there, and the others do not depend on β.
            out = {"x": [central_difference(partial(self.loss, k, beta=0), step=h,
                                            levels=lv).value for k in range(len(self.col))]}
            if self.ref.spec.affine:
                hp = step_for(dps, levels, max(1, abs(self.gamma)))
                out["gamma"] = [central_difference(lambda t: self.loss(dgamma=t, beta=0),
                                                   step=hp, levels=levels).value]
                out["beta"] = [central_difference(lambda t: self.loss(beta=t),
                                                  step=step_for(dps, levels),
                                                  levels=levels).value]
        return out


def _round(a: np.ndarray) -> np.ndarray:
    b = np.empty(a.shape, dtype=object)
    for idx, v in np.ndenumerate(a):
        b[idx] = +v
    return b


def agreement_digits(a: Any, b: Any, scale: Any = None) -> float:
    """Significant digits to which ``a`` agrees with ``b``, normwise: −log10(‖a−b‖/‖b‖).

    ``scale``, the quantity's natural size (for dx, ‖dy‖·|γ|·r), stands for ‖b‖ where it is
    larger: a gradient that is truly 0 (dx with dy constant along the batch) is rounding noise
    on both sides, and against ‖b‖, that noise, a right one read as −10 digits (a review).
    When ``b`` is 0 and no scale is given, the absolute error is used. Equal arrays give
    ``inf``.

    >>> import mpmath
    >>> round(agreement_digits([mpmath.mpf("1.0001")], [mpmath.mpf(1)]), 1)
    4.0
    >>> round(agreement_digits([mpmath.mpf("1e-52")], [mpmath.mpf("3e-62")], scale=1), 1)
    52.0
    """
    aa = np.asarray(a, dtype=object).reshape(-1)
    bb = np.asarray(b, dtype=object).reshape(-1)
    if aa.shape != bb.shape:  # zip's own ValueError said only that one was shorter
        raise OptionError.bad_value("a.shape", np.shape(a), f"a and b hold as many values: "
                                    f"b has shape {np.shape(b)}")
    err = max((abs(p - q) for p, q in zip(aa, bb, strict=True)), default=0)
    size = max((abs(q) for q in bb), default=0)
    if scale is not None:
        size = max(size, abs(mpmath.mpf(scale)))
    if err == 0:
        return float("inf")
    return float(-mpmath.log10(err / size if size != 0 else err))
