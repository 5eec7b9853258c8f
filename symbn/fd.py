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
- :func:`directional`: random projections ``uᵀJv`` (u is the upstream gradient, v a random
  direction), ``2·levels`` forward passes per direction whatever the size of the input;
- :func:`taylor_test`: no step to choose: the remainder ``L(x+hv) − L(x) − h·∇L·v`` must
  shrink like h² for a right gradient (like h for a wrong one).

Precision is always local (``mpmath.workdps``); results are rounded to the caller's precision.

>>> import mpmath
>>> with mpmath.workdps(40):
...     est = central_difference(lambda t: mpmath.exp(1 + t), step=mpmath.mpf("1e-6"))
...     print(abs(est.value - mpmath.e) < mpmath.mpf(10) ** -30)
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import mpmath
import numpy as np

from symbn.cases import check_eps, check_seed
from symbn.errors import OptionError, check_positive, check_whole
from symbn.reference import Reference, as_matrix

__all__ = [
    "MIN_DPS",
    "DirectionalResult",
    "FDEstimate",
    "TaylorResult",
    "agreement_digits",
    "central_difference",
    "check_dps",
    "directional",
    "full_gradient",
    "smallest_first_step",
    "step_for",
    "taylor_test",
    "working_dps",
]


MIN_DPS = 20        # fewer digits cannot judge float64 results (symbn verify, symbn check)


def check_dps(dps: object, name: str = "dps") -> int:
    """The digits of an mpmath computation: a whole number >= :data:`MIN_DPS`.

    >>> check_dps(10)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: dps=10 is not allowed; use at least 20 digits, a whole number >= 20
    """
    return check_whole(name, dps, MIN_DPS, f"at least {MIN_DPS} digits, a whole number")


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


def _scale(st: Any) -> mpmath.mpf:
    """The scale on which a channel's loss varies with x: 1/r (√(σ²+ε), or σ+ε)."""
    return 1 / st.r


def full_gradient(ref: Reference, dy: Any, x: Any, gamma: Any = None, beta: Any = None, *,
                  eps: float, running_mean: Any = None, running_var: Any = None,
                  dps: int = 50, levels: int = 3, step: Any = None) -> dict[str, np.ndarray]:
    """Every partial derivative of ``L = Σ dy·y`` by finite differences.

    Returns ``{"x": (m, D), "gamma": (D,), "beta": (D,)}`` (only ``"x"`` without affine) as
    object arrays of mpmath numbers rounded to ``dps`` digits. ``step`` overrides the
    relative step (a multiple of each channel's scale 1/r).
    """
    dps, levels, eps = check_dps(dps), _check_levels(levels), check_eps(eps)
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
    with mpmath.workdps(dps):
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
             dbeta: Any = 0) -> mpmath.mpf:
        """L with element k moved by t, γ by dgamma, β by dbeta."""
        col = self.col if k is None else [*self.col[:k], self.col[k] + t, *self.col[k + 1:]]
        return self.ref.channel_loss(col, self.gcol, self.gamma + dgamma, self.beta + dbeta,
                                     mpmath.mpf(self.eps), self.running_mean, self.running_var)

    def partials(self, dps: int, levels: int, step: Any) -> dict[str, list[mpmath.mpf]]:
        """∂L/∂x_k for every k, and ∂L/∂γ, ∂L/∂β with affine."""
        with mpmath.workdps(dps):
            st = self.ref.stats(self.col, mpmath.mpf(self.eps), self.running_mean,
                                self.running_var)
        scale = _scale(st)
        offset = _offset_digits(self.col, scale)
        lv, wp = levels, working_dps(dps, levels, offset)
        if self.ref._at_limit(st):
            # ε outside the root at a constant channel: L(x + t·e_k) has a |t| term, so the
            # error of D(h) is O(h), not a series in h²: no Richardson, a step of 10^-(dps+5).
            lv, wp = 1, 2 * dps + 15 + offset
        with mpmath.workdps(wp):
            relative = step_for(dps, levels) if lv == levels else mpmath.power(10, -(dps + 5))
            h = (relative if step is None else mpmath.mpf(step)) * scale
            out = {"x": [central_difference(partial(self.loss, k), step=h, levels=lv).value
                         for k in range(len(self.col))]}
            if self.ref.spec.affine:
                hp = step_for(dps, levels, max(1, abs(self.gamma)))
                out["gamma"] = [central_difference(lambda t: self.loss(dgamma=t), step=hp,
                                                   levels=levels).value]
                out["beta"] = [central_difference(lambda t: self.loss(dbeta=t),
                                                  step=step_for(dps, levels),
                                                  levels=levels).value]
        return out


