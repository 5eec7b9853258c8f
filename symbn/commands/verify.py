"""``symbn verify``: the proven gradient against mpmath finite differences, and the generated code.

Prints one table row per check (what was checked, on which input, the digits of agreement or
the measured figure, and the verdict); exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import importlib
import math
from dataclasses import dataclass

import numpy as np

from symbn import fd, fd_projections
from symbn.checker import check_backward
from symbn.commands.options import (
    add_backend_argument,
    add_layer_arguments,
    spec_from_args,
    whole_number,
)
from symbn.precision import working_digits
from symbn.reference import Reference
from symbn.spec import LayerSpec

NAME = "verify"
HELP = "check the derived gradient and the generated code against mpmath finite differences"


@dataclass(frozen=True)
class Row:
    """One line of the verification table."""

    check: str
    case: str
    result: str
    passed: bool | None     # None: skipped


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ". Exit status 1 if any check fails.",
        epilog="Example: symbn verify batchnorm --eps-placement std --dps 50")
    add_layer_arguments(p)
    add_backend_argument(p)
    p.add_argument("--dps", default=50, type=whole_number,
                   help=f"decimal digits of the mpmath arithmetic, {fd.MIN_DPS} to "
                        f"{fd.MAX_DPS} (default: 50); the closed form must agree with finite "
                        "differences to 60%% of them")


def required_digits(dps: int) -> int:
    """Digits of agreement a check must reach at ``dps`` (30 at the default 50).

    >>> required_digits(50)
    30
    """
    return int(0.6 * dps)


def _fd_inputs(spec: LayerSpec, seed: int = 0) -> list[tuple[str, dict[str, object]]]:
    rng = np.random.default_rng(seed)

    def make(name: str, x: np.ndarray) -> tuple[str, dict[str, object]]:
        channels = x.shape[1]
        data: dict[str, object] = {
            "x": x, "dy": rng.normal(size=x.shape),
            "gamma": rng.uniform(0.5, 2.0, channels) * rng.choice([-1, 1], channels),
            "beta": rng.normal(size=channels), "eps": 1e-5,
            "running_mean": rng.normal(size=channels),
            "running_var": rng.uniform(0.25, 4.0, channels)}
        return name, data

    constant = rng.normal(size=(5, 2))
    constant[:, 0] = 0.75
    out = [make("random (6, 3)", rng.normal(size=(6, 3)) * 2 + 1),
           make("m=2 (2, 3)", rng.normal(size=(2, 3)))]
    if spec.smallest_batch == 1:
        out.append(make("m=1 (1, 3)", rng.normal(size=(1, 3))))
    out += [make("constant channel (5, 2)", constant),
            make("mean offset 1e7 (8, 2)", 1e7 + rng.normal(size=(8, 2))),
            make("variance below eps (8, 2)", 2 + 1e-5 * rng.normal(size=(8, 2)))]
    return out


def _args(ref: Reference, data: dict[str, object]) -> tuple[tuple[object, ...], dict[str, object]]:
    args = (data["dy"], data["x"], data["gamma"] if ref.spec.affine else None,
            data["beta"] if ref.spec.affine else None)
    kw = {"eps": data["eps"], "running_mean": data["running_mean"],
          "running_var": data["running_var"]}
    return args, kw


def finite_difference_rows(spec: LayerSpec, dps: int = 50, *, directional_m: int = 256
                           ) -> list[Row]:
    """Closed form against full-gradient FD on several inputs, uᵀJv, and the Taylor test."""
    ref = Reference(spec)
    need = required_digits(dps)
    rows = []
    for name, data in _fd_inputs(spec):
        args, kw = _args(ref, data)
        numeric = fd.full_gradient(ref, *args, dps=dps, **kw)  # type: ignore[arg-type]
        with working_digits(dps):
            exact = ref.gradient(args[0], args[1], args[2], **kw)  # type: ignore[arg-type]
        digits = {w: fd.agreement_digits(exact[w], numeric[w]) for w in exact}
        worst = min(digits.values())
        detail = ", ".join(f"d{w} {_digits(v)}" for w, v in digits.items())
        rows.append(Row("closed form vs FD, full gradient", name, detail, worst >= need))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(directional_m, 4)) * 3 - 1
    data = _fd_inputs(spec)[0][1] | {"x": x, "dy": rng.normal(size=x.shape)}
    data["gamma"], data["beta"] = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    data["running_mean"], data["running_var"] = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    args, kw = _args(ref, data)
    projections = fd_projections.directional(ref, *args, dps=dps, directions=3, **kw)  # type: ignore[arg-type]
    worst = min(p.digits for p in projections)
    rows.append(Row("closed form vs FD, uᵀJv (3 directions)", f"random ({directional_m}, 4)",
                    _digits(worst), worst >= need))
    name, data = _fd_inputs(spec)[0]
    args, kw = _args(ref, data)
    taylor = fd_projections.taylor_test(ref, *args, dps=dps, **kw)  # type: ignore[arg-type]
    result = "exact (L linear along v)" if taylor.exact else \
        "rates " + ", ".join(f"{r:.3f}" for r in taylor.rates)
    rows.append(Row("Taylor remainder O(h²)", name, result, taylor.passed))
    return rows


def _digits(v: float) -> str:
    return "equal at dps" if math.isinf(v) else f"{v:.1f} digits"


def generated_code_rows(spec: LayerSpec, backend: str = "numpy", dps: int = 30) -> list[Row]:
    """The generated backward of ``backend`` through the checker, float64 and float32.

    The checker's reference is taken at ``dps`` digits (``--dps``; it took 30 whatever the
    header said, a review found).
    """
    try:
        codegen = importlib.import_module("symbn.codegen")
    except ImportError as error:
        return [Row("generated code", "-", f"skipped: symbn.codegen not importable ({error})",
                    None)]
    backward = codegen.load(spec, backend).backward
    rows = []
    for dtype in ("float64", "float32"):
        report = check_backward(backward, spec.layer, eps_placement=spec.eps_placement,
                                variance=spec.variance, affine=spec.affine, mode=spec.mode,
                                dtype=dtype, dps=dps)
        worst = report.worst()
        ratio = max((o.error / o.tolerance for o in worst.values() if o.informative),
                    default=0.0)
        failed = [c.case.name for c in report.cases if not c.passed]
        result = f"worst error/tolerance {ratio:.2g}"
        if failed:
            result += "; failed on: " + "; ".join(failed)
        rows.append(Row(f"generated code ({backend}) vs reference ({dtype})",
                        f"{len(report.cases)} inputs", result, report.passed))
    return rows


def format_table(spec: LayerSpec, dps: int, rows: list[Row]) -> str:
    """The table ``symbn verify`` prints."""
    head = (f"symbn verify: {spec.describe()}; dps={dps}, closed form must agree with "
            f"finite differences to >= {required_digits(dps)} digits")
    widths = [max(len(r.check) for r in rows), max(len(r.case) for r in rows)]
    lines = [head, f"{'check':<{widths[0]}}  {'input':<{widths[1]}}  status  result"]
    for r in rows:
        status = "skip" if r.passed is None else ("ok" if r.passed else "FAIL")
        lines.append(f"{r.check:<{widths[0]}}  {r.case:<{widths[1]}}  {status:<6}  {r.result}")
    failed = sum(r.passed is False for r in rows)
    lines.append(f"{len(rows) - failed} of {len(rows)} checks passed" if failed else
                 f"all {sum(r.passed is True for r in rows)} checks passed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    fd.check_dps(args.dps, "--dps")
    spec = spec_from_args(args)
    rows = (finite_difference_rows(spec, args.dps)
            + generated_code_rows(spec, args.backend, args.dps))
    print(format_table(spec, args.dps, rows))
    return 1 if any(r.passed is False for r in rows) else 0
