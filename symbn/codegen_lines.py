"""The lines of a generated module's group functions, printed from the per-channel plan.

:mod:`symbn.codegen` assembles a module from these: a channel group's statistics after its sums
(``statistics_lines``, ``math_lines``), the per-channel coefficients with common
subexpressions shared (``cse_lines``, ``coefficient_lines``), their narrowing to x's dtype
(``narrow_lines``) and the call of the elementwise pass (``elementwise``), each printed
through :class:`~symbn.numpy_printer.BatchNumPyPrinter`, for per-channel arrays or (the numba
backend's quick functions) for one channel's values.

>>> wrap("t = " + " + ".join(["a"] * 40), "")[0]
't = ('
"""

from __future__ import annotations

import sympy as sp

from symbn import symbols as S
from symbn.codegen_docstring import WIDTH
from symbn.codegen_plan import DELTA, SIGMA_NZ, SUMS, XS, Plan
from symbn.errors import ProofError
from symbn.numpy_printer import BatchNumPyPrinter

SUM_XS_XS = sp.Symbol("sum_xs_xs", real=True)
SUM_XS = sp.Symbol("sum_xs", real=True)


def printer(product: str = "_product") -> BatchNumPyPrinter:
    """The printer of per-channel values: they name no array, so an element of one is an error.

    A product with a cube is formed by the module's ``product`` (see ``BatchNumPyPrinter``):
    ``_product`` on per-channel arrays, ``_scalar_product`` on one channel's values.
    """
    return BatchNumPyPrinter({"arrays": {}, "product": product})


def wrap(line: str, indent: str = "    ") -> list[str]:
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
    return wrap(f"{name} = {printer.doprint(expr)}", indent)


def cse_lines(named: list[tuple[str, sp.Expr]], printer: BatchNumPyPrinter,
               indent: str = "    ") -> list[str]:
    """Assignments for ``named`` with common subexpressions computed once (``t0``, ``t1``…)."""
    if not named:
        return []
    shared, reduced = sp.cse([e for _, e in named], symbols=sp.numbered_symbols("t"))
    lines = [line for sym, e in shared for line in _assign(str(sym), e, printer, indent)]
    for (name, _), e in zip(named, reduced, strict=True):
        lines += _assign(name, e, printer, indent)
    return lines


def elementwise(out: str, coeffs: dict[str, str], kept_xs: bool) -> list[str]:
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


def keeps_xs(plan: Plan, exprs: list[sp.Expr], backend: str) -> bool:
    """Whether the sums leave xs in the result array for the elementwise pass to finish."""
    sums = plan.spec.uses_batch_statistics or any(_needs(exprs, s) for s in SUMS)
    return backend == "numpy" and sums and _needs(exprs, XS(S.i))


def float64_param(name: str) -> str:
    """The group function's line cutting parameter ``name`` to its channels, in float64."""
    return f"    {name} = {name}[:, k].astype(np.float64)"


def statistics_lines(plan: Plan, backend: str, exprs: list[sp.Expr], arrays: list[str],
                      params: list[str], out: str) -> list[str]:
    """A channel group's first lines: its views, shift, sums, statistics, σ and r.

    ``arrays`` (the (P, C, Q) views) and ``params`` (per channel, taken in float64) are cut to
    the group's channels ``k``; ``out`` names the result array.
    """
    lines = wrap(f"{', '.join(arrays)} = {', '.join(f'{v}[:, k]' for v in arrays)}")
    lines += [float64_param(v) for v in params]
    blocks = "None  # the numba passes need no blocks" if backend == "numba" else "_blocks(x3)"
    lines += ["    m = x3.shape[0] * x3.shape[2]", f"    blocks = {blocks}"]
    p = printer()
    training = plan.spec.uses_batch_statistics  # the sums give the mean and the variance
    g_sums = [s for s in SUMS if _needs(exprs, s)]
    if g_sums and len(g_sums) != len(SUMS):
        raise AssertionError(f"the sums {g_sums} are computed together")
    keep = [f"keep={out}3"] if keeps_xs(plan, exprs, backend) else []
    if training:
        args = ", ".join(["x3", "shift", "blocks", *(["dy3"] if g_sums else []), *keep])
        sums = f"shift, ({', '.join(sum_names(exprs))})"
        if backend == "numba":  # _fastest may have taken them (see _has_quick)
            lines.append("    if summed is None:  # the shift and sums, unless _fastest took them")
            lines.append("        shift = _pilot(x3)")
            lines += wrap(f"summed = _centred_sums({args}, first=k.start)", "        ")
            lines.append(f"    {sums} = summed")
        else:
            lines.append("    shift = _pilot(x3)")  # a first guess, which the sweep corrects
            lines += wrap(f"{sums} = _centred_sums({args}, first=k.start)")
    else:
        if _needs(exprs, XS(S.i)) or g_sums or _needs(exprs, DELTA):
            lines.append(
                f"    shift, delta = _running_shift(x3, {plan.center.name}, blocks, k.start)")
        if g_sums:
            args = ", ".join(["x3", "shift", "blocks", "dy3", "squares=False", *keep])
            lines.append(f"    {', '.join(s.name for s in g_sums)} = _sums({args})")
    return lines + math_lines(plan, exprs, p)