def _round(a: np.ndarray) -> np.ndarray:
    b = np.empty(a.shape, dtype=object)
    for idx, v in np.ndenumerate(a):
        b[idx] = +v
    return b


@dataclass(frozen=True)
class DirectionalResult:
    """One random projection: finite difference and the gradient's value of ``uᵀJv``."""

    fd: mpmath.mpf
    analytic: mpmath.mpf
    fd_error: mpmath.mpf

    @property
    def digits(self) -> float:
        """Significant digits to which the two agree."""
        return agreement_digits([self.analytic], [self.fd])


class _Problem:
    """A loss over the whole (m, D) input, with x, γ and β moved along a direction."""

    def __init__(self, ref: Reference, dy: Any, x: Any, gamma: Any, beta: Any, eps: float,
                 running_mean: Any, running_var: Any, dps: int) -> None:
        self.ref, self.cols, self.gcols = ref, as_matrix(x), as_matrix(dy, "dy")
        self.params = ref._params(len(self.cols), gamma, beta, running_mean, running_var)
        self.inputs = (dy, x, gamma, running_mean, running_var)
        self.eps, self.dps = eps, dps
        with mpmath.workdps(dps):
            e = mpmath.mpf(eps)
            self.scales = [_scale(ref.stats(col, e, self.params["running_mean"][c],
                                             self.params["running_var"][c]))
                           for c, col in enumerate(self.cols)]
        self.offset = max(_offset_digits(col, s) for col, s in zip(self.cols, self.scales,
                                                                   strict=True))

    def reference_gradient(self) -> dict[str, np.ndarray]:
        """The proven gradient at this problem's point, at its precision."""
        dy, x, gamma, running_mean, running_var = self.inputs
        with mpmath.workdps(self.dps):
            return self.ref.gradient(dy, x, gamma, eps=self.eps, running_mean=running_mean,
                                     running_var=running_var)

    def direction(self, rng: np.random.Generator) -> dict[str, list[list[mpmath.mpf]]]:
        """A random direction, each channel's x-part on that channel's scale."""
        m = len(self.cols[0])
        v = {"x": [[mpmath.mpf(float(z)) * s for z in rng.standard_normal(m)]
                   for s in self.scales]}
        if self.ref.spec.affine:
            v["gamma"] = [[mpmath.mpf(float(z))] for z in rng.standard_normal(len(self.cols))]
            v["beta"] = [[mpmath.mpf(float(z))] for z in rng.standard_normal(len(self.cols))]
        return v

    def loss(self, t: mpmath.mpf, v: dict[str, list[list[mpmath.mpf]]]) -> mpmath.mpf:
        """``L(x + t·v)``."""
        p, e, total = self.params, mpmath.mpf(self.eps), []
        for c, (col, gcol) in enumerate(zip(self.cols, self.gcols, strict=True)):
            moved = [a + t * b for a, b in zip(col, v["x"][c], strict=True)]
            gam, bet = p["gamma"][c], p["beta"][c]
            if self.ref.spec.affine:
                gam, bet = gam + t * v["gamma"][c][0], bet + t * v["beta"][c][0]
            total.append(self.ref.channel_loss(moved, gcol, gam, bet, e,
                                               p["running_mean"][c], p["running_var"][c]))
        return mpmath.fsum(total)

    @staticmethod
    def dot(grad: dict[str, np.ndarray], v: dict[str, list[list[mpmath.mpf]]]) -> mpmath.mpf:
        """``∇L · v`` for a gradient in the layout of :meth:`Reference.gradient`."""
        terms: list[mpmath.mpf] = []
        for w, parts in v.items():
            g = grad[w]
            for c, part in enumerate(parts):
                col = g[:, c] if g.ndim == 2 else [g[c]]
                terms.extend(a * b for a, b in zip(col, part, strict=True))
        return mpmath.fsum(terms)


def directional(ref: Reference, dy: Any, x: Any, gamma: Any = None, beta: Any = None, *,
                eps: float, running_mean: Any = None, running_var: Any = None,
                gradient: dict[str, np.ndarray] | None = None, directions: int = 3,
                seed: int = 0, dps: int = 50, levels: int = 3) -> list[DirectionalResult]:
    """Random projections ``uᵀJv``: finite differences of ``L(x + t·v)`` against ``∇L·v``.

    ``gradient`` is the gradient to test (default: the reference's proven closed form). The
    cost is ``2·levels`` forward passes per direction, independent of the input's size.
    """
    dps, levels, eps = check_dps(dps), _check_levels(levels), check_eps(eps)
    directions, seed = check_whole("directions", directions, 1), check_seed(seed)
    problem = _Problem(ref, dy, x, gamma, beta, eps, running_mean, running_var, dps)
    gradient = gradient if gradient is not None else problem.reference_gradient()
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(directions):
        with mpmath.workdps(dps):
            v = problem.direction(rng)
        with mpmath.workdps(working_dps(dps, levels, problem.offset)):
            est = central_difference(partial(problem.loss, v=v), step=step_for(dps, levels),
                                     levels=levels)
            analytic = problem.dot(gradient, v)
        with mpmath.workdps(dps):
            results.append(DirectionalResult(+est.value, +analytic, +est.error))
    return results


