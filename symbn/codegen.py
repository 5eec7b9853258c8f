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

import sympy as sp

from symbn import symbols as S
from symbn.codegen_docstring import WIDTH, describe_y, module_docstring, parameters
from symbn.codegen_passes import passes_source
from symbn.codegen_plan import (
    DELTA,
    SIGMA_NZ,
    SUMS,
    XS,
    G,
    Plan,
    build_plan,
)
from symbn.codegen_quick import quick_source
from symbn.codegen_templates import layout_source
from symbn.errors import OptionError, ProofError
from symbn.numpy_printer import BatchNumPyPrinter
from symbn.spec import LayerSpec

BACKENDS: tuple[str, ...] = ("numpy", "numexpr", "numba")
Quick = Callable[[list[str], list[str]], tuple[list[str], int, tuple[int, ...]]]  # _pair
SUM_XS_XS = sp.Symbol("sum_xs_xs", real=True)
SUM_XS = sp.Symbol("sum_xs", real=True)
COEFFICIENT_NAMES = {G(S.i): "a", XS(S.i): "b", sp.Integer(1): "c"}
FORWARD_NAMES = {XS(S.i): "p", sp.Integer(1): "q"}


def _printer(product: str = "_product") -> BatchNumPyPrinter:
    """The printer of per-channel values: they name no array, so an element of one is an error.

    A product with a cube is formed by the module's ``product`` (see ``BatchNumPyPrinter``):
    ``_product`` on per-channel arrays, ``_scalar_product`` on one channel's values.
    """
    return BatchNumPyPrinter({"arrays": {}, "product": product})


def _wrap(line: str, indent: str = "    ") -> list[str]:
    """Split a long ``name = expression`` line in parentheses, at spaces outside strings."""
    if len(indent + line) <= WIDTH or " = " not in line:
        return [indent + line]
    target, expr = line.split(" = ", 1)
    words, word, quote = [], "", ""
    for ch in expr:
        if ch in "\"'":
            quote = "" if quote == ch else (quote or ch)
        if ch == " " and not quote:
            words.append(word)
            word = ""
        else:
            word += ch
    words.append(word)
    inner = indent + "    "
    lines: list[str] = []
    for w in words:
        if lines and len(inner + lines[-1]) + 1 + len(w) <= WIDTH:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return [f"{indent}{target} = (", *(inner + b for b in lines), f"{indent})"]


def _assign(name: str, expr: sp.Expr, printer: BatchNumPyPrinter,
            indent: str = "    ") -> list[str]:
    return _wrap(f"{name} = {printer.doprint(expr)}", indent)


def _cse_lines(named: list[tuple[str, sp.Expr]], printer: BatchNumPyPrinter,
               indent: str = "    ") -> list[str]:
    """Assignments for ``named`` with common subexpressions computed once (``t0``, ``t1``…)."""
    if not named:
        return []
    shared, reduced = sp.cse([e for _, e in named], symbols=sp.numbered_symbols("t"))
    lines = [line for sym, e in shared for line in _assign(str(sym), e, printer, indent)]
    for (name, _), e in zip(named, reduced, strict=True):
        lines += _assign(name, e, printer, indent)
    return lines


def _elementwise(out: str, coeffs: dict[str, str], kept_xs: bool) -> list[str]:
    """``out = a*dy + b*(x - shift) + c`` into the (P, C, Q) array ``out``.

    ``coeffs`` maps ``"dy"``, ``"xs"`` and ``""`` (the constant term) to the names of their
    per-channel coefficients; absent terms are left out. The module's ``_combine`` (one per
    backend) makes the pass, taking xs from ``out`` if ``kept_xs`` (the sums left it there).
    """
    kept = ["x3", "shift"] if "xs" in coeffs and not kept_xs else []
    args = ", ".join([out, "blocks", "dy3" if "dy" in coeffs else "None",
                      *(coeffs.get(k, "None") for k in ("dy", "xs", "")), *kept])
    return [f"    _combine({args})"]


def _needs(exprs: list[sp.Expr], symbol: sp.Symbol) -> bool:
    return any(e.has(symbol) for e in exprs)


