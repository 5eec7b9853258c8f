"""The SymPy symbols symbn's expressions are written in: one place for every name.

Elements of the batch are undefined functions of an integer index, ``x(i)`` and ``g(i)``
(the upstream gradient ∂L/∂yᵢ), so that ``Sum(g(j)*x(j), (j, 1, m))`` is a plain SymPy
expression that ``sympy.sympify`` reads back. ``i`` is the index of the element a gradient
is about; sums run over ``j`` from 1 to ``m``. With a concrete batch size the elements are
symbols ``x_0 … x_{m-1}``.
"""

from __future__ import annotations

import sympy as sp

i = sp.Symbol("i", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)

mu = sp.Symbol("mu", real=True)
var = sp.Symbol("var", nonnegative=True)
eps = sp.Symbol("eps", positive=True)
gamma = sp.Symbol("gamma", real=True)
beta = sp.Symbol("beta", real=True)
running_mean = sp.Symbol("running_mean", real=True)
running_var = sp.Symbol("running_var", nonnegative=True)
loss = sp.Symbol("L", real=True)

# Abbreviations used only to present closed forms.
r = sp.Symbol("r", positive=True)
sigma = sp.Symbol("sigma", nonnegative=True)

SCALARS: dict[str, sp.Symbol] = {
    s.name: s for s in (mu, var, eps, gamma, beta, running_mean, running_var, loss, r, sigma)
}

# What each name means, for documentation and the JSON output.
MEANINGS: dict[str, str] = {
    "m": "batch size (number of elements reduced over)",
    "i": "index of the element a gradient is about (1..m)",
    "j": "summation index (1..m)",
    "x": "input elements: x(i) with symbolic m, x_0..x_{m-1} with concrete m",
    "g": "upstream gradient dL/dy: g(i), or g_0..g_{m-1}",
    "mu": "batch mean (1/m) * Sum(x(j))",
    "var": "batch variance sigma^2 (biased: /m, unbiased: /(m-1))",
    "eps": "epsilon > 0, added for numerical stability",
    "gamma": "learned scale (starts at 1)",
    "beta": "learned shift (starts at 0)",
    "running_mean": "running mean, an input in eval mode",
    "running_var": "running variance, an input in eval mode",
    "xhat": "normalized input",
    "y": "layer output",
    "L": "loss, L = Sum(g(j)*y(j))",
    "r": "1/sqrt(var + eps), the inverse standard deviation (eps_placement='sqrt')",
    "sigma": "sqrt(var), the standard deviation (eps_placement='std')",
    "dL_d<q>": "the adjoint dL/dq of quantity q: dL_dxhat(j) with symbolic m, dL_dxhat_0.. "
               "with concrete m, dL_dmu, dL_dvar for the statistics",
}


def placeholder(name: str) -> sp.Symbol:
    """The symbol that stands for one element of ``name`` inside a graph node's expression."""
    return SCALARS.get(name) or sp.Symbol(name, real=True)


def element_function(name: str) -> sp.FunctionClass:
    """The undefined function whose value at an index is one element: ``x`` in ``x(i)``."""
    return sp.Function(name)


def adjoint_name(name: str) -> str:
    """The name of ∂L/∂name in recorded steps.

    >>> adjoint_name("xhat")
    'dL_dxhat'
    """
    return f"dL_d{name}"
