"""The generated module's block helpers: the per-block sums and per-channel values per block.

The sums take a different route for each block shape (long rows of Q, short rows read as
(P, C·Q), narrow rows folded, a remainder of rows), so each route is checked against exact
sums here; the accuracy and memory tests of test_codegen then check the whole pass.
"""

import math

import numpy as np
import pytest
from test_codegen import channel_truth, compiled

import symbn
from symbn import codegen


@pytest.fixture(scope="module")
def ns():
    return compiled(codegen.generate_module(symbn.LayerSpec()))


def channel(a, k, axis):
    """Channel k of ``a`` (channels along ``axis``), flattened."""
    return np.take(a, k, axis=axis).ravel()


def exact_sums(a, b=None):
    """Per-channel Σ a (or Σ a·b) of a (P, C, Q) array, correctly rounded (math.fsum)."""
    terms = a if b is None else a * b  # float64 products: rounding far below the bound used
    return np.array([math.fsum(terms[:, k, :].ravel()) for k in range(a.shape[1])])


# (P, C, Q) blocks, one per route through _block_sum (LONG = 128):
BLOCK_SHAPES = [
    (1, 3, 3000),  # long rows of Q, one row of P
    (5, 4, 200),  # long rows of Q, several rows of P
    (40, 9, 16),  # short rows of Q, long (P, C·Q) rows
    (4096, 2, 1),  # narrow rows, folded (64 rows read as one)
    (4099, 3, 1),  # narrow rows, folded, with 4099 % 43 rows left over
    (5, 2, 3),  # narrow rows, fewer than a fold
    (3000, 1, 5),  # one channel, short rows of Q, folded
    (1, 200, 1),  # one row of P: nothing to sum down P
    (1, 7, 2),  # one short row of P
]


@pytest.mark.parametrize("shape", BLOCK_SHAPES, ids=str)
def test_block_sums_agree_with_exact_sums_on_every_route(ns, shape):
    """Each route gives each channel's Σ a and Σ a·b to within a few units of the sum of |terms|
    (a route that mixed up channels, or dropped the rows beyond a fold, is off by O(1))."""
    rng = np.random.default_rng(31)
    a = rng.standard_normal(shape) + 3.0
    b = rng.standard_normal(shape)
    ones = np.ones(max(shape[0], ns["LONG"]))
    for got, want, size in ((ns["_block_sum"](a, None, ones), exact_sums(a), exact_sums(abs(a))),
                            (ns["_block_sum"](a, b, ones), exact_sums(a, b),
                             exact_sums(abs(a), abs(b)))):
        assert got.shape == (shape[1],)
        assert np.all(np.abs(got - want) <= 1e-14 * size)


def test_block_sums_of_a_block_that_is_not_contiguous(ns):
    """A block holding some of the channels (a view with gaps between its rows) sums right."""
    rng = np.random.default_rng(32)
    whole = rng.standard_normal((600, 8, 3))
    a, b = whole[:, 2:4], whole[:, 5:7]
    ones = np.ones(600)
    np.testing.assert_allclose(ns["_block_sum"](a, None, ones), exact_sums(a), rtol=1e-13)
    np.testing.assert_allclose(ns["_block_sum"](a, b, ones), exact_sums(a, b), rtol=1e-13)


SMALL = {"ONE_BLOCK": 1, "BLOCK_SIZE": 1000, "RUN": 40}  # many blocks on small arrays