def _keeps_xs(plan: Plan, exprs: list[sp.Expr], backend: str) -> bool:
    """Whether the sums leave xs in the result array for the elementwise pass to finish."""
    sums = plan.spec.uses_batch_statistics or any(_needs(exprs, s) for s in SUMS)
    return backend == "numpy" and sums and _needs(exprs, XS(S.i))


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


def _float64_param(name: str) -> str:
    """The group function's line cutting parameter ``name`` to its channels, in float64."""
    return f"    {name} = {name}[:, k].astype(np.float64)"


def _statistics_lines(plan: Plan, backend: str, exprs: list[sp.Expr], arrays: list[str],
                      params: list[str], out: str) -> list[str]:
    """A channel group's first lines: its views, shift, sums, statistics, σ and r.

    ``arrays`` (the (P, C, Q) views) and ``params`` (per channel, taken in float64) are cut to
    the group's channels ``k``; ``out`` names the result array.
    """
    lines = _wrap(f"{', '.join(arrays)} = {', '.join(f'{v}[:, k]' for v in arrays)}")
    lines += [_float64_param(v) for v in params]
    blocks = "None  # the numba passes need no blocks" if backend == "numba" else "_blocks(x3)"
    lines += ["    m = x3.shape[0] * x3.shape[2]", f"    blocks = {blocks}"]
    p = _printer()
    training = plan.spec.uses_batch_statistics  # the sums give the mean and the variance
    g_sums = [s for s in SUMS if _needs(exprs, s)]
    if g_sums and len(g_sums) != len(SUMS):
        raise AssertionError(f"the sums {g_sums} are computed together")
    keep = [f"keep={out}3"] if _keeps_xs(plan, exprs, backend) else []
    if training:
        args = ", ".join(["x3", "shift", "blocks", *(["dy3"] if g_sums else []), *keep])
        lines.append("    shift = _pilot(x3)")  # a first guess, which the sweep corrects
        lines += _wrap(f"shift, ({', '.join(_sum_names(exprs))}) = _centred_sums({args}, "
                       "first=k.start)")
    else:
        if _needs(exprs, XS(S.i)) or g_sums or _needs(exprs, DELTA):
            lines.append(
                f"    shift, delta = _running_shift(x3, {plan.center.name}, blocks, k.start)")
        if g_sums:
            args = ", ".join(["x3", "shift", "blocks", "dy3", "squares=False", *keep])
            lines.append(f"    {', '.join(s.name for s in g_sums)} = _sums({args})")
    return lines + _math_lines(plan, exprs, p)


def _sum_names(exprs: list[sp.Expr]) -> list[str]:
    """The names of a training group's sums: of xs² and xs, and of dy and dy·xs if used."""
    return ["sum_xs_xs", "sum_xs", *(s.name for s in SUMS if _needs(exprs, s))]


def _math_lines(plan: Plan, exprs: list[sp.Expr], p: BatchNumPyPrinter,
                indent: str = "    ") -> list[str]:
    """The per-channel statistics after the sums: δ and the variance (training), σ and r."""
    lines = _training_statistics(plan, p, indent) if plan.spec.uses_batch_statistics else []
    for symbol, value in plan.definitions:
        lines += _assign(symbol.name, value, p, indent)
    if _needs(exprs, SIGMA_NZ):
        lines.append(f"{indent}sigma_nz = np.where(sigma > 0, sigma, 1.0)  # sigma == 0: "
                     "limit below")
    return lines