def sum_names(exprs: list[sp.Expr]) -> list[str]:
    """The names of a training group's sums: of xs² and xs, and of dy and dy·xs if used."""
    return ["sum_xs_xs", "sum_xs", *(s.name for s in SUMS if _needs(exprs, s))]


def math_lines(plan: Plan, exprs: list[sp.Expr], p: BatchNumPyPrinter,
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


def narrowed(terms: dict[str, str]) -> list[str]:
    """The coefficients taken in x's dtype: all but that of xs (b, p).

    That one stays float64: _combine splits it where it is beyond x's dtype's range.
    """
    return [n for t, n in terms.items() if t != "xs"]


def narrow_lines(terms: dict[str, str], result: str) -> list[str]:
    """The lines narrowing :func:`narrowed`'s coefficients (see the module's _narrow).

    dy's (a) is refused too where it keeps too few digits; xs's (b, p), which stays float64,
    where the elementwise pass could not apply it (``split``).
    """
    options = {terms.get("dy"): ", scales=True", terms.get("xs"): ", split=True"}
    return [f'    {n} = _narrow({n}, "{n}", "{result}", x3.dtype, k.start{options.get(n, "")})'
            for n in [*narrowed(terms), *([terms["xs"]] if "xs" in terms else [])]]


def at_mean_lines(plan: Plan, terms: dict[str, str], kept_xs: bool) -> list[str]:
    """The line moving the elementwise pass's shift to the mean (see the module's _at_mean).

    In training mode, where the pass forms x - shift itself (not ``kept_xs``) and has a
    constant term to take the difference: b·(x - shift) + c, or p·(x - shift) + q.
    """
    if not plan.spec.uses_batch_statistics or kept_xs or not {"xs", ""} <= terms.keys():
        return []
    b, c = terms["xs"], terms[""]
    return [f"    shift, {c} = _at_mean(shift, delta, sum_xs_xs, m, {b}, {c})"]


def coefficient_lines(plan: Plan, named: list[tuple[str, sp.Expr]], p: BatchNumPyPrinter,
                       indent: str = "    ") -> list[str]:
    """The lines of dx's coefficients and the parameters' gradients, c after a and b."""
    if plan.c_in_a_b is None:
        return cse_lines(named, p, indent)
    return [*cse_lines([(n, e) for n, e in named if n != "c"], p, indent),
            f"{indent}# dx sums to 0 over each channel: c follows from a and b (symbn proved it)",
            f"{indent}c = {c_line(plan.c_in_a_b)}"]


C_LINE = "-(a/m)*sum_g - b*delta"


def c_line(c_in_a_b: sp.Expr) -> str:
    """The line that computes c from a and b, checked against the proven expression.

    It divides by m before multiplying by Σ dy: ``a*sum_g`` alone can overflow where c does
    not (γ = 1e305). SymPy would print ``-a*sum_g/m``, so the line is written here.
    """
    names = {str(s): s for s in c_in_a_b.free_symbols}
    if sp.expand(sp.sympify(C_LINE, locals=names) - c_in_a_b) != 0:
        raise ProofError(f"{C_LINE} is not {c_in_a_b}")
    return C_LINE


__all__ = ["SUM_XS", "SUM_XS_XS", "at_mean_lines", "c_line", "coefficient_lines", "cse_lines",
           "elementwise", "float64_param", "keeps_xs", "math_lines", "narrow_lines", "narrowed",
           "printer", "statistics_lines", "sum_names", "wrap"]