@pytest.mark.parametrize("shape, channels, written_out", [
    ((4099, 3, 1), None, True),  # narrow rows: blocks of r rows and the rows left over
    ((37, 5, 4), None, True),
    ((1000, 2, 2), None, True),
    ((2, 6, 300), None, False),  # a block cannot hold a whole row: some channels per block
    ((300, 9, 3), slice(2, 6), True),  # a group of channels: rows not adjacent (r = 1)
    ((3001, 1, 2), None, False),  # one channel: its value is a scalar
], ids=str)
def test_blocks_cover_the_array_and_carry_their_channels_values(
        ns, shape, channels, written_out, monkeypatch):
    """_blocks cuts an array into blocks that cover every element once; each block read
    through _rows is a view of the array (no copy to write into by mistake), and the values
    _by_block gives it are those of each element's channel, the ragged last block's too."""
    for name, value in SMALL.items():
        monkeypatch.setitem(ns, name, value)
    whole = np.zeros(shape)
    a3 = whole if channels is None else whole[:, channels]
    n_c = a3.shape[1]
    chan = np.broadcast_to(np.arange(n_c).reshape(1, -1, 1), a3.shape)
    v = np.arange(1.0, n_c + 1).reshape(1, -1, 1)
    blocks = ns["_blocks"](a3)
    assert len(blocks) >= 4
    assert {r > 0 for *_, r in blocks} == {written_out}
    assert {r for *_, r in blocks} >= ({1} if channels is not None else set())
    assert len({r for *_, r in blocks[:-1]}) == 1  # only the last rows may make another r
    for (p, c, q, r), value in zip(blocks, ns["_by_block"](v, blocks, a3), strict=True):
        rows = ns["_rows"](a3[p, c, q], r)
        assert np.shares_memory(rows, a3)
        rows += 1
        want = ns["_rows"](np.ascontiguousarray(chan[p, c, q]), r) + 1.0
        np.testing.assert_array_equal(np.broadcast_to(value, rows.shape), want)
        if r:
            assert len(a3[p, c, q]) % r == 0
    np.testing.assert_array_equal(a3, 1.0)  # every element in exactly one block


