"""The fixed parts of a generated module: argument checks shared by every variant.

These are text, copied verbatim into the module :mod:`symbn.codegen` writes, so that the module
imports nothing from symbn. Every check raises ValueError naming the shapes (or dtype, axis)
it got and what it expected.
"""

from __future__ import annotations

LAYOUT = '''
BLOCK_BYTES = 1 << 18  # bytes of x per block (a block and its scratch fit a core's L2 cache)


def _layout(x, axis):
    """Check x and axis; return x, the channel axis, the reduced axes, the per-channel shape, m."""
    x = np.asarray(x)
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
    axes = tuple(k for k in range(x.ndim) if k != axis)
    shape = tuple(n if k == axis else 1 for k, n in enumerate(x.shape))
    m = x.size // x.shape[axis] if x.shape[axis] else 0
    if m < MIN_M or x.shape[axis] == 0:
        raise ValueError(
            f"x of shape {x.shape} with axis={axis} has {m} element(s) per channel and "
            f"{x.shape[axis]} channel(s); expected at least MIN_M element(s) per channel"
            "MIN_M_REASON and at least one channel")
    return x, axis, axes, shape, m


def _like_x(name, a, x):
    """Check that ``a`` has the shape and dtype of x."""
    a = np.asarray(a)
    if a.shape != x.shape:
        raise ValueError(f"{name} has shape {a.shape}; expected the shape of x, {x.shape}")
    if a.dtype != x.dtype:
        raise ValueError(f"{name} has dtype {a.dtype}; expected the dtype of x, {x.dtype}")
    return a


def _per_channel(name, a, x, axis):
    """Check a per-channel parameter; return it in float64, shaped (1, C, 1) like a channel."""
    a = np.asarray(a)
    if a.shape != (x.shape[axis],):
        raise ValueError(
            f"{name} has shape {a.shape}; expected ({x.shape[axis]},), one value per channel "
            f"of x of shape {x.shape} along axis={axis}")
    if a.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {a.dtype}; expected a floating dtype")
    return a.astype(np.float64).reshape(1, -1, 1)


def _channels(a, axis):
    """``a`` as a C-contiguous (P, C, Q) array, C = a.shape[axis] (a view when ``a`` allows)."""
    a = np.ascontiguousarray(a)
    return a.reshape(int(np.prod(a.shape[:axis], dtype=np.int64)), a.shape[axis], -1)


def _blocks(a3):
    """``(p, c)`` slice pairs that cut a (P, C, Q) array into blocks of about BLOCK_BYTES.

    Every pass over the data goes block by block, so that the several NumPy calls made on one
    block find it in cache and only the first one reads it from memory.
    """
    n_p, n_c, n_q = a3.shape
    row = max(1, n_q * a3.itemsize)
    cb = max(1, min(n_c, BLOCK_BYTES // row))
    pb = max(1, BLOCK_BYTES // (row * cb))
    return [(slice(p, p + pb), slice(c, c + cb))
            for p in range(0, n_p, pb) for c in range(0, n_c, cb)]


def _block_sum(a, b=None):
    """Σ a (or Σ a·b) over one (p, c, q) block, per channel, in the block's dtype.

    BLAS (a product with a vector of ones) or np.vecdot where the layout allows, else einsum.
    """
    if a.shape[2] == 1:
        a = a[:, :, 0]
        if b is None:
            return np.ones(a.shape[0], a.dtype) @ a
        return np.einsum("pc,pc->c", a, b[:, :, 0])
    if a.shape[0] == 1:
        return a[0] @ np.ones(a.shape[2], a.dtype) if b is None else np.vecdot(a[0], b[0])
    return np.einsum("pcq->c", a) if b is None else np.einsum("pcq,pcq->c", a, b)


def _sums(x3, shift, blocks, dy3=None, squares=True):
    """Per-channel sums of xs = x - shift: Σ xs² (if ``squares``), then, given dy, Σ dy, Σ dy·xs.

    Each is float64, shaped (1, C, 1).

    One sweep over the blocks: xs is formed block by block in one scratch buffer; each block's
    sums (in x's dtype, over that block only) are added up in float64.
    """
    n_c = x3.shape[1]
    totals = np.zeros((3, n_c))
    scratch = np.empty(x3[blocks[0]].size, x3.dtype)
    for p, c in blocks:
        xb = x3[p, c]
        xs = scratch[: xb.size].reshape(xb.shape)
        np.subtract(xb, shift[:, c], out=xs)
        if squares:
            totals[0, c] += _block_sum(xs, xs)
        if dy3 is not None:
            gb = dy3[p, c]
            totals[1, c] += _block_sum(gb)
            totals[2, c] += _block_sum(gb, xs)
    wanted = ([0] if squares else []) + ([1, 2] if dy3 is not None else [])
    return tuple(totals[k].reshape(1, n_c, 1) for k in wanted)


def _combine(out3, blocks, dy3, a, x3, shift, b, c):
    """Write a·dy + b·(x - shift) + c into out3, block by block.

    The coefficients are per channel, in the dtype of x; a term whose coefficient is None is
    left out.
    """
    both = a is not None and b is not None
    scratch = np.empty(out3[blocks[0]].size, out3.dtype) if both else None
    for p, k in blocks:
        out = out3[p, k]
        if a is not None:
            np.multiply(dy3[p, k], a[:, k], out=out)
        if b is not None:
            xs = out if a is None else scratch[: out.size].reshape(out.shape)
            np.subtract(x3[p, k], shift[:, k], out=xs)
            xs *= b[:, k]
            if a is not None:
                out += xs
        if c is not None:
            out += c[:, k]
    return out3


def _eps(eps):
    """Check eps > 0."""
    value = float(eps)
    if not value > 0 or value == float("inf"):
        raise ValueError(f"eps={eps!r}; expected a finite number > 0")
    return value
'''


def layout_source(min_m: int, reason: str) -> str:
    """The checks, with the smallest number of elements per channel the variant accepts."""
    return LAYOUT.replace("MIN_M_REASON", reason).replace("MIN_M", str(min_m))
