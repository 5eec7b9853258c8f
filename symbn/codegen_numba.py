"""The numba backend's passes: the sums, the first guess and the elementwise pass, compiled.

Text copied verbatim into a module :mod:`symbn.codegen` writes with ``backend="numba"``, in
place of the NumPy backends' block-by-block sums, first guess at the mean and elementwise
pass; everything else (the checks, the worker thread, the shift's correction, the per-channel
coefficients, the split of b) is the same text. The loops read x and dy in their own dtype,
so that float32 data needs no float64 copies, and each pass reads the data once: the sums
accumulate in float64, the elementwise pass computes in x's dtype as the NumPy backends' does.
Its elementwise pass is in :mod:`symbn.codegen_combine` with the others', the quick
functions for small arrays in :mod:`symbn.codegen_quick`. numba is an optional dependency.
"""

from __future__ import annotations

SUMS = '''
PIECE = 1 << 12  # elements of a row of Q (or PIECE / 4 rows, four at a time) before a flush
SPLIT = 1 << 20  # elements: an array this large is swept in two halves at once (_halves)
WIDE = 1 << 6  # elements at least in the rows the Q = 1 kernels run along (see _folding)


def _jit(**options):
    """numba.njit(nogil=True, **options), its compiled code kept on disk where it can be.

    In a module read from a file, numba keeps each kernel in a cache (``__pycache__`` beside
    the file, or the user's cache folder), so that a new process reads it instead of compiling
    it again; where there is no file, or no folder it can write to, it compiles every time.
    numba records the name of the module a kernel came from, and imports that name to read the
    kernel back: see :func:`_or_compiled` for a module loaded under another name.
    """
    def decorate(function):
        if "__file__" in globals():
            try:
                cached = numba.njit(nogil=True, cache=True, **options)(function)
            except RuntimeError:  # numba found no place to keep its cache
                pass
            else:
                return _or_compiled(cached, numba.njit(nogil=True, **options)(function))
        return numba.njit(nogil=True, **options)(function)
    return decorate


def _or_compiled(cached, compiled):
    """``cached``, a kernel numba caches, until reading its cache fails; then ``compiled``.

    A kernel cached by a module imported as ``bn_grad`` failed with ModuleNotFoundError ("No
    module named 'bn_grad'") in a process that loaded the same file under another name
    (``pkg.bn_grad``, importlib under a name of its own) or ran it by runpy. From the first
    such failure on, this process compiles the module's kernel instead of reading the cache.
    """
    use = [cached]

    def kernel(*args):
        try:
            return use[0](*args)
        except ModuleNotFoundError:  # numba's cache names a module this process cannot import
            use[0] = compiled
            return compiled(*args)
    kernel.cached = cached  # for compiled code, which cannot call this function (_inner)
    return kernel


def _halves(n, a3):
    """Ranges cutting 0..n in two halves, in order, where a3 holds at least SPLIT elements.

    One range (0, n) otherwise: below that, handing a half to the worker cost more than it
    saved (scratch runs of a whole backward with caches flushed: float32 (512, 1024) 1.21 and
    1.41 ms in one sweep, 1.39 and 1.69 in halves; float32 (1024, 1024) 2.45 and 2.62, against
    2.13 and 2.14).
    """
    if a3.size < SPLIT or n < 2:
        return [(0, n)]
    return [(0, (n + 1) // 2), ((n + 1) // 2, n)]


def _folding(arrays):
    """:func:`_fold` for the Q = 1 kernels, on the (P, C, 1) ``arrays`` (None: absent).

    A kernel runs along a row, and a short row (C = 2 in (2^20, 2)) costs a row's overhead per
    element: rows read as one make at least WIDE elements. Arrays not contiguous (a group of
    channels) are not folded.
    """
    present = [v for v in arrays if v is not None]
    n_p, n_c, _ = present[0].shape
    if not all(v.flags.c_contiguous for v in present):
        return 1, n_p
    return _fold(n_p, n_c, WIDE)


@_jit()
def _row_sums_kernel(x2, dy2, s, rows, out):
    """Add to ``out`` the sums Σ xs², Σ xs, Σ dy, Σ dy·xs of ``rows`` of (P, K) x2 and dy2.

    Per column (dy2 may be None: its sums are then 0); the shift s is per column, float64, and
    xs = x - s in float64; ``out`` is a (4, K) float64 array. The columns are summed down the
    rows, four rows at a time, into accumulators, which are added to ``out`` after every
    PIECE / 4 rows (so that no sum runs down more rows than that in sequence). Loops run over
    views from 0, so that numba knows no index is negative, and vectorizes them. The four
    accumulators are arrays of their own, made here: numba then vectorizes the loops with
    fewer checks that they overlap the data (views of one array passed in, in-cache float32
    took 1.2 times as long in a scratch run).
    """
    n_k = s.size
    a0, a1, a2, a3 = np.empty(n_k), np.empty(n_k), np.empty(n_k), np.empty(n_k)
    for p0 in range(rows[0], rows[1], PIECE // 4):
        p1 = min(p0 + PIECE // 4, rows[1])
        a0[:], a1[:], a2[:], a3[:] = 0.0, 0.0, 0.0, 0.0
        even = p0 + (p1 - p0) // 4 * 4
        for p in range(p0, even, 4):
            r0, r1, r2, r3 = x2[p], x2[p + 1], x2[p + 2], x2[p + 3]
            if dy2 is None:
                for j in range(n_k):
                    x0, x1 = np.float64(r0[j]) - s[j], np.float64(r1[j]) - s[j]
                    x2_, x3_ = np.float64(r2[j]) - s[j], np.float64(r3[j]) - s[j]
                    a0[j] += (x0 * x0 + x1 * x1) + (x2_ * x2_ + x3_ * x3_)
                    a1[j] += (x0 + x1) + (x2_ + x3_)
            else:
                g0, g1, g2, g3 = dy2[p], dy2[p + 1], dy2[p + 2], dy2[p + 3]
                for j in range(n_k):
                    x0, x1 = np.float64(r0[j]) - s[j], np.float64(r1[j]) - s[j]
                    x2_, x3_ = np.float64(r2[j]) - s[j], np.float64(r3[j]) - s[j]
                    h0, h1 = np.float64(g0[j]), np.float64(g1[j])
                    h2, h3 = np.float64(g2[j]), np.float64(g3[j])
                    a0[j] += (x0 * x0 + x1 * x1) + (x2_ * x2_ + x3_ * x3_)
                    a1[j] += (x0 + x1) + (x2_ + x3_)
                    a2[j] += (h0 + h1) + (h2 + h3)
                    a3[j] += (h0 * x0 + h1 * x1) + (h2 * x2_ + h3 * x3_)
        for p in range(even, p1):
            r0 = x2[p]
            if dy2 is None:
                for j in range(n_k):
                    x0 = np.float64(r0[j]) - s[j]
                    a0[j] += x0 * x0
                    a1[j] += x0
            else:
                g0 = dy2[p]
                for j in range(n_k):
                    x0, h0 = np.float64(r0[j]) - s[j], np.float64(g0[j])
                    a0[j] += x0 * x0
                    a1[j] += x0
                    a2[j] += h0
                    a3[j] += h0 * x0
        for j in range(n_k):
            out[0, j] += a0[j]
            out[1, j] += a1[j]
            out[2, j] += a2[j]
            out[3, j] += a3[j]


@_jit(fastmath={"reassoc"})
def _channel_sums_kernel(x3, dy3, shift, rows, channels, out):
    """:func:`_row_sums_kernel` for ``rows`` × ``channels`` (ranges) of (P, C, Q), Q > 1.

    ``out`` is a (4, channels) float64 array, shift per channel.

    The data is read in memory order: row by row of P, each row channel by channel. A
    channel's row of Q is summed along itself in pieces of at most PIECE elements, in whatever
    order the compiler vectorizes best (fastmath's reassociation, and only that: inf and NaN
    go through as IEEE arithmetic has them). The pieces are added in order to accumulators,
    which are added to the totals after every PIECE elements of a channel or so.
    """
    k0, k1 = channels
    n_q = x3.shape[2]
    every = max(1, PIECE // n_q)
    s = shift[k0:k1]
    acc = np.empty((4, k1 - k0))
    for p0 in range(rows[0], rows[1], every):
        acc[:] = 0.0
        for p in range(p0, min(p0 + every, rows[1])):
            for k in range(k1 - k0):
                for q0 in range(0, n_q, PIECE):
                    xr = x3[p, k0 + k, q0 : q0 + PIECE]
                    r0 = r1 = r2 = r3 = 0.0
                    if dy3 is None:
                        for q in range(xr.size):
                            xs = np.float64(xr[q]) - s[k]
                            r0 += xs * xs
                            r1 += xs
                    else:
                        gr = dy3[p, k0 + k, q0 : q0 + PIECE]
                        for q in range(xr.size):
                            xs = np.float64(xr[q]) - s[k]
                            g = np.float64(gr[q])
                            r0 += xs * xs
                            r1 += xs
                            r2 += g
                            r3 += g * xs
                    acc[0, k] += r0
                    acc[1, k] += r1
                    acc[2, k] += r2
                    acc[3, k] += r3
        out += acc


def _row_sums(x2, dy2, shift):
    """:func:`_row_sums_kernel` over all rows of x2 (and dy2).

    In halves at once on a large array, the halves' sums added in order.
    """
    return _merged(_at_once(
        lambda rows: _totals(_row_sums_kernel, x2, dy2, shift, rows, len(shift)),
        _halves(len(x2), x2)))


def _merged(parts):
    """The sums of one or two halves (see :func:`_halves`), added in order."""
    if len(parts) == 1:
        return parts[0]
    with np.errstate(over="ignore", invalid="ignore"):  # as the sums themselves: inf, NaN
        return parts[0] + parts[1]


def _totals(kernel, *args):
    """``out`` after ``kernel(*args[:-1], out)``, with ``out`` new (4, args[-1]) float64 zeros."""
    out = np.zeros((4, args[-1]))
    kernel(*args[:-1], out)
    return out


def _sums(x3, shift, blocks, dy3=None, squares=True, keep=None):
    """Per-channel Σ xs² and Σ xs (if ``squares``), Σ dy and Σ dy·xs (given dy); xs = x - shift.

    Each is float64, shaped (1, C, 1), from one compiled sweep over x3 (and dy3), in two halves
    at once on a large array: halves of the rows, their sums added in order, or with one row,
    halves of the channels. The halves depend on the array alone, so the sums do too.
    ``blocks`` and ``keep`` are not used.
    """
    totals = _kernel_sums(x3, dy3, shift.reshape(-1).astype(np.float64))
    if squares and x3.dtype == np.float32:  # (eval mode's _running_shift checks its own)
        _beyond(x3, shift.reshape(-1), totals[0])
    wanted = ([0, 1] if squares else []) + ([2, 3] if dy3 is not None else [])
    return tuple(totals[k].reshape(1, -1, 1) for k in wanted)


# Σ xs² above this, some float32 xs may be beyond float32's range (every |xs| is below √Σ xs²)
NEAR = float(np.finfo(np.float32).max) ** 2 * (1 - 2.0**-20)


def _beyond(x3, shift, squares):
    """Set Σ xs² (``squares``, per channel) to inf where some float32 x - shift is beyond float32.

    The sums take xs in float64, where it cannot overflow; the elementwise pass takes it in
    float32, as the NumPy backends' passes do, where it can (x = 3.3e38 among values of -3.3e38
    in a channel: x - mean is about 6.6e38, though the spread's root mean square is within
    range). Only a channel whose Σ xs² is above NEAR can hold such an xs, and only those are
    read again (by :func:`_beyond_kernel`). An inf sends :func:`_centred_sums` to the mean,
    and where x - mean is beyond float32 too, to its ValueError, as the NumPy backends' own
    float32 sums do.
    """
    near = np.flatnonzero(squares > NEAR)
    if near.size:
        beyond = np.zeros(len(squares), np.bool_)
        _beyond_kernel(x3, shift, near, beyond)
        squares[beyond] = np.inf


@_jit()
def _beyond_kernel(x3, shift, channels, beyond):
    """Set beyond[k] where some finite x - shift[k] is inf in x's dtype, for k in ``channels``."""
    for p in range(x3.shape[0]):
        for k in channels:
            for q in range(x3.shape[2]):
                v = x3[p, k, q]
                if np.isinf(v - shift[k]) and np.isfinite(v):
                    beyond[k] = True


def _kernel_sums(x3, dy3, shift):
    """The (4, C) sums of :func:`_sums`, all four (Σ dy, Σ dy·xs: 0 without dy3)."""
    n_p, n_c, n_q = x3.shape
    if n_q > 1:
        kernel = _channel_sums_kernel
        if n_p > 1:
            return _merged(_at_once(
                lambda rows: _totals(kernel, x3, dy3, shift, rows, (0, n_c), n_c),
                _halves(n_p, x3)))
        parts = _at_once(lambda k: _totals(kernel, x3, dy3, shift, (0, 1), k, k[1] - k[0]),
                         _halves(n_c, x3))
        return np.concatenate(parts, axis=1)
    fold, even = _folding([x3, dy3])
    if fold == 1:  # rows as they are
        return _row_sums(x3[:, :, 0], None if dy3 is None else dy3[:, :, 0], shift)
    totals = np.zeros((4, n_c))
    with np.errstate(over="ignore", invalid="ignore"):  # as the sums themselves: inf, NaN
        for rows, f in ((slice(0, even), fold), (slice(even, n_p), 1)):
            x, dy = (None if v is None else _rows(v[rows], f) for v in (x3, dy3))
            if len(x):
                centre = shift if f == 1 else np.tile(shift, f)
                # the f columns of a channel added in turn (cumsum: sum took one channel's
                # pairwise), as the quick functions add them
                totals += _row_sums(x, dy, centre).reshape(4, f, n_c).cumsum(axis=1)[:, -1]
    return totals
'''

