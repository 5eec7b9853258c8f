"""Figures for the verification issue, measured in one run (no timed asserts).

Prints:
1. per variant (all 16): digits of agreement between the proven closed form and mpmath finite
   differences at dps = 50 (full gradient of a random (6, 3) input, and of a constant-channel
   input), and the time taken;
2. the full-gradient check of an (m, D) = (64, 8) input and the directional (uᵀJv) check of an
   (m, D) = (4096, 2) input: time and digits (target: each under 5 s);
3. the checker (`symbn.check_backward`) on a right backward: time per call, float64/float32,
   on symbn's own inputs and on ten inputs of the user's, (64, 4) each, which also run the
   vacuity mutants.

Run: python bench/bench_verify.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import mpmath
import numpy as np

import symbn
from symbn import fd, fd_projections
from symbn.checker import check_backward
from symbn.reference import Reference

DPS = 50


def sample(shape: tuple[int, int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = shape[1]
    return {"dy": rng.normal(size=shape), "x": rng.normal(size=shape) * 2 + 1,
            "gamma": rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c),
            "beta": rng.normal(size=c), "running_mean": rng.normal(size=c),
            "running_var": rng.uniform(0.5, 2, c)}


def digits_full(ref: Reference, d: dict[str, np.ndarray]) -> float:
    kw = {"eps": 1e-5, "running_mean": d["running_mean"], "running_var": d["running_var"]}
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], dps=DPS, **kw)
    with mpmath.workdps(DPS):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], **kw)
    return min(fd.agreement_digits(exact[w], numeric[w]) for w in exact)


def show(v: float) -> str:
    return "all" if v == float("inf") else f"{v:.1f}"


def variants_table() -> None:
    print(f"1. closed form vs mpmath finite differences, dps = {DPS} (required: >= 30 digits)")
    print(f"{'variant':<72}{'random (6,3)':>14}{'constant ch.':>14}{'time s':>8}")
    for spec in symbn.all_variants():
        t = time.perf_counter()
        ref = Reference(spec)
        d = sample((6, 3), 0)
        random_digits = digits_full(ref, d)
        c = sample((5, 2), 1)
        c["x"][:, 0] = 0.75
        constant_digits = digits_full(ref, c)
        elapsed = time.perf_counter() - t
        print(f"{spec.describe():<72}{show(random_digits):>14}{show(constant_digits):>14}"
              f"{elapsed:>8.2f}")


def sizes_table() -> None:
    print("\n2. cost of a check (target: each under 5 s)")
    print(f"{'check':<52}{'time s':>8}{'digits':>10}")
    ref = Reference(symbn.LayerSpec())
    d = sample((64, 8), 2)
    t = time.perf_counter()
    numeric = fd.full_gradient(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5, dps=DPS)
    with mpmath.workdps(DPS):
        exact = ref.gradient(d["dy"], d["x"], d["gamma"], eps=1e-5)
    elapsed = time.perf_counter() - t
    digits = min(fd.agreement_digits(exact[w], numeric[w]) for w in exact)
    print(f"{'full gradient, (m, D) = (64, 8), 528 partials':<52}{elapsed:>8.2f}{show(digits):>10}")
    d = sample((4096, 2), 3)
    t = time.perf_counter()
    results = fd_projections.directional(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                                         dps=DPS, directions=2, levels=2)
    elapsed = time.perf_counter() - t
    digits = min(r.digits for r in results)
    print(f"{'directional uᵀJv, (m, D) = (4096, 2), 2 directions':<52}{elapsed:>8.2f}"
          f"{show(digits):>10}")
    t = time.perf_counter()
    taylor = fd_projections.taylor_test(ref, d["dy"], d["x"], d["gamma"], d["beta"], eps=1e-5,
                                        dps=30)
    elapsed = time.perf_counter() - t
    print(f"{'Taylor remainder test, (4096, 2), last rate':<52}{elapsed:>8.2f}"
          f"{taylor.rates[-1]:>10.3f}")


def checker_table() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_checker import compact

    print("\n3. symbn.check_backward on a right backward (symbn's own inputs)")
    print(f"{'dtype':<10}{'inputs':>8}{'time s':>8}{'passed':>8}")
    for dtype in ("float64", "float32"):
        t = time.perf_counter()
        report = check_backward(compact, dtype=dtype)
        print(f"{dtype:<10}{len(report.cases):>8}{time.perf_counter() - t:>8.2f}"
              f"{report.passed!s:>8}")
    print("\n   the same on ten inputs of the user's, (64, 4) each (vacuity mutants included)")
    print(f"{'dtype':<10}{'inputs':>8}{'time s':>8}{'passed':>8}{'warnings':>10}")
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        mine = [symbn.checker.Case(rng.normal(size=(64, 4)).astype(dtype),
                                   rng.normal(size=(64, 4)).astype(dtype),
                                   np.array([1.5, -0.7, 2.0, 0.9], dtype), name=f"mine {k}")
                for k in range(10)]
        t = time.perf_counter()
        report = check_backward(compact, cases=mine)
        print(f"{dtype:<10}{len(report.cases):>8}{time.perf_counter() - t:>8.2f}"
              f"{report.passed!s:>8}{len(report.warnings):>10}")


if __name__ == "__main__":
    variants_table()
    sizes_table()
    checker_table()
