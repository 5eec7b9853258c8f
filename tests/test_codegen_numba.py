"""The numba backend's own parts: halves in a worker thread, folded rows, the kernels' routes.

test_codegen runs the numba backend through the same accuracy, layout and memory tests as the
others, on arrays small enough to go in one part; here each route is forced (SPLIT = 1 sends
every array in two halves, WIDE sets which rows are folded) and checked against the mpmath
reference, and the worker thread is checked on its own.
"""

import itertools
import math
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from conftest import NUMBA_VARIANTS
from test_codegen import compiled, without_threads
from test_codegen_threads import in_a_child

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
    # found by a mutation audit, none of these sizes was checked for accuracy:
    ((2, 3, 4100), 1, "C"),  # Q > PIECE: a row of Q summed in pieces
    ((40, 2, 10, 20), 1, "C"),  # Q = 200: P > PIECE // Q rows, sums flushed between chunks
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


def interpreted(ns):
    """``ns`` with its quick functions turned off: every group goes to its group function."""
    ns["_NO_QUICK"].append(True)
    return ns


@pytest.mark.parametrize(("shape", "axis", "order"), ROUTES, ids=str)
@pytest.mark.parametrize(("split", "quick"), [(1, False), (1, True), (1 << 40, True),
                                               (1 << 40, False)],
                         ids=["halves", "halves-quick", "whole", "whole-interpreted"])
def test_every_route_agrees_with_the_reference(source, derivation, shape, axis, order, split,
                                               quick):
    """Each route, in two halves or whole, by the quick functions (whole or their lines
    alone) or not,
    within 1e-12 of the mpmath closed form (float64) and 1e-6 in float32, relative to each
    output's natural scale; y likewise within 1e-12 of the NumPy backend's forward."""
    ns = compiled(source) if quick else interpreted(compiled(source))
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
        ns = interpreted(compiled(source))  # the quick functions' WIDE is compiled in
        ns["WIDE"] = wide
        results.append(ns["backward"](dy, x, gamma, axis=axis))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.max(np.abs(a - b)) <= 1e-13 * np.max(np.abs(a))


TRAINING = [s for s in symbn.all_variants() if s.mode == "train"]
# (shape, axis, order) on the quick functions' routes: rows as they are, folded with rows left
# over a fold, one channel folded (whose fold NumPy's sum took pairwise: float64 bits differed,
# a review), fewer rows than a fold, m = 1 and 2, NCHW stored channels-last, NCHW and Fortran
# order (Q > 1: the sums from Python, the lines alone compiled; Fortran order is (1, C, N), one
# row of P, in halves of the channels)
QUICK_CASES = [((64, 80), -1, "C"), ((301, 5), -1, "C"), ((400, 1), -1, "C"), ((3, 7), -1, "C"),
               ((1, 70), -1, "C"), ((2, 70), -1, "C"), ((5, 6, 4, 3), 1, "channels-last"),
               ((3, 4, 5, 6), 1, "C"), ((40, 6), -1, "F")]


def quick_outcomes(ns, name):
    """A list that gets "ran" or "fell back" for each call of ``ns``'s ``_<name>_quick``."""
    outcomes, quick = [], ns[f"_{name}_quick"]

    def spy(*args):
        done = quick(*args)
        outcomes.append("ran" if done else "fell back")
        return done

    spy.cached = quick.cached  # _fastest takes quick functions numba keeps on disk only
    ns[f"_{name}_quick"] = spy
    return outcomes


@pytest.mark.parametrize("spec", [pytest.param(s, marks=[] if s in NUMBA_VARIANTS else
                                               pytest.mark.slow) for s in TRAINING],
                         ids=lambda s: s.describe())
