"""Standalone NumPy modules for a layer's forward and backward pass, printed from the proof.

:func:`generate_module` takes the per-channel plan of :mod:`symbn.codegen_plan` (the closed form
rewritten as ``dx = a·dy + b·xs + c`` and proven equal to it), shares common subexpressions of the
per-channel coefficients (``sympy.cse``) and prints them through
:class:`~symbn.numpy_printer.BatchNumPyPrinter`. The data is seen, with its axes in memory order
(so C, Fortran and channels-last arrays are read in place), as a (P, C, Q) array, C the channels.
The fixed helpers around the printed code are the text of :mod:`symbn.codegen_templates` (checks,
layout, blocks) and :mod:`symbn.codegen_passes` (the sums and the elementwise pass). The sums of
the plan (Σ xs², Σ xs, Σ dy, Σ dy·xs, from a first guess at the mean that Σ xs corrects) are one
sweep and ``dx = a·dy + b·xs + c`` another, each going over cache-sized blocks of the batch with a
few vectorized NumPy calls (BLAS, ``np.vecdot`` or ``np.einsum`` for the sums) per block, so that
only the first call reads a block from memory. The loop runs over blocks (a few dozen), never over
elements. Each public function checks its arguments and hands groups of at most ``GROUP`` channels
to a ``_<name>_channels`` function that computes them end to end, so that per-channel values stay
small however many channels there are; the numba backend also prints those lines for one
channel at a time, into quick functions for small arrays (:mod:`symbn.codegen_quick`).
:func:`load` compiles the same source in-process.

>>> from symbn.spec import LayerSpec
>>> bn = load(LayerSpec())
>>> import numpy as np
>>> x = np.array([[1.0, 2.0], [3.0, 6.0]])
>>> dx, dgamma, dbeta = bn.backward(np.ones_like(x), x, np.ones(2))
>>> dbeta.tolist(), float(abs(dx).max()) < 1e-12
([2.0, 2.0], True)
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from typing import Literal

import sympy as sp

from symbn import symbols as S
from symbn.codegen_docstring import describe_y, module_docstring, parameters
from symbn.codegen_lines import (
    at_mean_lines,
    coefficient_lines,
    cse_lines,
    elementwise,
    float64_param,
    keeps_xs,
    math_lines,
    narrow_lines,
    narrowed,
    printer,
    statistics_lines,
    sum_names,
    wrap,
)
from symbn.codegen_passes import passes_source
from symbn.codegen_plan import (
    XS,
    G,
    Plan,
    build_plan,
)
from symbn.codegen_quick import quick_source
from symbn.codegen_templates import layout_source
from symbn.errors import OptionError
from symbn.spec import LayerSpec, checked_spec

Backend = Literal["numpy", "numexpr", "numba"]  # what a generated module computes with
BACKENDS: tuple[Backend, ...] = ("numpy", "numexpr", "numba")
Quick = Callable[[list[str], list[str]], tuple[list[str], str]]  # _pair
COEFFICIENT_NAMES = {G(S.i): "a", XS(S.i): "b", sp.Integer(1): "c"}
FORWARD_NAMES = {XS(S.i): "p", sp.Integer(1): "q"}


def _checks(per_channel: list[str], out: str, with_dy: bool) -> list[str]:
    """The public function's first lines: checks, (P, C, Q) views, the result ``out``.

    The result is laid out in memory as x is, so that its (P, C, Q) view is a view.
    """
    lines = ["    x, axis = _layout(x, axis)"]
    if with_dy:
        lines.append('    dy = _like_x("dy", dy, x)')
    lines.append("    eps = _eps(eps)")
    lines += [f'    {n} = _per_channel("{n}", {n}, x, axis)' for n in per_channel]
    if "running_var" in per_channel:
        lines.append('    running_var = _nonnegative("running_var", running_var)')
    lines += ["    order = _memory_order(x)", "    x3 = _channels(x, axis, order)"]
    if with_dy:
        lines.append("    dy3 = _channels(dy, axis, order)")
    return [*lines, f"    {out} = _empty_like(x, order)",
            f"    {out}3 = _channels({out}, axis, order)"]


def _drop_unused(lines: list[str], names: tuple[str, ...] = ("m", "blocks")) -> list[str]:
    """Drop the one-line assignments of ``names`` that nothing else in ``lines`` reads."""
    for name in names:
        head = f"    {name} = "
        rest = "\n".join(line for line in lines if not line.startswith(head))
        if re.search(rf"(?<![.\w]){name}\b", rest) is None:
            lines = [line for line in lines if not line.startswith(head)]
    return lines


def _pair(name: str, args: list[str], out: str, params: list[str], doc: str,
          public: list[str], results: list[str], body: list[str],
          quick: Quick | None = None) -> list[str]:
    """The public function ``name`` and ``_<name>_channels``, which it calls per channel group.

    ``public`` is the public function's signature and docstring; ``args`` are its (P, C, Q)
    views, ``out`` its result, ``results`` what the group function returns (per channel, put
    into arrays of x's dtype), ``body`` the group function's lines. Parameters the group
    function does not read are not passed (eval-mode dx without gamma needs no running_mean).
    Given ``quick`` (the numba backend's, see :mod:`symbn.codegen_quick`), each group goes
    through ``_fastest``, which calls ``_<name>_quick`` where it can.
    """
    group = f"_{name}_channels"
    body = _drop_unused(body, ("m", "blocks", *params))
    used = [v for v in params if float64_param(v) in body]
    views = [*args, f"{out}3", *used]
    call = f"{group}(k, {', '.join([*views, 'eps'])})"
    target = f"{', '.join(f'{r}[k]' for r in results)} = " if results else ""
    fast: list[str] = []
    if quick is None:
        calls = wrap(target + call, "            ")
    else:  # the call and _fastest's keywords on lines of their own
        fast, keywords = quick([*args, f"{out}3"], used)
        calls = [f"            {target}_fastest(",
                 f"                _{name}_quick, {group}, k, {', '.join([*views, 'eps'])},",
                 f"                {keywords})"]
    lines = [*public, *_checks(params, out, with_dy="dy3" in args)]
    lines += [f"    {r} = np.empty(x3.shape[1], x.dtype)" for r in results]
    lines += ["    with np.errstate(under=\"ignore\"):  # a value below the normal range: no error",
              "        for k in _groups(x3):", *calls]
    lines.append(f"    return {', '.join([out, *results])}")
    summed = ", summed=None" if quick is not None else ""  # see _fastest
    docstring = [f'    """{doc}"""'] if not summed else [
        f"    \"\"\"{doc}", "", "    ``summed``: the shift and sums, if _fastest took them.",
        '    """']
    return [*lines, "", "", f"def {group}(k, {', '.join([*views, 'eps'])}{summed}):",
            *docstring, *body, *(["", "", *fast] if fast else [])]


def _forward_source(plan: Plan, backend: str, params: list[str]) -> list[str]:
    p = printer()
    spec = plan.spec
    coeffs = plan.forward
    names = [(FORWARD_NAMES[k], v) for k, v in sorted(coeffs.items(), key=_key)]
    exprs = list(coeffs.values()) + list(coeffs)
    body = statistics_lines(plan, backend, exprs, ["x3", "y3"], params, "y")
    body += cse_lines(names, p)
    arrays = {"xs" if k == XS(S.i) else "": FORWARD_NAMES[k] for k in sorted(coeffs, key=_key)}
    body += at_mean_lines(plan, arrays, keeps_xs(plan, exprs, backend))
    body += narrow_lines(arrays, "y")
    body += elementwise("y3", arrays, keeps_xs(plan, exprs, backend))
    public = [f"def forward({', '.join(['x', *params])}, *, eps=1e-5, axis=-1):",
              f'    """The layer\'s output y, in the dtype of x ({describe_y(spec)})."""']

    def quick(views: list[str], used: list[str]) -> tuple[list[str], str]:
        ps = printer("_scalar_product")
        lines = math_lines(plan, exprs, ps, LOOP) + cse_lines(names, ps, LOOP)
        return quick_source("forward", views, used, sum_names(exprs), lines, arrays,
                            set(narrowed(arrays)), [])
    return _pair("forward", ["x3"], "y", params,
                 "The forward pass for channels k (a slice) of x3, written into y3.",
                 public, [], body, quick if _has_quick(plan, backend) else None)


def _key(k: sp.Expr) -> int:
    return {G(S.i): 0, XS(S.i): 1}.get(k, 2)


def _backward_source(plan: Plan, backend: str, params: list[str]) -> list[str]:
    dx = plan.backward["x"]
    assert isinstance(dx, dict)
    named = [(COEFFICIENT_NAMES[k], v) for k, v in sorted(dx.items(), key=lambda kv: _key(kv[0]))]
    named += [(f"d{w}", e) for w, e in plan.backward.items() if w != "x"]
    exprs = [e for _, e in named] + list(dx)
    results = [n for n, _ in named if n.startswith("d")]
    body = statistics_lines(plan, backend, exprs, ["dy3", "x3", "dx3"], params, "dx")
    body += coefficient_lines(plan, named, printer())
    arrays = {"dy" if k == G(S.i) else "xs" if k == XS(S.i) else "": COEFFICIENT_NAMES[k]
              for k in sorted(dx, key=_key)}
    body += at_mean_lines(plan, arrays, keeps_xs(plan, exprs, backend))
    body += narrow_lines(arrays, "dx")
    body += elementwise("dx3", arrays, keeps_xs(plan, exprs, backend))
    if results:
        body.append(f"    return {', '.join(f'{n}.reshape(-1)' for n in results)}")
    ret = f"{', '.join(['dx', *results])} ({'each ' if results else ''}in the dtype of x)"
    public = [f"def backward({', '.join(['dy', 'x', *params])}, *, eps=1e-5, axis=-1):",
              f'    """Given dy = dL/dy, return {ret}."""']
    doc = (f"The backward pass for channels k (a slice): dx into dx3"
           f"{', ' + ' and '.join(results) + ' returned' if results else ''}.")

    def quick(views: list[str], used: list[str]) -> tuple[list[str], str]:
        ps = printer("_scalar_product")
        lines = math_lines(plan, exprs, ps, LOOP) + coefficient_lines(plan, named, ps, LOOP)
        return quick_source("backward", views, used, sum_names(exprs), lines, arrays,
                            set(narrowed(arrays)), results)
    return _pair("backward", ["dy3", "x3"], "dx", params, doc, public, results, body,
                 quick if _has_quick(plan, backend) else None)


LOOP = "        "  # the indent of a quick function's per-channel lines


def _has_quick(plan: Plan, backend: str) -> bool:
    """Whether the group functions get quick functions: numba, training (batch statistics)."""
    return backend == "numba" and plan.spec.uses_batch_statistics


def generate_module(spec: LayerSpec, backend: Backend = "numpy") -> str:
    """The source of a standalone module with ``forward`` and ``backward`` for ``spec``.

    The same spec and backend always give the same bytes; the module imports NumPy (and, for
    ``backend="numexpr"`` or ``"numba"``, that library), from the standard library
    contextvars, math, numbers, os, queue and threading, and nothing from symbn.

    Raises
    ------
    OptionError
        For a spec that is not a :class:`LayerSpec`, or a backend other than ``"numpy"``,
        ``"numexpr"`` or ``"numba"``.
    ProofError
        If a per-channel rewrite could not be proven equal to the closed form.

    """
    spec = checked_spec(spec)
    if backend not in BACKENDS:
        raise OptionError.bad_value("backend", backend, BACKENDS)
    plan = build_plan(spec)
    reason = " (unbiased variance divides by m - 1)" if spec.smallest_batch == 2 else ""
    doc = module_docstring(plan, backend)
    standard = ["contextvars", "math", "numbers", "os", "queue", "threading"]
    imports = [*(f"import {name}" for name in standard), "",
               *(["import numexpr as ne"] if backend == "numexpr" else []),
               *(["import numba"] if backend == "numba" else []), "import numpy as np"]
    parts = ['"""' + doc[0], *doc[1:], '"""', "", *imports, "",
             '__all__ = ["backward", "forward"]', "",
             layout_source(spec.smallest_batch, reason).rstrip("\n"), "", "",
             passes_source(backend).strip("\n"), "", "",
             *_forward_source(plan, backend, parameters(spec, True)), "", "",
             *_backward_source(plan, backend, parameters(spec, False))]
    return "\n".join(line.rstrip() for line in parts) + "\n"


def load(spec: LayerSpec, backend: Backend = "numpy") -> types.ModuleType:
    """The generated module for ``spec``, compiled in-process (no file is written).

    Raises
    ------
    OptionError
        For an unknown backend, or one whose library is not installed.

    """
    source = generate_module(spec, backend)
    module = types.ModuleType(f"symbn_generated_{spec.layer}")
    module.__dict__["__source__"] = source
    try:
        exec(compile(source, f"<symbn codegen {spec.describe()}>", "exec"), module.__dict__)
    except ImportError as error:
        raise OptionError.bad_value(
            "backend", backend, f"it needs {error.name}, which is not installed here "
            f"(pip install {error.name}); backend='numpy' needs only NumPy") from None
    return module


__all__ = ["BACKENDS", "Backend", "generate_module", "load"]