PILOT = '''
def _pilot(x3):
    """A first guess at each channel's mean, in x's dtype, for the shift.

    The mean of the sample of :func:`_sample_steps`, summed in float64 by
    :func:`_pilot_kernel` (so that a float32 sample's sum cannot overflow) and rounded to x's
    dtype. It costs a small fraction of a pass; its error (see PER_CHANNEL) is far below the
    |δ| at which :func:`_centred_sums` sweeps again (see FAR), and that function corrects it
    exactly.
    """
    n_p, n_c, n_q = x3.shape
    step_p, step_q = _sample_steps(x3)
    total = np.zeros(n_c)
    _pilot_kernel(x3, step_p, step_q, total)
    count = -(-n_p // step_p) * -(-n_q // step_q)
    return (total / count).astype(x3.dtype).reshape(1, -1, 1)


@_jit()
def _pilot_kernel(x3, step_p, step_q, total):
    """Add to ``total`` (C float64 values) the sums of x3[::step_p, :, ::step_q] per channel."""
    n_c, n_q = x3.shape[1], x3.shape[2]
    for p in range(0, x3.shape[0], step_p):
        row = x3[p]
        if n_q == 1:
            for k in range(n_c):
                total[k] += np.float64(row[k, 0])
            continue
        for k in range(n_c):
            v = row[k]
            t = 0.0
            for q in range(0, n_q, step_q):
                t += np.float64(v[q])
            total[k] += t
'''

__all__ = ["PILOT", "SUMS"]