def test_quick_functions_give_the_group_functions_bits(spec):
    """On every training variant, dtype and quick route, forward and backward by the quick
    functions are bitwise those of the group functions, which printed the same lines for
    per-channel arrays: in one compiled call, or (SPLIT = 1: arrays swept in halves, and
    Q > 1) the lines alone between the group function's sums and pass."""
    source = codegen.generate_module(spec, "numba")
    quick, group = compiled(source), interpreted(compiled(source))
    ran = {name: quick_outcomes(quick, name) for name in ("forward", "backward")}
    for (shape, axis, order), split in itertools.product(QUICK_CASES, (quick["SPLIT"], 1)):
        if spec.variance == "unbiased" and shape[0] == 1:
            continue  # m = 1: a ValueError, from the checks before either
        quick["SPLIT"] = group["SPLIT"] = split
        for dtype in (np.float32, np.float64):
            dy, x, gamma = case(shape, axis, order, dtype)
            params = [gamma] if spec.affine else []
            beta = [np.linspace(-1, 1, shape[axis]).astype(dtype)] if spec.affine else []
            runs = [(ns["backward"](dy, x, *params, axis=axis),
                     ns["forward"](x, *params, *beta, axis=axis)) for ns in (quick, group)]
            for got, want in zip(*runs, strict=True):
                for a, b in zip(np.atleast_1d(got) if not isinstance(got, tuple) else got,
                                np.atleast_1d(want) if not isinstance(want, tuple) else want,
                                strict=True):
                    np.testing.assert_array_equal(a, b, err_msg=f"{shape} {order} {dtype}")
    cases = sum(4 for s, _, _ in QUICK_CASES if not (spec.variance == "unbiased" and s[0] == 1))
    assert ran == {"forward": ["ran"] * cases, "backward": ["ran"] * cases}


def calls(ns, name):
    """A list that gets a 1 for each call of ``ns``'s function ``name``."""
    made, function = [], ns[name]

    def spy(*args, **kwargs):
        made.append(1)
        return function(*args, **kwargs)

    ns[name] = spy
    return made


def test_quick_functions_leave_what_needs_more_to_the_group_functions(source):
    """Where the group function does more than one plain sweep and the printed lines, the
    quick function returns False and the group function gives its own results or errors:
    a channel whose sampled rows are unlike the others (the first guess is far: swept again),
    an inf or a NaN in x (sums not finite), a product with a step below float64's normal range
    (γ = 1e-150, a spread of 1e60: _product splits it), γ·r beyond float32 (ValueError). In
    halves (SPLIT = 1), where the quick function takes the group function's sums, it runs on
    the far guess's (swept again by then) and leaves the rest to the group function with those
    sums: taken once (a review found them taken twice), their warnings given once."""
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2000, 70))
    dy = rng.standard_normal(x.shape)
    gamma = 1 + 0.1 * rng.standard_normal(70)
    far, with_inf, tiny_gamma = x.copy(), x.copy(), gamma.copy()
    step, _ = compiled(source)["_sample_steps"](x[:, :, None])
    far[:, 3] = 1.0
    far[::step, 3] = 0.0  # the rows the first guess samples
    with_inf[4, 5] = np.inf
    tiny_gamma[7] = 1e-150
    with_nan, flat = x.astype(np.float32), x.astype(np.float32)
    with_nan[9, 1] = np.nan
    flat[:, 0] = 1.0  # r = 1/sqrt(eps): γ·r = 9.5e38 with γ = 3e36
    cases = [(dy, far, gamma, {}), (dy, with_inf, gamma, {}),
             (dy, x * np.where(np.arange(70) == 7, 1e60, 1.0), tiny_gamma, {}),
             (dy.astype(np.float32), with_nan, gamma.astype(np.float32), {}),
             (dy.astype(np.float32), flat, np.full(70, 3e36, np.float32), {})]
    for (dy_k, x_k, gamma_k, kwargs), split in itertools.product(cases, (None, 1)):
        quick, group = compiled(source), interpreted(compiled(source))
        if split:
            quick["SPLIT"] = group["SPLIT"] = split
        outcomes = quick_outcomes(quick, "backward")
        results, sums, caught = [], [], []
        for ns in (quick, group):
            sums.append(calls(ns, "_centred_sums"))
            try:
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always")
                    results.append(ns["backward"](dy_k, x_k, gamma_k, **kwargs))
            except ValueError as error:
                results.append(str(error))
            caught.append([str(w.message) for w in seen])
        assert outcomes == ["ran" if split and x_k is far else "fell back"]
        assert sums == [[1], [1]] and caught[0] == caught[1]
        if isinstance(results[1], str):
            assert results[0] == results[1]
            continue
        for a, b in zip(*results, strict=True):
            np.testing.assert_array_equal(a, b)


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


