"""The fixed parts of a generated module: argument checks, memory layout, groups and blocks.

These are text, copied verbatim into the module :mod:`symbn.codegen` writes, so that the module
imports nothing from symbn. Every check raises ValueError naming the shapes (or dtype, axis)
it got and what it expected. The passes over the data that follow them in the module are in
:mod:`symbn.codegen_passes`.
"""

from __future__ import annotations

LAYOUT = '''
BLOCK_SIZE = 1 << 18  # elements per block at most (found fastest on a 2-core VM)
ONE_BLOCK = 1 << 14  # elements: an array this small goes in one block (fewer NumPy calls)
GROUP = 1 << 15  # channels at most in a group, computed end to end (see _groups)
LONG = 1 << 7  # elements: a run this long is summed along itself (see _block_sum)
RUN = 1 << 14  # elements at least in a row of per-channel values written out (see _by_block)
THREADED = 1 << 21  # elements: an array this large is swept in two halves at once (_halves)


def _array(name, a):
    """``a`` as an array in the machine's byte order, unless values of it are masked.

    np.asarray drops the mask, and the masked values would count in the statistics. An array
    of the other byte order (``>f4`` here) is copied to this one's (``float32``). A nested
    list NumPy cannot make an array of (rows of different lengths) is a ValueError naming it,
    and so is None (gamma=None read as "gamma has shape ()").
    """
    if a is None:
        raise ValueError(f"{name} is None; expected an array")
    if np.ma.is_masked(a):
        raise ValueError(f"{name} is a masked array with masked values; expected an array "
                         "without a mask (fill or drop the masked values first)")
    try:
        a = np.asarray(a)
    except ValueError as error:  # NumPy's message says why (an inhomogeneous shape)
        raise ValueError(f"{name} is not an array ({error}); expected an array of numbers, "
                         "or nested lists of equal lengths") from None
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _layout(x, axis):
    """Check x and axis; return x as an array and the channel axis, from 0 up."""
    x = _array("x", x)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"x has dtype {x.dtype}; expected float32 or float64")
    if x.ndim < 1:
        raise ValueError(f"x has shape {x.shape}; expected at least one axis (the channels)")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis={axis!r} for x of shape {x.shape}; expected an integer")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"axis={axis} for x of shape {x.shape}; expected {-x.ndim} <= axis < {x.ndim}")
    axis = int(axis) % x.ndim
    m = math.prod(n for k, n in enumerate(x.shape) if k != axis)
    if m < MIN_M or x.shape[axis] == 0:
        raise ValueError(
            f"x of shape {x.shape} with axis={axis} has {m} element(s) per channel and "
            f"{x.shape[axis]} channel(s); expected at least MIN_M element(s) per channel"
            "MIN_M_REASON and at least one channel")
    return x, axis


def _like_x(name, a, x):
    """Check that ``a`` has the shape and dtype of x."""
    a = _array(name, a)
    if a.shape != x.shape:
        raise ValueError(f"{name} has shape {a.shape}; expected the shape of x, {x.shape}")
    if a.dtype != x.dtype:
        raise ValueError(f"{name} has dtype {a.dtype}; expected the dtype of x, {x.dtype}")
    return a


def _eps(eps):
    """Check eps: a real number (a Fraction, a 0-d array of one), finite and > 0 in float64."""
    number = eps[()] if isinstance(eps, np.ndarray) and eps.ndim == 0 else eps
    real = isinstance(number, numbers.Real) and not isinstance(number, (bool, np.bool_))
    try:
        value = float(number) if real else None
    except OverflowError:  # an int beyond float64
        value = None
    if value is None or not 0 < value < float("inf"):
        below = " (below float64's smallest: it rounds to 0)" if value == 0 and number > 0 else ""
        raise ValueError(f"eps={eps!r}{below}; expected a finite real number > 0, such as 1e-5")
    return value


def _nonnegative(name, a):
    """Check that per-channel variances are >= 0 (a NaN passes, to propagate)."""
    negative = np.flatnonzero(a.reshape(-1) < 0)
    if negative.size:
        k = int(negative[0])
        raise ValueError(f"{name}[{k}] = {float(a.reshape(-1)[k])!r} is negative; expected "
                         "variances >= 0")
    return a


def _per_channel(name, a, x, axis):
    """Check a per-channel parameter; return it shaped (1, C, 1) like a channel.

    A view of it, unless it is wider than float64 (long double): then a float64 copy.
    """
    a = _array(name, a)
    if a.shape != (x.shape[axis],):
        raise ValueError(
            f"{name} has shape {a.shape}; expected ({x.shape[axis]},), one value per channel "
            f"of x of shape {x.shape} along axis={axis}")
    if a.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {a.dtype}; expected a floating dtype")
    if a.dtype.itemsize > 8:  # long double: the statistics are float64
        with np.errstate(over="ignore"):
            wide = a.astype(np.float64)
        beyond = np.flatnonzero(np.isinf(wide) & np.isfinite(a))
        if beyond.size:
            k = int(beyond[0])
            raise ValueError(f"{name}[{k}] = {a[k]!s} is beyond the range of float64, in which "
                             "symbn computes; expected magnitudes below 1.8e308")
        a = wide
    return a.reshape(1, -1, 1)


def _memory_order(x):
    """The axes of x from outermost to innermost in memory, if x is contiguous in that order.

    A C-ordered array gives (0, 1, ..., n - 1), a Fortran-ordered one the reverse, NCHW data
    stored channels-last (as N, H, W, C) gives (0, 2, 3, 1). An array that is contiguous in no
    order (a strided slice, a broadcast) gives the C order, and :func:`_channels` copies it.
    """
    order = tuple(sorted(range(x.ndim), key=lambda k: -x.strides[k]))
    return order if x.transpose(order).flags.c_contiguous else tuple(range(x.ndim))


def _channels(a, axis, order):
    """``a`` as a C-contiguous (P, C, Q) array, C = a.shape[axis], its axes taken in ``order``.

    The statistics reduce over every axis but the channels', in any order, so the axes before
    the channel axis in memory make P and those after it Q. A view when ``a`` is contiguous in
    ``order`` (see :func:`_memory_order`), else a copy laid out so.
    """
    a = np.ascontiguousarray(a.transpose(order))
    k = order.index(axis)
    q = a.reshape(*a.shape[: k + 1], -1).shape[-1]
    return a.reshape(-1, a.shape[k], q)


def _empty_like(x, order):
    """An uninitialized array of x's shape and dtype, laid out in memory in ``order``."""
    empty = np.empty(tuple(x.shape[k] for k in order), x.dtype)
    return empty if order == tuple(range(x.ndim)) else empty.transpose(np.argsort(order))


def _groups(a3):
    """Slices that cut the channels of a (P, C, Q) array into groups of at most GROUP.

    Each group is computed end to end, so that its two dozen per-channel float64 values take
    at most a few MB however many channels there are: with 2 elements per channel and 2^20
    channels, whole-array per-channel values took 17 inputs' worth of memory. An array with
    at most GROUP channels is one group.
    """
    n_c = a3.shape[1]
    return [slice(c, min(c + GROUP, n_c)) for c in range(0, n_c, GROUP)]


def _blocks(a3):
    """``(p, c, q, r)``: slices that cut a (P, C, Q) array into blocks, and how to read each.

    A block holds at most BLOCK_SIZE elements and a quarter of the array, so that scratch space
    stays small, unless the whole array is at most ONE_BLOCK elements (a row of Q is cut too
    when it is longer). Every pass over the data goes block by block, so that the several
    NumPy calls made on one block find it in cache and only the first one reads it from memory.
    Where blocks hold whole rows of P (all of C and Q), r > 0 rows make at least RUN elements
    (or a quarter of a block's rows) and divide a block's rows, so that a block can be read as
    rows of r·C·Q elements (see :func:`_rows`); the rows left over a multiple of r at the end of
    the array go in a block of their own, with r its rows. r = 0 (per-channel values broadcast,
    see :func:`_by_block`) where blocks cut rows, where there is one channel (its value is a
    scalar), and in an array of one block with fewer than ONE_BLOCK / 4 rows (runs of C·Q of
    at least 4 elements), where writing values out costs more than it saves.
    """
    n_p, n_c, n_q = a3.shape
    size = max(1, min(BLOCK_SIZE, a3.size if a3.size <= ONE_BLOCK else a3.size // 4))
    qb = min(n_q, size)
    cb = max(1, min(n_c, size // qb))
    pb = max(1, size // (qb * cb))
    if qb < n_q or cb < n_c or n_c == 1 or (a3.size <= ONE_BLOCK and 4 * n_p < ONE_BLOCK):
        return [(slice(p, p + pb), slice(c, c + cb), slice(q, q + qb), 0)
                for p in range(0, n_p, pb) for c in range(0, n_c, cb) for q in range(0, n_q, qb)]
    r = max(1, min(pb // 4, -(-RUN // (n_c * n_q)))) if a3.flags.c_contiguous else 1  # see _rows
    per_block = pb // r  # runs of r rows in a block; r grows to fill it (fewer than that lost)
    r, pb = pb // per_block, pb // per_block * per_block
    blocks = []
    for p in range(0, n_p, pb):
        rows = min(pb, n_p - p)
        even = rows - rows % r
        if even:
            blocks.append((slice(p, p + even), slice(None), slice(None), r))
        if even < rows:
            blocks.append((slice(p + even, p + rows), slice(None), slice(None), rows - even))
    return blocks


def _rows(b, r):
    """A block ``b`` of whole rows read as rows of r of its rows each (a view); b if r = 0.

    Raises rather than copy: the rows of a group of channels are not adjacent (r is 1 there).
    """
    if not r:
        return b
    b = b.view()
    b.shape = (-1, r * b.shape[1] * b.shape[2])
    return b
'''


def layout_source(min_m: int, reason: str) -> str:
    """The checks and layout helpers, with the variant's smallest number of elements per channel."""
    return LAYOUT.replace("MIN_M_REASON", reason).replace("MIN_M", str(min_m)).rstrip("\n") + "\n"
