"""The truth generated code is checked against: the closed form, evaluated with mpmath.

For each channel the statistics are computed exactly enough (at ``dps`` digits, from the
input's float values) and the closed form of :func:`symbn.derive` is evaluated by
:class:`symbn.reference.Reference`; where the closed form reads 0/0 (ε outside the root, a
constant channel) its limit from the derivation's conditions is evaluated instead.

>>> import numpy as np
>>> from symbn.spec import LayerSpec
>>> x = np.array([[1.0], [3.0]])
>>> out = reference(LayerSpec(), np.ones_like(x), x, np.ones(1))  # dy constant: dx = 0
>>> [round(float(v), 12) for v in out.grads["x"][:, 0]]
[0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from symbn.api import Derivation, derive
from symbn.precision import working_digits
from symbn.reference import Reference as MpReference
from symbn.reference import as_matrix
from symbn.spec import LayerSpec


@dataclass(frozen=True)
class Reference:
    """Gradients (float64 arrays shaped like the outputs) and each channel's natural scales.

    ``scales["x"]`` is ‖dy‖·|γ|·r per channel (the size dx is measured against: with m = 1 or 2
    dx itself is O(ε)); ``scales["gamma"]`` is ‖dy‖·max(‖x̂‖, 1) and ``scales["beta"]`` is
    ‖dy‖·√m, the Cauchy–Schwarz bounds of Σ dy·x̂ and Σ dy.
    """

    grads: dict[str, np.ndarray]
    scales: dict[str, np.ndarray]


def _channels(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` as (elements per channel, channels)."""
    moved = np.moveaxis(np.asarray(a), axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def reference(spec: LayerSpec, dy: np.ndarray, x: np.ndarray, *params: np.ndarray,
              eps: float = 1e-5, axis: int = -1, dps: int = 50,
              derivation: Derivation | None = None) -> Reference:
    """The closed-form gradients of ``spec`` at (dy, x, params), evaluated at ``dps`` digits.

    ``params`` are as the generated ``backward`` takes them: gamma (if affine), then
    running_mean and running_var (evaluation mode). The evaluation is
    :meth:`symbn.reference.Reference.gradient`; this adds the layout and the natural scales.
    """
    truth = MpReference(spec, derivation or derive(spec))
    params = tuple(np.asarray(p, dtype=np.float64) for p in params)
    gamma = params[0] if spec.affine else np.ones(x.shape[axis])
    running = (params[-2], params[-1]) if spec.mode == "eval" else (None, None)
    xc = _channels(x, axis).astype(np.float64)
    gc = _channels(dy, axis).astype(np.float64)
    m, channels = xc.shape
    with working_digits(dps):
        exact = truth.gradient(gc, xc, gamma if spec.affine else None, eps=eps,
                               running_mean=running[0], running_var=running[1])
        e = mpmath.mpf(eps)
        scales = {w: np.zeros(channels) for w in exact}
        for k, column in enumerate(as_matrix(xc)):
            st = truth.stats(column, e, *(None if v is None else mpmath.mpf(v[k])
                                          for v in running))
            norm_g = mpmath.sqrt(mpmath.fsum(mpmath.mpf(g) ** 2 for g in gc[:, k]))
            norm_xhat = max(mpmath.sqrt(mpmath.fsum(v * v for v in st.xhat)), 1)
            sizes = {"x": abs(mpmath.mpf(gamma[k])) * st.r, "gamma": norm_xhat,
                     "beta": mpmath.sqrt(m)}
            for w in exact:
                scales[w][k] = float(norm_g * sizes[w])
    grads = {w: np.vectorize(float, otypes=[np.float64])(v) for w, v in exact.items()}
    moved = np.moveaxis(np.asarray(x), axis, -1).shape
    grads["x"] = np.moveaxis(grads["x"].reshape(moved), -1, axis)
    return Reference(grads, scales)


def relative_errors(spec: LayerSpec, got: tuple[np.ndarray, ...] | np.ndarray, ref: Reference,
                    axis: int = -1) -> dict[str, float]:
    """Worst channel's ‖got − truth‖ / natural scale, for each output of ``backward``."""
    outputs = got if isinstance(got, tuple) else (got,)
    names = ("x", "gamma", "beta")[:len(outputs)]
    out: dict[str, float] = {}
    for name, value in zip(names, outputs, strict=True):
        truth, scale = ref.grads[name], ref.scales[name]
        diff = np.asarray(value, dtype=np.float64) - truth
        if name == "x":
            diff = _channels(diff, axis)
        with np.errstate(divide="ignore", invalid="ignore"):  # divided first: dx may be 1e300
            rel = np.abs(np.where(scale > 0, diff / np.where(scale > 0, scale, 1), diff))
        if name == "x":
            rel = np.sqrt((rel ** 2).sum(axis=0))
        out[name] = float(rel.max())
    return out