def test_a_forked_child_sweeps_in_halves_too(source):
    """After the parent started its worker thread, a child made by fork (which has no such
    thread) gets the parent's results instead of waiting for ever on the missing worker."""
    ns = compiled(source)
    ns["SPLIT"] = 1
    dy, x, gamma = case((64, 8), -1, "C")
    want = ns["backward"](dy, x, gamma)
    in_a_child(lambda: all(np.array_equal(a, b) for a, b in
                           zip(ns["backward"](dy, x, gamma), want, strict=True)))


def test_without_a_place_for_the_cache_the_module_still_loads(source):
    """A module given a __file__ numba cannot cache for (code compiled from a string) compiles
    its kernels every time instead of failing to import."""
    namespace = {"__file__": "/nonexistent/bn.py", "__name__": "symbn_numba_no_cache"}
    exec(compile(source, "<string>", "exec"), namespace)
    dy, x, gamma = case((40, 3), -1, "C")
    want = compiled(source)["backward"](dy, x, gamma)
    got = namespace["backward"](dy, x, gamma)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


LOAD = """
import importlib.util, runpy, sys
import numpy as np
how, path = sys.argv[1], sys.argv[2]
if how == "import":
    sys.path.insert(0, path.rsplit("/", 1)[0])
    import bn_grad
    backward = bn_grad.backward
elif how == "runpy":
    backward = runpy.run_path(path, run_name="bn_grad")["backward"]
else:
    spec = importlib.util.spec_from_file_location(how, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[how] = module
    spec.loader.exec_module(module)
    backward = module.backward
x = np.arange(12.0).reshape(4, 3) ** 2
dx, dgamma, dbeta = backward(np.ones_like(x), x, np.ones(3))
print(float(abs(dx).max()) < 1e-12 and dbeta.tolist() == [4.0] * 3)
"""


