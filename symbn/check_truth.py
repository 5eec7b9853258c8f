"""What a check compares a backward's outputs against: the reference and its tolerances.

:func:`case_truth` evaluates the proven gradient on one case with mpmath
(:class:`symbn.reference.Reference`) and gives each output's natural scale and conditioning κ
per channel; :func:`tolerance` turns the dtype, m and κ into a relative tolerance
(``TOLERANCE_RULE`` says how, in words, for reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from symbn.cases import Case
from symbn.check_report import UNINFORMATIVE
from symbn.precision import working_digits
from symbn.reference import Reference

__all__ = ["SAFETY", "SUBNORMAL_SPACINGS", "TOLERANCE_RULE", "Truth", "case_truth", "tolerance"]

SAFETY = 16.0               # tolerance = SAFETY · u · κ · (1 + √m)
SUBNORMAL_SPACINGS = 16     # differences below this many subnormal spacings count as 0


# -- tolerances ------------------------------------------------------------------------------

TOLERANCE_RULE = (
    f"per channel, tolerance = {SAFETY:g} · u · κ · (1 + √m), u = unit roundoff of the dtype, "
    "m = elements per channel; for dx in training κ = (1 + |μ|·r)·(1 + max|x̂|) (digits lost "
    "forming x − μ against the scale 1/r, and the size of the x̂·Σ(dy·x̂) term), in eval mode "
    "κ = 1 (dx = γ·r·dy); for dgamma and dbeta "
    "κ = 1 (dgamma's scale Σ|dy·x̂| + |μ|·r·Σ|dy| already holds the cost of x − μ); "
    f"differences below {SUBNORMAL_SPACINGS} subnormal spacings of the dtype count as 0. A "
    f"channel whose tolerance exceeds {UNINFORMATIVE:g} is uninformative: only finiteness is "
    "checked"
)


def tolerance(dtype: Any, m: int, kappa: Any) -> Any:
    """The relative tolerance for a result computed in ``dtype``, see ``TOLERANCE_RULE``.

    >>> f"{tolerance('float64', 64, 1.0):.2e}"
    '1.60e-14'
    """
    u = float(np.finfo(np.dtype(dtype)).eps) / 2
    return SAFETY * u * np.minimum(kappa, 1 / u) * (1 + math.sqrt(m))


# -- the reference on one case ----------------------------------------------------------------

@dataclass(frozen=True)
class Truth:
    """The reference gradients of one case, with the scales and conditioning they are judged by."""

    grads: dict[str, np.ndarray]    # float64, in the case's layout (x-shaped, or (D,))
    scales: dict[str, np.ndarray]   # per channel
    kappas: dict[str, np.ndarray]   # per channel
    m: int
    columns: dict[str, Any] = field(repr=False)


def case_truth(ref: Reference, case: Case, dps: int) -> Truth:
    """The mpmath reference on ``case`` at ``dps`` digits, with per-channel scales and κ."""
    spec = ref.spec
    x2, g2 = case.columns(case.x), case.columns(case.dy)
    m, channels = x2.shape
    gamma = np.asarray(case.gamma, dtype=np.float64) if spec.affine else np.ones(channels)
    with working_digits(dps):
        grads = ref.gradient(g2, x2, gamma if spec.affine else None, eps=float(case.eps),
                             running_mean=case.running_mean, running_var=case.running_var)
        e = mpmath.mpf(float(case.eps))
        params = ref._params(channels, gamma, None, case.running_mean, case.running_var)
        stats = [ref.stats([mpmath.mpf(float(v)) for v in x2[:, c]], e,
                           params["running_mean"][c], params["running_var"][c])
                 for c in range(channels)]
        r = np.array([float(s.r) for s in stats])
        center = np.array([float(s.center) for s in stats])
        xhat = np.array([[float(v) for v in s.xhat] for s in stats]).T
    g64 = g2.astype(np.float64)
    offset = np.abs(center) * r         # |μ|·r: what rounding x − μ costs, on x̂'s scale
    scales = {"x": np.abs(gamma) * r * np.abs(g64).max(axis=0),
              "gamma": np.abs(g64 * xhat).sum(axis=0) + offset * np.abs(g64).sum(axis=0),
              "beta": np.abs(g64).sum(axis=0)}
    # eval mode: dx = γ·r·dy forms neither x − μ nor x̂ (a review: with κ of training, a
    # float32 dx 1% wrong passed at a mean offset of 1e3)
    dx_kappa = ((1 + offset) * (1 + np.abs(xhat).max(axis=0)) if spec.uses_batch_statistics
                else np.ones(channels))
    kappas = {"x": dx_kappa, "gamma": np.ones(channels), "beta": np.ones(channels)}
    out = {}
    for w, a in grads.items():
        a64 = a.astype(np.float64)
        if w == "x":
            shape = np.moveaxis(np.asarray(case.x), case.axis, -1).shape
            a64 = np.moveaxis(a64.reshape(shape), -1, case.axis)
        out[w] = a64
    cols = {"x": x2, "g": g2, "xhat": xhat, "gamma": gamma, "r": r, "stats": stats, "eps": e,
            "dx": grads["x"].astype(np.float64)}
    return Truth(out, scales, kappas, m, cols)
