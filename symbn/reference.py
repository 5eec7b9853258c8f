"""The mpmath reference: a layer's forward pass and its proven gradient on concrete data.

Data is ``(m, D)``-shaped: m elements reduced over, D channels (each column normalized on its
own). The forward pass is written out by hand from the layer's definition, independently of
the symbolic pipeline, so that finite differences of it (:mod:`symbn.fd`) are a second opinion
on the derivation. The gradient is the proven symbolic-m closed form of :func:`symbn.derive`,
evaluated with :func:`symbn.evaluate.evaluate` at the caller's working precision (the caller
sets it with ``mpmath.workdps``; nothing here changes mpmath's precision).

>>> import mpmath
>>> ref = Reference(LayerSpec())
>>> with mpmath.workdps(30):
...     grads = ref.gradient([[1.0], [2.0], [4.0]], [[0.5], [1.0], [-2.0]], [1.5], eps=1e-5)
>>> [float(v) for v in grads["beta"]]
[7.0]
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from symbn.api import Derivation, derive
from symbn.errors import OptionError, check_positive
from symbn.evaluate import evaluate
from symbn.precision import working_bits
from symbn.spec import LayerSpec

__all__ = ["ChannelStats", "Reference", "as_matrix", "exact_eps"]


def as_matrix(data: Any, name: str = "x") -> list[list[mpmath.mpf]]:
    """``(m, D)`` data as columns of mpmath numbers: ``out[c][k]`` is element k of channel c.

    >>> as_matrix([[1, 2], [3, 4]])
    [[mpf('1.0'), mpf('3.0')], [mpf('2.0'), mpf('4.0')]]
    """
    array = np.asarray(data, dtype=object)
    if array.ndim != 2 or 0 in array.shape:
        raise OptionError.bad_value(f"{name}.shape", getattr(array, "shape", None),
                                    "expected (m, D) data with m >= 1 and D >= 1")
    with _exact():
        return [_finite([mpmath.mpf(v) for v in array[:, c]], name)
                for c in range(array.shape[1])]


def exact_eps(eps: Any) -> Any:
    """ε checked (a finite real number > 0), kept exact where it is more than a float.

    An mpmath or SymPy number is kept as given, a Fraction becomes a SymPy Rational (which
    mpmath, unlike a Fraction, converts): mpmath.mpf then takes each at the working precision.
    float() cut ``mpf('1e-5')`` at 50 digits to 53 bits, so the differences were of another
    loss than the reference's, which takes mpf(ε): 16 digits of agreement (a review). Not
    checked, ε = -1 gave mpmath's "cannot create mpf from mpc" and ε = 0 numbers (a review).

    >>> from fractions import Fraction
    >>> exact_eps(Fraction(1, 3)), exact_eps(1e-5)
    (1/3, 1e-05)

    >>> exact_eps(0.0)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: eps=0.0 is not allowed; use a finite real number > 0, such as 1e-5
    """
    value = check_positive("eps", eps, ", such as 1e-5")
    if isinstance(eps, (mpmath.mpf, sp.Basic)):
        return eps
    if isinstance(eps, numbers.Rational) and not isinstance(eps, numbers.Integral):
        return sp.Rational(eps.numerator, eps.denominator)
    return value


def _finite(values: list[mpmath.mpf], name: str) -> list[mpmath.mpf]:
    """``values`` if every one is finite, else an :class:`OptionError` naming them.

    A NaN gave libmpf's "cannot convert inf or nan to int" deep in the finite differences
    (a review).
    """
    if not all(mpmath.isfinite(v) for v in values):
        raise OptionError(f"{name} holds NaN or inf; the reference needs finite numbers")
    return values


def _exact() -> Any:
    """A precision at which every float64 converts exactly (53 bits), whatever mpmath's is.

    At the global precision a float was rounded: under ``mp.dps = 5`` symbn.fd's results moved
    by 1e-6 (a review). Higher precisions are kept, for mpf data of more digits.
    """
    return working_bits(max(mpmath.mp.prec, 64))


def _as_vector(data: Any, size: int, name: str) -> list[mpmath.mpf]:
    array = np.asarray(data, dtype=object).reshape(-1)
    if array.shape != (size,):
        raise OptionError.bad_value(f"{name}.shape", array.shape,
                                    f"expected one value per channel: ({size},)")
    with _exact():
        return _finite([mpmath.mpf(v) for v in array], name)


@dataclass(frozen=True)
class ChannelStats:
    """What the forward pass computes for one channel (mpmath numbers)."""

    center: mpmath.mpf          # μ (train) or the running mean (eval)
    variance: mpmath.mpf        # σ² (train) or the running variance (eval)
    sigma: mpmath.mpf           # √variance
    r: mpmath.mpf               # ∂x̂/∂x with the statistics held fixed: 1/√(σ²+ε) or 1/(σ+ε)
    xhat: list[mpmath.mpf] = field(repr=False)


@dataclass(frozen=True)
class Reference:
    """Forward pass and proven gradient of one layer variant, in mpmath.

    Parameters
    ----------
    spec
        The layer variant.
    derivation
        Its symbolic-m derivation (derived from ``spec`` when not given).

    """

    spec: LayerSpec
    derivation: Derivation = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.derivation is None:
            object.__setattr__(self, "derivation", derive(self.spec))

    # -- forward -------------------------------------------------------------------------

    def stats(self, column: Sequence[mpmath.mpf], eps: mpmath.mpf,
              running_mean: mpmath.mpf | None = None,
              running_var: mpmath.mpf | None = None) -> ChannelStats:
        """Statistics and x̂ of one channel, straight from the layer's definition."""
        center, variance, sigma, r, centered = self._normalize(column, eps, running_mean,
                                                                running_var)
        return ChannelStats(center, variance, sigma, r, [d * r for d in centered])

    def _normalize(self, column: Sequence[mpmath.mpf], eps: mpmath.mpf,
                   running_mean: mpmath.mpf | None, running_var: mpmath.mpf | None
                   ) -> tuple[Any, Any, Any, Any, list[Any]]:
        m = len(column)
        if self.spec.uses_batch_statistics:
            if m < self.spec.smallest_batch:
                raise OptionError.bad_value(
                    "m", m, "unbiased variance divides by m - 1 = 0: use m >= 2 or "
                    "variance='biased'")
            center = mpmath.fsum(column) / m
            centered = [v - center for v in column]
            divisor = m if self.spec.variance == "biased" else m - 1
            variance = mpmath.fdot(centered, centered) / divisor
        else:
            if running_mean is None or running_var is None:
                raise OptionError.bad_value("running_mean/running_var", None,
                                            "eval mode needs the running statistics")
            center, variance = running_mean, running_var
            centered = [v - center for v in column]
        sigma = mpmath.sqrt(variance)
        r = 1 / mpmath.sqrt(variance + eps) if self.spec.eps_placement == "sqrt" else \
            1 / (sigma + eps)
        return center, variance, sigma, r, centered

    def channel_loss(self, column: Sequence[mpmath.mpf], dy: Sequence[mpmath.mpf],
                     gamma: mpmath.mpf, beta: mpmath.mpf, eps: mpmath.mpf,
                     running_mean: mpmath.mpf | None = None,
                     running_var: mpmath.mpf | None = None) -> mpmath.mpf:
        """The loss ``Σ_k dy_k · y_k`` of one channel (``y = γ x̂ + β``, or ``x̂``).

        Computed as ``γ·r·Σ dy_k (x_k − μ) + β·Σ dy_k``, the same sum regrouped.
        """
        _, _, _, r, centered = self._normalize(column, eps, running_mean, running_var)
        projected = r * mpmath.fdot(dy, centered)
        if self.spec.affine:
            return gamma * projected + beta * mpmath.fsum(dy)
        return projected

    def forward(self, x: Any, gamma: Any = None, beta: Any = None, *, eps: float,
                running_mean: Any = None, running_var: Any = None) -> np.ndarray:
        """The layer output y for ``(m, D)`` input x, as an object array of mpmath numbers."""
        cols = as_matrix(x)
        params = self._params(len(cols), gamma, beta, running_mean, running_var)
        e = mpmath.mpf(exact_eps(eps))
        out = np.empty((len(cols[0]), len(cols)), dtype=object)
        for c, col in enumerate(cols):
            st = self.stats(col, e, params["running_mean"][c], params["running_var"][c])
            ys = [params["gamma"][c] * h + params["beta"][c] for h in st.xhat] \
                if self.spec.affine else st.xhat
            out[:, c] = ys
        return out

    def _params(self, channels: int, gamma: Any, beta: Any, running_mean: Any,
                running_var: Any) -> dict[str, list[Any]]:
        none = [None] * channels
        one, zero = [mpmath.mpf(1)] * channels, [mpmath.mpf(0)] * channels
        affine, evaluating = self.spec.affine, not self.spec.uses_batch_statistics
        return {
            "gamma": _as_vector(gamma, channels, "gamma") if affine else one,
            "beta": _as_vector(beta, channels, "beta") if affine and beta is not None else zero,
            "running_mean": _as_vector(running_mean, channels, "running_mean")
            if evaluating else none,
            "running_var": _as_vector(running_var, channels, "running_var")
            if evaluating else none,
        }

    # -- gradient ------------------------------------------------------------------------

    def gradient(self, dy: Any, x: Any, gamma: Any = None, *, eps: float,
                 running_mean: Any = None, running_var: Any = None) -> dict[str, np.ndarray]:
        """The proven gradient: ``{"x": (m, D), "gamma": (D,), "beta": (D,)}`` object arrays.

        Evaluates the symbolic-m closed forms per channel; where the closed form for ∂L/∂x
        reads 0/0 (ε outside the root, training mode, a constant channel: σ = 0) it uses the
        limit the derivation states in ``limits_symbolic["x"]``.
        """
        cols, gcols = as_matrix(x), as_matrix(dy, "dy")
        if len(gcols) != len(cols) or len(gcols[0]) != len(cols[0]):
            raise OptionError.bad_value("dy.shape", np.shape(dy),
                                        f"dy must have the shape of x, {np.shape(x)}")
        params = self._params(len(cols), gamma, None, running_mean, running_var)
        e = mpmath.mpf(exact_eps(eps))
        d = self.derivation
        out = {w: (np.empty((len(cols[0]), len(cols)), dtype=object) if w == "x"
                   else np.empty(len(cols), dtype=object)) for w in d.wrt}
        for c, (col, gcol) in enumerate(zip(cols, gcols, strict=True)):
            st = self.stats(col, e, params["running_mean"][c], params["running_var"][c])
            scalars = self._scalars(st, e, params["gamma"][c], params["running_mean"][c],
                                    params["running_var"][c])
            elements = {"x": col, "g": gcol, "xhat": st.xhat}
            sums: dict[sp.Expr, Any] = {}
            for w in d.wrt:
                expr = d.closed_symbolic[w]
                if w == "x" and self._at_limit(st):
                    expr = d.limits_symbolic["x"]
                values = evaluate(expr, elements, scalars, sums)
                if w == "x":
                    out[w][:, c] = values
                else:
                    out[w][c] = values[0]
        return out

    def _at_limit(self, st: ChannelStats) -> bool:
        return (self.spec.eps_placement == "std" and self.spec.uses_batch_statistics
                and st.sigma == 0)

    def _scalars(self, st: ChannelStats, eps: mpmath.mpf, gamma: mpmath.mpf,
                 running_mean: Any, running_var: Any) -> dict[str, mpmath.mpf]:
        scalars = {"eps": eps, "gamma": gamma, "r": st.r, "sigma": st.sigma}
        if self.spec.uses_batch_statistics:
            scalars.update(mu=st.center, var=st.variance)
        else:
            scalars.update(running_mean=running_mean, running_var=running_var)
        return scalars
