"""An independent ground truth: expand μ and σ² into the elements and call sympy.diff.

This is the slow, obviously-correct route (it grows like m^3.5), used only for small m.
"""

from __future__ import annotations

import sympy as sp

from symbn.spec import LayerSpec


def naive_gradients(spec: LayerSpec, m: int) -> tuple[list[sp.Symbol], dict[str, list[sp.Expr]],
                                                      dict[str, sp.Symbol]]:
    """Return (xs, {"x": [dL/dx_k], "gamma": [..], "beta": [..]}, scalar symbols)."""
    xs = list(sp.symbols(f"x0:{m}", real=True))
    gs = list(sp.symbols(f"g0:{m}", real=True))
    gamma, beta = sp.symbols("gamma beta", real=True)
    eps = sp.Symbol("eps", positive=True)
    rm, rv = sp.Symbol("rm", real=True), sp.Symbol("rv", positive=True)
    if spec.mode == "train":
        mu = sum(xs) / m
        divisor = m if spec.variance == "biased" else m - 1
        var = sum((x - mu) ** 2 for x in xs) / divisor
    else:
        mu, var = rm, rv
    if spec.eps_placement == "sqrt":
        xhat = [(x - mu) / sp.sqrt(var + eps) for x in xs]
    else:
        xhat = [(x - mu) / (sp.sqrt(var) + eps) for x in xs]
    ys = [gamma * h + beta for h in xhat] if spec.affine else xhat
    loss = sum(g * y for g, y in zip(gs, ys, strict=True))
    out = {"x": [sp.diff(loss, x) for x in xs]}
    if spec.affine:
        out["gamma"] = [sp.diff(loss, gamma)]
        out["beta"] = [sp.diff(loss, beta)]
    return xs, out, {"g": gs, "gamma": gamma, "beta": beta, "eps": eps, "rm": rm, "rv": rv}
