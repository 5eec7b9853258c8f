"""The fixed parts of a generated module: the NumPy backends' elementwise pass.

Text copied verbatim into the module :mod:`symbn.codegen` writes, last of the passes of
:mod:`symbn.codegen_passes`: ``_combine``, which writes dx = a·dy + b·xs + c (or y) into the
result, block by block with NumPy (``"numpy"``) or in one multi-threaded numexpr pass
(``"numexpr"``). The numba backend's is in :mod:`symbn.codegen_numba`.
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
}

__all__ = ["COMBINE"]