def _training_statistics(plan: Plan, p: BatchNumPyPrinter, indent: str = "    ") -> list[str]:
    """``delta`` and ``var`` from the sums of xs (the plan's proven forms), var clipped at 0."""
    if plan.delta is None or plan.variance is None:
        raise AssertionError("a training plan has delta and variance")
    delta = plan.delta.xreplace({sp.Sum(XS(S.j), (S.j, 1, S.m)): SUM_XS})
    variance = plan.variance.xreplace({sp.Sum(XS(S.j) ** 2, (S.j, 1, S.m)): SUM_XS_XS})
    if delta.atoms(sp.Sum) or variance.atoms(sp.Sum):
        raise AssertionError(f"delta {plan.delta} or variance {plan.variance} has other sums "
                             "than of xs and xs**2")
    return [*_assign("delta", delta, p, indent), *_assign("var", variance, p, indent),
            f"{indent}var = np.maximum(var, 0.0)  # rounding must not make it negative"]


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
    used = [v for v in params if _float64_param(v) in body]
    views = [*args, f"{out}3", *used]
    call = f"{group}(k, {', '.join([*views, 'eps'])})"
    fast: list[str] = []
    if quick is not None:
        fast, rows, kept = quick([*args, f"{out}3"], used)
        call = (f"_fastest(_{name}_quick, {rows}, {kept}, {group}, k, "
                f"{', '.join([*views, 'eps'])})")
    lines = [*public, *_checks(params, out, with_dy="dy3" in args)]
    lines += [f"    {r} = np.empty(x3.shape[1], x.dtype)" for r in results]
    lines += ["    with np.errstate(under=\"ignore\"):  # a value below the normal range: no error",
              "        for k in _groups(x3):",
              *_wrap(f"{', '.join(f'{r}[k]' for r in results)} = {call}" if results else call,
                     "            ")]
    lines.append(f"    return {', '.join([out, *results])}")
    return [*lines, "", "", f"def {group}(k, {', '.join([*views, 'eps'])}):",
            f'    """{doc}"""', *body, *(["", "", *fast] if fast else [])]


def _forward_source(plan: Plan, backend: str, params: list[str]) -> list[str]:
    p = _printer()
    spec = plan.spec
    coeffs = plan.forward
    names = [(FORWARD_NAMES[k], v) for k, v in sorted(coeffs.items(), key=_key)]
    exprs = list(coeffs.values()) + list(coeffs)
    body = _statistics_lines(plan, backend, exprs, ["x3", "y3"], params, "y")
    body += _cse_lines(names, p)
    arrays = {"xs" if k == XS(S.i) else "": FORWARD_NAMES[k] for k in sorted(coeffs, key=_key)}
    body += _narrow_lines(arrays, "y")
    body += _elementwise("y3", arrays, _keeps_xs(plan, exprs, backend))
    public = [f"def forward({', '.join(['x', *params])}, *, eps=1e-5, axis=-1):",
              f'    """The layer\'s output y, in the dtype of x ({describe_y(spec)})."""']

    def quick(views: list[str], used: list[str]) -> tuple[list[str], int, tuple[int, ...]]:
        ps = _printer("_scalar_product")
        lines = _math_lines(plan, exprs, ps, LOOP) + _cse_lines(names, ps, LOOP)
        return quick_source("forward", views, used, _sum_names(exprs), lines, arrays,
                            set(_narrowed(arrays)), [])
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
    body = _statistics_lines(plan, backend, exprs, ["dy3", "x3", "dx3"], params, "dx")
    body += _coefficient_lines(plan, named, _printer())
    arrays = {"dy" if k == G(S.i) else "xs" if k == XS(S.i) else "": COEFFICIENT_NAMES[k]
              for k in sorted(dx, key=_key)}
    body += _narrow_lines(arrays, "dx")
    body += _elementwise("dx3", arrays, _keeps_xs(plan, exprs, backend))
    if results:
        body.append(f"    return {', '.join(f'{n}.reshape(-1)' for n in results)}")
    ret = f"{', '.join(['dx', *results])} ({'each ' if results else ''}in the dtype of x)"
    public = [f"def backward({', '.join(['dy', 'x', *params])}, *, eps=1e-5, axis=-1):",
              f'    """Given dy = dL/dy, return {ret}."""']
    doc = (f"The backward pass for channels k (a slice): dx into dx3"
           f"{', ' + ' and '.join(results) + ' returned' if results else ''}.")

    def quick(views: list[str], used: list[str]) -> tuple[list[str], int, tuple[int, ...]]:
        ps = _printer("_scalar_product")
        lines = _math_lines(plan, exprs, ps, LOOP) + _coefficient_lines(plan, named, ps, LOOP)
        return quick_source("backward", views, used, _sum_names(exprs), lines, arrays,
                            set(_narrowed(arrays)), results)
    return _pair("backward", ["dy3", "x3"], "dx", params, doc, public, results, body,
                 quick if _has_quick(plan, backend) else None)