def test_one_block_arrays_broadcast_unless_rows_are_many(ns):
    """An array of one block takes per-channel values broadcast (writing them out costs more
    than it saves) unless it has at least ONE_BLOCK / 4 rows of P (runs of C·Q below 4)."""
    one = ns["ONE_BLOCK"]
    for shape, written_out in (((one // 64, 64, 1), False), ((one // 8, 4, 2), False),
                               ((one // 4, 4, 1), True), ((one // 2, 2, 1), True)):
        blocks = ns["_blocks"](np.empty(shape))
        assert len(blocks) == 1 and (blocks[0][3] > 0) == written_out, shape


@pytest.mark.parametrize("threaded", [False, True], ids=["one-sweep", "halves"])
@pytest.mark.parametrize("shape, axis", [((4099, 3), -1), ((37, 5, 4), 1), ((1000, 2, 2), 1),
                                         ((997, 7), -1), ((3001, 1, 2), 1),
                                         ((1, 3, 2500), 1), ((2, 3, 2500), 1)], ids=str)
def test_backward_and_forward_through_blocks_of_every_kind(ns, shape, axis, threaded,
                                                           monkeypatch):
    """With small blocks and rows (SMALL), the passes go through blocks read as rows of r rows,
    the ragged last block with its own r, and broadcast blocks, in one sweep or (THREADED
    lowered) in two halves at once: every dx, dγ, dβ and y is within 1e-13 of the long-double
    closed form (a block given another's values, or skipped, or a half's sums dropped, is off
    by O(1)). Rows of Q cut in blocks of 1000, 1000 and 500 elements make a second half that
    starts with a short block (its scratch space was sized by that block: a crash)."""
    for name, value in {**SMALL, **({"THREADED": 1} if threaded else {})}.items():
        monkeypatch.setitem(ns, name, value)
    rng = np.random.default_rng(35)
    x = rng.standard_normal(shape) * 3 + 1.5
    dy = rng.standard_normal(shape)
    n_c = shape[axis]
    gamma, beta = 1 + rng.random(n_c), rng.standard_normal(n_c)
    dx, dgamma, dbeta = ns["backward"](dy, x, gamma, axis=axis)
    y = ns["forward"](x, gamma, beta, axis=axis)
    for k in range(n_c):
        xk, gk = channel(x, k, axis), channel(dy, k, axis)
        truth, sum_g_xhat, sum_g, r = channel_truth(xk, gk)
        scale = np.linalg.norm(gk) * float(r)
        assert np.linalg.norm(channel(dx, k, axis) - gamma[k] * truth) <= 1e-13 * gamma[k] * scale
        assert abs(dgamma[k] - sum_g_xhat) <= 1e-13 * np.linalg.norm(gk) * np.sqrt(xk.size)
        assert abs(dbeta[k] - sum_g) <= 1e-13 * np.linalg.norm(gk) * np.sqrt(xk.size)
        xl = xk.astype(np.longdouble)
        want = gamma[k] * (xl - xl.mean()) * r + beta[k]
        assert np.max(np.abs(channel(y, k, axis) - want)) <= 1e-13 * (gamma[k] * 4 + abs(beta[k]))


@pytest.mark.parametrize("shape, axis", [((1 << 17, 3), -1), ((1 << 17, 2, 3), 1)], ids=str)
def test_narrow_float64_blocks_sum_constant_dy_accurately(ns, shape, axis):
    """Narrow channels (C·Q below LONG) go in blocks of up to 2^18 elements; folding their rows
    keeps the sums down P short. dy = 0.1: dx and dβ stay within 1e-13 of their scale (with
    the fold turned off, sums in sequence down each block's rows left 2.4e-13 and 3.4e-13)."""
    rng = np.random.default_rng(33)
    x = rng.standard_normal(shape) + 0.7
    dy = np.full_like(x, 0.1)
    dx, dgamma, dbeta = ns["backward"](dy, x, np.ones(shape[axis]), axis=axis)
    for k in range(shape[axis]):
        xk, gk = channel(x, k, axis), channel(dy, k, axis)
        truth, sum_g_xhat, sum_g, r = channel_truth(xk, gk)
        scale = np.linalg.norm(gk)
        assert np.linalg.norm(channel(dx, k, axis) - truth) <= 1e-13 * scale * float(r)
        assert abs(dbeta[k] - sum_g) <= 1e-13 * scale * np.sqrt(xk.size)
        assert abs(dgamma[k] - sum_g_xhat) <= 1e-13 * scale * np.sqrt(xk.size)


@pytest.mark.parametrize("backend", ["numpy", "numexpr"])
@pytest.mark.parametrize("shape, axis", [((1003, 3), -1), ((301, 2, 5), 1), ((5, 3), -1)], ids=str)
def test_narrow_rows_with_rows_left_over_a_fold_are_all_computed(backend, shape, axis):
    """Rows of C·Q below LONG are folded in the sums and in numexpr's pass, and the rows beyond
    a multiple of the fold go on their own: every dx is right, the last rows' too."""
    if backend == "numexpr":
        pytest.importorskip("numexpr")
    module = codegen.load(symbn.LayerSpec(), backend)
    rng = np.random.default_rng(34)
    x = rng.standard_normal(shape) + 2.0
    dy = rng.standard_normal(shape)
    dx, _, dbeta = module.backward(dy, x, np.ones(shape[axis]), axis=axis)
    for k in range(shape[axis]):
        xk, gk = channel(x, k, axis), channel(dy, k, axis)
        truth, _, sum_g, r = channel_truth(xk, gk)
        scale = np.linalg.norm(gk) * float(r)
        assert np.abs(channel(dx, k, axis) - truth).max() <= 1e-14 * scale
        assert abs(dbeta[k] - sum_g) <= 1e-14 * np.linalg.norm(gk) * np.sqrt(xk.size)


def test_large_arrays_are_swept_in_two_halves_with_the_serial_result(ns, monkeypatch):
    """An array of THREADED elements or more is swept in two halves at once, the second by the
    worker thread (once for the sums, once for dx); the result is bitwise that of the same
    halves swept one after the other, so it does not depend on how the threads ran. A smaller
    array goes in one part."""
    rng = np.random.default_rng(36)
    x = rng.standard_normal((3000, 5)).astype(np.float32) + 4
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = np.linspace(0.5, 2, 5)
    at_once, halved = ns["_at_once"], []

    def spy(work, parts):
        halved.append(len(parts) > 1)
        return at_once(work, parts)

    monkeypatch.setitem(ns, "_at_once", spy)
    ns["backward"](dy, x, gamma)
    assert halved == [False, False]
    for name, value in {**SMALL, "THREADED": x.size}.items():
        monkeypatch.setitem(ns, name, value)
    threaded = ns["backward"](dy, x, gamma)
    assert halved[2:] == [True, True]
    monkeypatch.setitem(ns, "_at_once", lambda work, parts: [work(part) for part in parts])
    for got, want in zip(threaded, ns["backward"](dy, x, gamma), strict=True):
        np.testing.assert_array_equal(got, want)