@dataclass(frozen=True)
class TaylorResult:
    """Remainders ``|L(x+hv) − L(x) − h·∇L·v|`` at halving steps, and their rates."""

    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    rates: tuple[float, ...]
    exact: bool

    @property
    def passed(self) -> bool:
        """The remainder shrinks like h² (rate ≥ 1.8), or is at rounding level throughout."""
        return self.exact or min(self.rates[-2:]) >= 1.8


def taylor_test(ref: Reference, dy: Any, x: Any, gamma: Any = None, beta: Any = None, *,
                eps: float, running_mean: Any = None, running_var: Any = None,
                gradient: dict[str, np.ndarray] | None = None, seed: int = 0,
                dps: int = 50, first_step: float = 1e-2, halvings: int = 5) -> TaylorResult:
    """The Taylor-remainder test: no finite-difference step to tune.

    For a right gradient the remainder is O(h²) (rates → 2); for a wrong one it is O(h)
    (rates → 1). ``exact`` means every remainder was at rounding level (L is linear along v).
    ``halvings`` >= 1 (one rate per halving); ``first_step`` > 0, large enough that the h²
    remainder at the smallest step stays above rounding (:func:`smallest_first_step`).
    """
    dps, eps, seed = check_dps(dps), check_eps(eps), check_seed(seed)
    halvings = check_whole("halvings", halvings, 1, "at least 1 halving, a whole number")
    first = _check_step("first_step", first_step)
    least = smallest_first_step(dps, halvings)
    if first < least:
        raise OptionError.bad_value(
            "first_step", first_step, f"at dps={dps} with {halvings} halvings the remainders "
            f"would be at rounding level whatever the gradient: use >= {mpmath.nstr(least, 3)}")
    problem = _Problem(ref, dy, x, gamma, beta, eps, running_mean, running_var, dps)
    gradient = gradient if gradient is not None else problem.reference_gradient()
    rng = np.random.default_rng(seed)
    with mpmath.workdps(dps + problem.offset + 10):
        v = problem.direction(rng)
        base = problem.loss(mpmath.mpf(0), v)
        slope = problem.dot(gradient, v)
        steps = [first / 2**k for k in range(halvings + 1)]
        rem = [abs(problem.loss(h, v) - base - h * slope) for h in steps]
        floor = mpmath.power(10, -dps) * (abs(base) + 1)
        exact = all(r_ <= floor for r_ in rem)
        rates = tuple(float(mpmath.log(a / b, 2)) if b > 0 and a > 0 else float("inf")
                      for a, b in itertools.pairwise(rem))
        return TaylorResult(tuple(float(h) for h in steps), tuple(float(r_) for r_ in rem),
                            rates, exact)


def smallest_first_step(dps: int, halvings: int) -> mpmath.mpf:
    """The least first step of :func:`taylor_test`: its last step h has h² >= 10^(6 − dps).

    Below it a right gradient's O(h²) remainder is lost in rounding, every remainder reads as
    exact and a wrong gradient would pass.

    >>> import mpmath
    >>> mpmath.nstr(smallest_first_step(50, 5), 3)
    '3.2e-21'
    """
    with mpmath.workdps(15):
        return 2**halvings * mpmath.power(10, mpmath.mpf(6 - dps) / 2)


def agreement_digits(a: Any, b: Any) -> float:
    """Significant digits to which ``a`` agrees with ``b``, normwise: −log10(‖a−b‖/‖b‖).

    When ``b`` is 0 the absolute error is used. Equal arrays give ``inf``.

    >>> import mpmath
    >>> round(agreement_digits([mpmath.mpf("1.0001")], [mpmath.mpf(1)]), 1)
    4.0
    """
    aa = np.asarray(a, dtype=object).reshape(-1)
    bb = np.asarray(b, dtype=object).reshape(-1)
    err = max((abs(p - q) for p, q in zip(aa, bb, strict=True)), default=0)
    size = max((abs(q) for q in bb), default=0)
    if err == 0:
        return float("inf")
    return float(-mpmath.log10(err / size if size != 0 else err))