LOOP = "        "  # the indent of a quick function's per-channel lines


def _narrowed(terms: dict[str, str]) -> list[str]:
    """The coefficients taken in x's dtype: all but that of xs (b, p).

    That one stays float64: _combine splits it where it is beyond x's dtype's range.
    """
    return [n for t, n in terms.items() if t != "xs"]


def _narrow_lines(terms: dict[str, str], result: str) -> list[str]:
    """The lines narrowing :func:`_narrowed`'s coefficients (see the module's _narrow).

    dy's (a) is refused too where it keeps too few digits.
    """
    scales = {terms.get("dy")}
    return [f'    {n} = _narrow({n}, "{n}", "{result}", x3.dtype, k.start'
            f'{", scales=True" if n in scales else ""})' for n in _narrowed(terms)]


def _has_quick(plan: Plan, backend: str) -> bool:
    """Whether the group functions get quick functions: numba, training (batch statistics)."""
    return backend == "numba" and plan.spec.uses_batch_statistics


def _coefficient_lines(plan: Plan, named: list[tuple[str, sp.Expr]], p: BatchNumPyPrinter,
                       indent: str = "    ") -> list[str]:
    """The lines of dx's coefficients and the parameters' gradients, c after a and b."""
    if plan.c_in_a_b is None:
        return _cse_lines(named, p, indent)
    return [*_cse_lines([(n, e) for n, e in named if n != "c"], p, indent),
            f"{indent}# dx sums to 0 over each channel: c follows from a and b (symbn proved it)",
            f"{indent}c = {_c_line(plan.c_in_a_b)}"]


C_LINE = "-(a/m)*sum_g - b*delta"


def _c_line(c_in_a_b: sp.Expr) -> str:
    """The line that computes c from a and b, checked against the proven expression.

    It divides by m before multiplying by Σ dy: ``a*sum_g`` alone can overflow where c does
    not (γ = 1e305). SymPy would print ``-a*sum_g/m``, so the line is written here.
    """
    names = {str(s): s for s in c_in_a_b.free_symbols}
    if sp.expand(sp.sympify(C_LINE, locals=names) - c_in_a_b) != 0:
        raise ProofError(f"{C_LINE} is not {c_in_a_b}")
    return C_LINE


def generate_module(spec: LayerSpec, backend: str = "numpy") -> str:
    """The source of a standalone module with ``forward`` and ``backward`` for ``spec``.

    The same spec and backend always give the same bytes; the module imports NumPy (and, for
    ``backend="numexpr"`` or ``"numba"``, that library), from the standard library
    contextvars, os, queue and threading, and nothing from symbn.

    Raises
    ------
    OptionError
        For a backend other than ``"numpy"``, ``"numexpr"`` or ``"numba"``.
    ProofError
        If a per-channel rewrite could not be proven equal to the closed form.

    """
    if backend not in BACKENDS:
        raise OptionError.bad_value("backend", backend, BACKENDS)
    plan = build_plan(spec)
    unbiased = spec.variance == "unbiased" and spec.uses_batch_statistics
    reason = " (unbiased variance divides by m - 1)" if unbiased else ""
    doc = module_docstring(plan, backend)
    standard = ["contextvars", "os", "queue", "threading"]
    imports = [*(f"import {name}" for name in standard), "",
               *(["import numexpr as ne"] if backend == "numexpr" else []),
               *(["import numba"] if backend == "numba" else []), "import numpy as np"]
    parts = ['"""' + doc[0], *doc[1:], '"""', "", *imports, "",
             '__all__ = ["backward", "forward"]', "",
             layout_source(2 if unbiased else 1, reason).rstrip("\n"), "", "",
             passes_source(backend).strip("\n"), "", "",
             *_forward_source(plan, backend, parameters(spec, True)), "", "",
             *_backward_source(plan, backend, parameters(spec, False))]
    return "\n".join(line.rstrip() for line in parts) + "\n"


def load(spec: LayerSpec, backend: str = "numpy") -> types.ModuleType:
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


__all__ = ["BACKENDS", "generate_module", "load"]