@pytest.mark.parametrize("how", ["other_name", "runpy"])
def test_a_module_loaded_under_another_name_compiles_instead_of_reading_the_cache(
        source, tmp_path, how):
    """numba's cache names the module a kernel came from and imports that name to read it back.
    A file imported as ``bn_grad`` caches its kernels; loaded later under another name by
    importlib, or run by runpy (which lets go of the name before the first call), it failed
    with ModuleNotFoundError ("No module named 'bn_grad'"). Now it compiles its kernels, and
    the next plain import still reads the cache."""
    (tmp_path / "module").mkdir()
    (tmp_path / "elsewhere").mkdir()  # the working folder: bn_grad is not importable from it
    path = tmp_path / "module" / "bn_grad.py"
    path.write_text(source)

    def run(how):
        done = subprocess.run([sys.executable, "-c", LOAD, how, str(path)],
                              cwd=tmp_path / "elsewhere", capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()

    assert run("import") == ["True"]
    index = list((tmp_path / "module" / "__pycache__").glob("bn_grad.*.nbi"))
    assert index  # the kernels were cached
    assert run(how) == ["True"]
    assert run("import") == ["True"]


def test_halves_run_in_turn_without_a_worker_thread(source, monkeypatch):
    """Where no thread can be started (the interpreter shutting down), both halves run in the
    caller, with the same results."""
    ns = compiled(source)
    ns["SPLIT"] = 1
    dy, x, gamma = case((64, 8), -1, "C")
    want = ns["backward"](dy, x, gamma)
    without_threads(ns, monkeypatch)
    got = ns["backward"](dy, x, gamma)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_eval_mode_overflowing_squares_give_no_warning(source):
    """Eval mode does not use Σ xs², which overflows for x ~ 1e154: no warning (NumPy's
    errstate set to raise would make it an error), and the NumPy backend's results."""
    spec = symbn.LayerSpec(mode="eval")
    ns = compiled(codegen.generate_module(spec, "numba"))
    numpy_ns = compiled(codegen.generate_module(spec))
    x = np.full((32, 2), 9e153)
    dy = np.linspace(-1, 1, 64).reshape(32, 2)
    args = (dy, x, np.ones(2), np.zeros(2), np.ones(2))
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ns["backward"](*args)
    want = numpy_ns["backward"](*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_signed_zeros_come_through_as_in_numpy(source):
    """Eval mode's dx = a·dy of dy = -0.0 is -0.0, as the NumPy backend gives it."""
    spec = symbn.LayerSpec(mode="eval")
    dy = np.full((16, 3), -0.0)
    x = np.arange(48.0).reshape(16, 3)
    args = (dy, x, np.ones(3), np.zeros(3), np.ones(3))
    got = compiled(codegen.generate_module(spec, "numba"))["backward"](*args)[0]
    want = compiled(codegen.generate_module(spec))["backward"](*args)[0]
    assert np.array_equal(np.signbit(got), np.signbit(want)) and np.signbit(want).all()


@pytest.mark.parametrize("kernel", ["_row_sums_kernel", "_channel_sums_kernel"])
def test_long_runs_are_summed_in_pieces(source, kernel):
    """2^20 float64 values of 0.1 down one column (or along one row of Q) sum to within 1e-13
    of the exact sum (1.2e-14 here): each sum runs at most PIECE / 4 rows (PIECE elements) in
    sequence before it is added to the totals. Without those flushes, 2^18 sums of four rows
    in sequence are off by 3.9e-12, and 2^16 of 16 lanes by 9.6e-13 (np.cumsum's figures)."""
    ns = compiled(source)
    n = 1 << 20
    dy = np.full(n, 0.1)
    exact = math.fsum(dy)
    out = np.zeros((4, 1))
    if kernel == "_row_sums_kernel":
        column = dy.reshape(n, 1)
        ns[kernel](column, column, np.zeros(1), (0, n), out)
    else:
        row = dy.reshape(1, 1, n)
        ns[kernel](row, row, np.zeros(1), (0, 1), (0, 1), out)
    assert abs(out[2, 0] - exact) <= 1e-13 * exact
    assert abs(out[1, 0] - exact) <= 1e-13 * exact


@pytest.mark.parametrize("shape", [(1, 3, 40), (5, 2, 1), (300, 4, 1), (3, 2, 100), (129, 1, 7)],
                         ids=str)
def test_the_first_guess_is_the_mean_of_the_numpy_backends_sample(source, shape):
    """numba's _pilot is the float64 mean of the sample _sample_steps gives (the NumPy
    backends' too), rounded to x's dtype: a float32 channel near 3e38, whose float32 sum
    overflowed there, gets a finite guess."""
    ns = compiled(source)
    rng = np.random.default_rng(31)
    x3 = (3e38 * (1 - 0.01 * rng.random(shape))).astype(np.float32)
    x3[:, 0] = rng.standard_normal(x3[:, 0].shape)
    step_p, step_q = ns["_sample_steps"](x3)
    sample = x3[::step_p, :, ::step_q]
    want = sample.astype(np.float64).mean(axis=(0, 2)).astype(np.float32)
    got = ns["_pilot"](x3)
    assert got.shape == (1, shape[1], 1) and got.dtype == np.float32
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-6)
    assert np.isfinite(got).all()


# (P, C, Q) of the elementwise pass: folded rows, rows as they are, Q > 1, one row of P
COMBINE_SHAPES = [(301, 5, 1), (64, 80, 1), (6, 3, 63), (1, 6, 40)]


@pytest.mark.parametrize("shape", COMBINE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("terms", ["abc", "bc", "a"])
def test_the_elementwise_pass_gives_the_numpy_backends_bits(source, shape, dtype, terms):
    """numba's _combine computes each value as the NumPy backend's does, rounding in x's
    dtype at each step, so that given the same coefficients both give the same bits: a·dy +
    b·xs + c (backward), b·xs + c (forward), a·dy (eval's backward); in float32, b beyond the
    dtype's range and below TINY, which both split. Computed in float64, float32 values
    differ in about one in three."""
    ns, reference_ns = compiled(source), compiled(codegen.generate_module(SPEC))
    rng = np.random.default_rng(41)
    n_c = shape[1]
    spread = np.ones((1, n_c, 1))
    b = rng.standard_normal((1, n_c, 1))
    if dtype == np.float32 and n_c >= 4:  # b split: beyond float32, below TINY
        spread[0, :2, 0], b[0, :2, 0] = (1e-35, 1e30), (1e40, -1e-35)
    x3 = (spread * rng.standard_normal(shape) + 3.0 * spread).astype(dtype)
    dy3 = rng.standard_normal(shape).astype(dtype)
    shift = (3.0 * spread).astype(dtype)
    a, c = (rng.standard_normal((1, n_c, 1)).astype(dtype) for _ in range(2))
    given = {"a": a, "b": b, "c": c}
    args = [given[t] if t in terms else None for t in "abc"]
    dy = dy3 if "a" in terms else None
    x, centre = (x3, shift) if "b" in terms else (None, None)
    got = ns["_combine"](np.empty_like(x3), None, dy, *args, x, centre)
    want = reference_ns["_combine"](np.empty_like(x3), reference_ns["_blocks"](x3), dy, *args,
                                    x, centre)
    assert got.dtype == dtype and np.isfinite(want).all()
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


def test_a_far_guess_in_a_wide_channel_moves_to_the_mean(source):
    """float32 (65536, 1) of rms 1e36 whose 16 sampled rows hold 3.9σ: numba's first guess is
    3.9σ off, and every |x - mean| (4.4e36) is far within float32. _at_mean moves the shift
    by its bound sqrt(m·var) + |mean - new| (2.6e38); by sqrt(Σ xs²) + |δ| (1.0e39, a
    review) it kept the guess, and y = p·(x - guess) + q with γ = 7e37 was inf in 11021
    rows, though every true |y| is below 3.1e38. Quick and group functions alike."""
    quick, group = compiled(source), interpreted(compiled(source))
    n = 1 << 16
    rng = np.random.default_rng(5)
    x = rng.standard_normal(n)
    x[:: n // 16] = 3.9
    x = (1e36 * x).astype(np.float32).reshape(n, 1)
    x64 = x.astype(np.float64)
    gamma, beta = np.float32([7e37]), np.zeros(1, np.float32)
    truth = 7e37 * (x64 - x64.mean()) / np.sqrt(x64.var() + 1e-5)
    for ns in (quick, group):
        y = ns["forward"](x, gamma, beta)
        assert np.isfinite(y).all()
        assert np.linalg.norm(y - truth) <= 1e-6 * np.linalg.norm(truth)


@pytest.mark.parametrize(("shape", "axis"), [((4, 1), -1), ((4, 1, 2, 2), 1)], ids=str)
@pytest.mark.parametrize("split", [1, 1 << 40], ids=["halves", "whole"])
def test_a_spread_near_float32s_limit_is_refused_on_every_route(source, shape, axis, split):
    """float32 x of ±3.3e38 in one channel, the outlier in the last row of P: its spread is
    beyond float32, and forward and backward refuse it on the quick and the group routes.
    With the quick function's check of Σ xs², or the last row of _beyond's sweep, dropped
    (an audit's mutations), forward gave inf, silently."""
    ns = compiled(source)
    ns["SPLIT"] = split
    x = np.full(shape, -3.3e38, np.float32)
    x[-1] = 3.3e38
    gamma, beta = np.full(shape[axis], 1e30, np.float32), np.zeros(shape[axis], np.float32)
    with pytest.raises(ValueError, match="spreads too far"):
        ns["forward"](x, gamma, beta, axis=axis)
    with pytest.raises(ValueError, match="spreads too far"):
        ns["backward"](np.ones_like(x), x, gamma, axis=axis)


@pytest.mark.parametrize("split", [1, 1 << 40], ids=["halves", "whole"])
def test_sums_flushed_down_many_rows_are_right(source, split):
    """More than PIECE / 4 rows of 64 channels (not folded) in one row-kernel call, so the
    accumulators are flushed into the sums between pieces: with the flush writing instead of
    adding (an audit's mutation), a route caught it only by accident. Checked against a
    float64 two-pass formula (the mpmath reference on 134,400 elements takes a minute)."""
    ns = compiled(source)
    ns["SPLIT"] = split
    dy, x, gamma = case((2100, 64), -1, "C")
    dx, dgamma, dbeta = ns["backward"](dy, x, gamma)
    mu = x.mean(0)
    r = 1 / np.sqrt(((x - mu) ** 2).mean(0) + 1e-5)
    xhat = (x - mu) * r
    want_dbeta, want_dgamma = dy.sum(0), (dy * xhat).sum(0)
    want_dx = gamma * r / len(x) * (len(x) * dy - want_dbeta - xhat * want_dgamma)
    scale = np.abs(gamma) * r * np.abs(dy).max(0)
    assert np.max(np.abs(dx - want_dx) / scale) <= 1e-10
    assert np.max(np.abs(dbeta - want_dbeta) / np.abs(dy).sum(0)) <= 1e-12
    assert np.max(np.abs(dgamma - want_dgamma) / np.abs(dy * xhat).sum(0)) <= 1e-10
