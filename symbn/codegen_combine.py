"""The fixed parts of a generated module: each backend's elementwise pass.

Text copied verbatim into the module :mod:`symbn.codegen` writes, last of the passes of
:mod:`symbn.codegen_passes`: ``_combine``, which writes dx = a·dy + b·xs + c (or y) into the
result, block by block with NumPy (``"numpy"``), in one multi-threaded numexpr pass
(``"numexpr"``), or by a kernel compiled by numba (``"numba"``, which the numba backend's
other passes, :mod:`symbn.codegen_numba`, precede). Each computes in x's dtype, one
operation at a time in the same order, b split by ``_split``.
"""

from __future__ import annotations

# The elementwise pass, one per backend, called the same way.
COMBINE = {
    "numpy": '''

def _combine(out3, blocks, dy3, a, b, c, x3=None, shift=None):
    """Write a·dy + b·xs + c into out3, block by block.

    xs is x3 - shift or, without x3, what out3 already holds (left there by :func:`_sums`).
    a and c are per channel, in the dtype of x; b is per channel in float64 (see
    :func:`_split`); a term whose coefficient is None is left out.
    """
    b, scale = (None, None) if b is None else _split(b, out3.dtype)
    _at_once(lambda part: _combine_part(out3, part, dy3, a, b, c, x3, shift, scale),
             _halves(blocks, out3))
    return out3


def _combine_part(out3, blocks, dy3, a, b, c, x3, shift, scale):
    """:func:`_combine` over some of out3's blocks, b split as b·2^e and scale = 2^-e."""
    both = a is not None and b is not None
    scratch = np.empty(_largest(out3, blocks), out3.dtype) if both else None
    per_block = zip(blocks, *(_by_block(v, blocks, out3) for v in (a, shift, b, c, scale)),
                    strict=True)
    for (p, k, q, r), a_k, shift_k, b_k, c_k, s_k in per_block:
        out = _rows(out3[p, k, q], r)
        if b is not None:
            if x3 is not None:
                np.subtract(_rows(x3[p, k, q], r), shift_k, out=out)
            if s_k is not None:
                out *= s_k
            out *= b_k
        if a is not None:
            term = out if b is None else scratch[: out.size].reshape(out.shape)
            np.multiply(_rows(dy3[p, k, q], r), a_k, out=term)
            if b is not None:
                out += term
        if c is not None:
            out += c_k
''',
    "numexpr": '''

def _combine(out3, blocks, dy3, a, b, c, x3=None, shift=None):
    """Write a·dy + b·(x3 - shift) + c into out3 in one multi-threaded numexpr pass.

    a and c are per channel, in the dtype of x; b is per channel in float64 (see
    :func:`_split`); a term whose coefficient is None is left out; ``blocks`` is not used.
    numexpr reads a value broadcast along the middle axis at a fraction of its speed, so the
    arrays are read as (P, C·Q) rows and each per-channel value written out to one such row,
    when Q > 1 only if a row is at most a sixteenth of the array (P >= 16), or at most a quarter
    and no longer than a block (P >= 4, C·Q <= BLOCK_SIZE), so that the rows take little memory
    (a Fortran-ordered (N, C, 4) array is (4, C, N) in memory: P = 4 and long rows). The
    arrays are C-contiguous (P, C, Q) arrays or a group of their channels, so the rows are
    views. Where a row is short (C·Q below LONG, as in (2^20, 2)) and the arrays are whole
    (not a group's channels, whose rows are not adjacent), ``fold`` rows are read as one, as
    :func:`_block_sum` does, and the rows left over in a second call: numexpr too takes a
    short row element by element (its pass on float32 (2^20, 2) took 12 times the bound).
    """
    b, scale = (None, None) if b is None else _split(b, out3.dtype)
    values = {"a": a, "b": b, "c": c, "shift": shift, "s": scale}
    terms = {"a": "a*dy", "b": "b*(x - shift)" if scale is None else "b*((x - shift)*s)",
             "c": "c"}
    expression = " + ".join(t for k, t in terms.items() if values[k] is not None)
    arrays = {k: v for k, v in {"dy": dy3, "x": x3}.items() if v is not None}
    values = {k: v for k, v in values.items() if v is not None}
    n_p, n_c, n_q = out3.shape
    if not (n_q == 1 or n_p >= 16 or (n_p >= 4 and n_c * n_q <= BLOCK_SIZE)):
        ne.evaluate(expression, local_dict={**arrays, **values}, out=out3)
        return out3
    values = {k: np.repeat(v, n_q, axis=2).reshape(1, -1) for k, v in values.items()}
    whole = all(a.flags.c_contiguous for a in (out3, *arrays.values()))  # not a group's view
    fold, even = _fold(n_p, n_c * n_q, LONG) if whole else (1, n_p)  # see _block_sum
    for rows, f in ((slice(None, even), fold), (slice(even, None), 1)):
        out = _rows(out3[rows], f)  # raises rather than copy: numexpr must write in out3
        if out.size:
            ne.evaluate(expression, out=out, local_dict={
                **{k: v[rows].reshape(out.shape) for k, v in arrays.items()},
                **{k: v if f == 1 else np.tile(v, f) for k, v in values.items()}})
    return out3
''',
    "numba": '''
@_jit()
def _combine_kernel(out3, dy3, x3, a, b, c, shift, scale, rows, channels):
    """out3 = a·dy + b·(x - shift) + c on ``rows`` × ``channels`` (ranges), in out3's dtype.

    The coefficients are per channel, in out3's dtype, b split as the NumPy backends take it
    (b·2^e, with ``scale`` 2^-e, or None: see :func:`_split`). Each value is made as their
    pass makes it, one rounding at a time in the dtype: ((x - shift)·scale)·b, plus dy·a, plus
    c, so that given the same coefficients the bits are theirs (a test compares them); float32
    arithmetic runs twice as fast as float64's. A coefficient that is None leaves its term out:
    numba compiles a version without it (it drops code under ``if v is not None`` where v is
    None). With Q = 1 a row runs along the channels (all of them: numba vectorizes a loop from
    0 only), else along Q.
    """
    n_c, n_q = out3.shape[1], out3.shape[2]
    for p in range(rows[0], rows[1]):
        if n_q == 1:
            for k in range(n_c):
                if b is not None:
                    v = x3[p, k, 0] - shift[k]
                    if scale is not None:
                        v = v * scale[k]
                    v = v * b[k]
                    if a is not None:
                        v = v + dy3[p, k, 0] * a[k]
                if a is not None:  # numba drops code under "is not None" of a None only
                    if b is None:
                        v = dy3[p, k, 0] * a[k]
                if c is not None:
                    v = v + c[k]
                out3[p, k, 0] = v
            continue
        zero = out3.dtype.type(0)
        for k in range(channels[0], channels[1]):
            ak = bk = ck = sk = ek = zero
            if b is not None:
                bk, sk = b[k], shift[k]
                if scale is not None:
                    ek = scale[k]
            if a is not None:
                ak = a[k]
            if c is not None:
                ck = c[k]
            out = out3[p, k]
            for q in range(out.size):
                if b is not None:
                    v = x3[p, k, q] - sk
                    if scale is not None:
                        v = v * ek
                    v = v * bk
                    if a is not None:
                        v = v + dy3[p, k, q] * ak
                if a is not None:  # numba drops code under "is not None" of a None only
                    if b is None:
                        v = dy3[p, k, q] * ak
                if c is not None:
                    v = v + ck
                out[q] = v


def _combine(out3, blocks, dy3, a, b, c, x3=None, shift=None):
    """Write a·dy + b·(x3 - shift) + c into out3 in one compiled pass (see _combine_kernel).

    a, c and the shift are per channel, in the dtype of x; b is per channel in float64, split
    here as the NumPy backends split it (see :func:`_split`). A term whose coefficient is None
    is left out; ``blocks`` is not used. On a large array the rows of P (or with one row, the
    channels) are cut in two halves, swept at once; with Q = 1, short rows are folded as the
    sums fold them (see :func:`_folding`).
    """
    b, scale = (None, None) if b is None else _split(b, out3.dtype)
    values = [None if v is None else v.reshape(-1).astype(out3.dtype, copy=False)
              for v in (a, b, c, shift, scale)]
    n_p, n_c, n_q = out3.shape
    if n_q > 1:
        if n_p > 1:
            parts = [(rows, (0, n_c)) for rows in _halves(n_p, out3)]
        else:
            parts = [((0, 1), k) for k in _halves(n_c, out3)]
        _at_once(lambda part: _combine_kernel(out3, dy3, x3, *values, *part), parts)
        return out3
    fold, even = _folding([out3, dy3, x3])
    if fold == 1:  # rows as they are
        _combine_rows([out3, dy3, x3], values)
        return out3
    for rows, f in ((slice(0, even), fold), (slice(even, n_p), 1)):
        arrays = [None if v is None else _rows(v[rows], f)[:, :, None] for v in (out3, dy3, x3)]
        if len(arrays[0]):
            _combine_rows(arrays, [v if v is None or f == 1 else np.tile(v, f) for v in values])
    return out3


def _combine_rows(arrays, values):
    """:func:`_combine_kernel` on all rows of (P, K, 1) ``arrays`` (out, dy, x).

    ``values`` (a, b, c, shift, scale) hold K values each; the rows go in halves at once on a
    large array.
    """
    out = arrays[0]
    _at_once(lambda rows: _combine_kernel(*arrays, *values, rows, (0, out.shape[1])),
             _halves(len(out), out))
''',
}

__all__ = ["COMBINE"]
