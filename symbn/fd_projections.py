"""Finite differences along random directions: projections ``uᵀJv`` and the Taylor test.

Both move the whole input (x, and γ and β with affine) along a random direction v, each
channel's part of v on that channel's scale, and compare the loss ``L(x + t·v)`` with the
gradient's ``∇L·v``:

- :func:`directional`: central differences of ``L(x + t·v)`` with Richardson extrapolation
  (:func:`symbn.fd.central_difference`), ``2·levels`` forward passes per direction whatever the
  size of the input;
- :func:`taylor_test`: no step to choose: the remainder ``L(x+hv) − L(x) − h·∇L·v`` must shrink
  like h² for a right gradient (like h for a wrong one).

Precision is always local (``mpmath.workdps``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any

import mpmath
import numpy as np

from symbn.cases import check_seed
from symbn.errors import OptionError, check_whole
from symbn.fd import (
    _check_levels,
    _check_step,
    _offset_digits,
    _scale,
    agreement_digits,
    central_difference,
    check_dps,
    difference_plan,
    exact_eps,
)
from symbn.precision import working_digits
from symbn.reference import Reference, as_matrix

__all__ = [
    "DirectionalResult",
    "TaylorResult",
    "directional",
    "smallest_first_step",
    "taylor_test",
]


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
        with working_digits(dps):
            e = mpmath.mpf(eps)
            stats = [ref.stats(col, e, self.params["running_mean"][c],
                               self.params["running_var"][c]) for c, col in enumerate(self.cols)]
            self.scales = [_scale(ref, st) for st in stats]
        # ε outside the root at a constant channel: L(x + t·v) has a |t| term there (see
        # symbn.fd's partials), so no extrapolation, and a tiny step
        self.at_limit = any(ref._at_limit(st) for st in stats)
        self.offset = max(_offset_digits(col, s) for col, s in zip(self.cols, self.scales,
                                                                   strict=True))

    def reference_gradient(self) -> dict[str, np.ndarray]:
        """The proven gradient at this problem's point, at its precision."""
        dy, x, gamma, running_mean, running_var = self.inputs
        with working_digits(self.dps):
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
    dps, levels, eps = check_dps(dps), _check_levels(levels), exact_eps(eps)
    directions, seed = check_whole("directions", directions, 1), check_seed(seed)
    problem = _Problem(ref, dy, x, gamma, beta, eps, running_mean, running_var, dps)
    gradient = gradient if gradient is not None else problem.reference_gradient()
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(directions):
        with working_digits(dps):  # the step too: whatever mpmath's global precision is
            v = problem.direction(rng)
            lv, wp, step = difference_plan(dps, levels, problem.offset, problem.at_limit)
        with working_digits(wp):
            est = central_difference(partial(problem.loss, v=v), step=step, levels=lv)
            analytic = problem.dot(gradient, v)
        with working_digits(dps):
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
        """The remainder shrinks like h² (rates within 2 ± 0.2), or is at rounding level.

        A rate well above 2 is no better than one below: a gradient wrong by δ adds δ·h to
        the remainder, which cancels its h² term as h nears δ's size, and the rates climb
        before they fall to 1 (a review: dx 1e-4 wrong gave rates 2.035 to 2.729, and
        passed with the bound "rate ≥ 1.8" alone).
        """
        return self.exact or all(1.8 <= rate <= 2.2 for rate in self.rates[-2:])


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
    dps, eps, seed = check_dps(dps), exact_eps(eps), check_seed(seed)
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
    with working_digits(dps + problem.offset + 10):
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
    with working_digits(15):
        return 2**halvings * mpmath.power(10, mpmath.mpf(6 - dps) / 2)
