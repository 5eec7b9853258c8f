"""The numba backend's own parts: halves in a worker thread, folded rows, the kernels' routes.

test_codegen runs the numba backend through the same accuracy, layout and memory tests as the
others, on arrays small enough to go in one part; here each route is forced (SPLIT = 1 sends
every array in two halves, WIDE sets which rows are folded) and checked against the mpmath
reference, and the worker thread is checked on its own.
"""

import threading
import time

import numpy as np
import pytest
from test_codegen import compiled

import symbn
from symbn import codegen
from symbn.codegen_reference import reference, relative_errors

pytest.importorskip("numba")

SPEC = symbn.LayerSpec()

# (shape, axis, order): one per route through the kernels' wrappers
ROUTES = [
    ((301, 5), -1, "C"),  # Q = 1, short rows: folded (13 rows as one), 2 rows left over
    ((64, 80), -1, "C"),  # Q = 1, rows wide enough as they are
    ((6, 3, 7, 9), 1, "C"),  # Q > 1, halves of P
    ((40, 6), -1, "F"),  # Fortran order: (1, C, N), one row of P, halves of the channels
    ((5, 6, 4, 3), 1, "channels-last"),  # (N·H·W, C, 1): Q = 1, short rows: folded
]


@pytest.fixture(scope="module")
def source():
    return codegen.generate_module(SPEC, "numba")


@pytest.fixture(scope="module")
def derivation():
    return symbn.derive(SPEC)


def laid_out(a, order):
    if order == "F":
        return np.asfortranarray(a)
    if order == "channels-last":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1)
    return a


def case(shape, axis, order, dtype=np.float64, seed=3):
    rng = np.random.default_rng(seed)
    x = laid_out((2.0 * rng.standard_normal(shape) + 7.0).astype(dtype), order)
    dy = laid_out(rng.standard_normal(shape).astype(dtype), order)
    gamma = (1 + 0.3 * rng.standard_normal(shape[axis])).astype(dtype)
    return dy, x, gamma


@pytest.mark.parametrize(("shape", "axis", "order"), ROUTES, ids=str)
@pytest.mark.parametrize("split", [1, 1 << 40], ids=["halves", "whole"])
def test_every_route_agrees_with_the_reference(source, derivation, shape, axis, order, split):
    """Each route, in two halves or whole, within 1e-12 of the mpmath closed form (float64)
    and 1e-6 in float32, relative to each output's natural scale; y likewise within 1e-12 of
    the NumPy backend's forward."""
    ns = compiled(source)
    ns["SPLIT"] = split
    for dtype, bound in ((np.float64, 1e-12), (np.float32, 1e-6)):
        dy, x, gamma = case(shape, axis, order, dtype)
        got = ns["backward"](dy, x, gamma, axis=axis)
        ref = reference(SPEC, dy.astype(np.float64), x.astype(np.float64),
                        gamma.astype(np.float64), axis=axis, derivation=derivation)
        errors = relative_errors(SPEC, got, ref, axis=axis)
        assert max(errors.values()) <= bound, (dtype, errors)
        assert all(g.dtype == dtype for g in got)
    numpy_ns = compiled(codegen.generate_module(SPEC))
    dy, x, gamma = case(shape, axis, order)
    beta = np.linspace(-1, 1, shape[axis])
    y, want = (n["forward"](x, gamma, beta, axis=axis) for n in (ns, numpy_ns))
    assert np.max(np.abs(y - want)) <= 1e-12 * np.max(np.abs(want))


@pytest.mark.parametrize(("shape", "axis", "order"), [ROUTES[0], ROUTES[2], ROUTES[3]], ids=str)
def test_the_wide_rule_does_not_change_the_results(source, shape, axis, order):
    """Rows folded or not give the same dx to rounding (a fold that dropped or repeated the rows
    left over, or mixed up channels, is off by O(1))."""
    dy, x, gamma = case(shape, axis, order)
    results = []
    for wide in (1, 7, 1 << 20):
        ns = compiled(source)
        ns["WIDE"] = wide
        results.append(ns["backward"](dy, x, gamma, axis=axis))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.max(np.abs(a - b)) <= 1e-13 * np.max(np.abs(a))


def test_halves_of_the_channels_give_the_results_of_one_sweep(source):
    """With one row of P (Fortran order) the halves are halves of the channels, and each
    channel's sums come from one thread alone: bitwise the same as the whole sweep."""
    dy, x, gamma = case((50, 9), -1, "F")
    results = []
    for split in (1, 1 << 40):
        ns = compiled(source)
        ns["SPLIT"] = split
        results.append(ns["backward"](dy, x, gamma))
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a, b)


def test_calls_from_several_threads_share_the_worker(source):
    """Eight threads calling backward at once (every array in halves) get exactly what the same
    calls get one after the other."""
    ns = compiled(source)
    ns["SPLIT"] = 1
    cases = [case((33 + k, 4), -1, "C", seed=k) for k in range(8)]
    alone = [ns["backward"](*c) for c in cases]
    together = [None] * len(cases)

    def run(k):
        together[k] = ns["backward"](*cases[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together, strict=True):
        assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_an_error_in_the_worker_reaches_the_caller_after_both_halves(source):
    """_at_once raises either half's error in the caller, once both halves have ended."""
    ns = compiled(source)
    done = []

    def work(part):
        if part == 1:
            raise ArithmeticError("second half")
        done.append(part)
        return part

    with pytest.raises(ArithmeticError, match="second half"):
        ns["_at_once"](work, [0, 1])
    assert done == [0]

    def slow_second(part):
        if part == 0:
            raise ArithmeticError("first half")
        time.sleep(0.2)
        done.append(part)

    with pytest.raises(ArithmeticError, match="first half"):
        ns["_at_once"](slow_second, [0, 1])
    assert done == [0, 1]  # the second half had ended when the error was raised
    assert ns["_at_once"](lambda part: part * 2, [3, 4]) == [6, 8]
    assert ns["_at_once"](lambda part: part * 2, [5]) == [10]
