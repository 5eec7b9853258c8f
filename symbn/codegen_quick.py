"""The numba backend's quick functions: a group function's printed lines, one channel at a time.

A module :mod:`symbn.codegen` writes with ``backend="numba"`` has, beside each training group
function (``_backward_channels``, ``_forward_channels``), a compiled ``_<name>_quick`` that
runs the same printed per-channel lines (printed for scalars, a product by
``_scalar_product``) in a loop over the channels, between the same kernels; ``_fastest`` calls
it on a group of all the channels (the whole call on small arrays, the lines alone between the
group function's sums and pass on others) and falls back on the group function. QUICK is the
text of what they call, copied verbatim into the module after the numba backend's kernels
(:mod:`symbn.codegen_numba`).
"""

from __future__ import annotations

SCRATCH = 9  # rows of ``values`` before the coefficients: 4 sums, 4 for them cast, the shift
SHIFT = SCRATCH - 1  # the shift's row
TERMS = ("dy", "xs", "")  # the elementwise pass's terms, in the order _combine_kernel takes them

QUICK = '''
def _fastest(quick, group, k, *args, rows, results, data, terms):
    """``group(k, *args)``, by ``quick(*args, values, summed)`` where it can be.

    The printed per-channel lines of a group function run in its quick function (numba), one
    channel at a time, on the same sums, with the same elementwise pass: on one group of all
    the channels, views and parameters C-contiguous float32 or float64. ``values`` is its
    scratch space, of ``rows`` per-channel rows, the rows ``results`` what the group function
    returns. Below SPLIT elements with Q = 1, the quick function is the whole group function
    in one compiled call: first guess, sums, lines and elementwise pass. Otherwise (a larger
    array is swept in halves at once, which only Python code here does; Q > 1 takes another
    sum kernel, whose compiling in the quick functions did not pay) the sums come from
    :func:`_centred_sums` as the group function takes them, and the pass from
    :func:`_quick_pass`: the quick function (``summed``) runs only the lines between. On
    float32 (4096, 1024) with caches flushed, the group function's lines, _at_mean and
    _narrow took 0.13 ms of a 2.2 ms call (a scratch run). ``data`` holds the places of dy3
    (None: none), x3 and the result array in ``args``, ``terms`` the rows of the cast
    coefficients (see :func:`_quick_pass`).

    A quick function returns False where the group function does more than one plain sweep
    and the printed lines (in one call: a poor first guess, inf or NaN, a spread near the
    dtype's limits; on either route: a product or a coefficient that needs care, by float32's
    limits whatever the dtype), and the group function then computes the group: from the
    start, or from the sums taken here (``summed``; a review found them taken twice, and a
    warning of theirs given twice). Where both run to the end they give the same bits (a test
    compares them on every variant).

    Only a module numba keeps on disk (read from a file, see :func:`_jit`) has them: compiling
    the quick functions took about 7 s per dtype here, which pays where it is done once, not
    in every process (a module made by symbn.codegen.load, in memory).
    """
    arrays = args[:-1]
    dy3, x3, out3 = (None if j is None else args[j] for j in data)
    n_c = x3.shape[1]
    if (k.start != 0 or k.stop != n_c or _NO_QUICK or not hasattr(quick, "cached")
            or not all(a.dtype in (np.float32, np.float64) and a.flags.c_contiguous
                       for a in arrays)):
        return group(k, *args)
    shift = None  # the sums are the quick function's to take
    if x3.size >= SPLIT or x3.shape[2] > 1:
        shift, sums = _centred_sums(x3, _pilot(x3), None, dy3)
    values = np.empty((rows, n_c))  # after the sums: not at the peak of _centred_sums
    if shift is not None:
        count = len(sums)
        values[8] = shift.reshape(-1)  # the shift's row, as in _quick_sums
        values[:4] = 0.0
        values[:count] = [v.reshape(-1) for v in sums]
        del sums  # if needed again, they are values[:count], which the quick function keeps
    try:
        if quick(*args, values, shift is not None):
            if shift is not None:
                _quick_pass(values, terms, out3, dy3, x3)
            return tuple(values[r] for r in results)
    except ModuleNotFoundError:  # a kernel's cache names a module not importable here
        _NO_QUICK.append(True)
    if shift is None:
        return group(k, *args)
    # the group function takes the sums, rather than sweep again
    return group(k, *args, summed=(shift, tuple(v.reshape(1, -1, 1) for v in values[:count])))


def _quick_pass(values, terms, out3, dy3, x3):
    """The elementwise pass after a quick function's lines (``summed``), in halves at once.

    The shift and the coefficients of dy, xs and the constant term are rows 0, terms[0],
    terms[1] and terms[2] (None: absent) of the quick function's cast values (see
    :func:`_in_dtype`): _combine takes them as the group function's, b needing no split.
    """
    count = 1 + sum(t is not None for t in terms)
    n_c = values.shape[1]
    cast = values[4:8].reshape(-1).view(x3.dtype)[:count * n_c].reshape(count, 1, n_c, 1)
    a, b, c = (None if t is None else cast[t] for t in terms)
    moved = (x3, cast[0]) if b is not None else ()
    _combine(out3, None, None if a is None else dy3, a, b, c, *moved)


_NO_QUICK = []  # not empty once the quick functions cannot be compiled in this process


def _inner(kernel):
    """``kernel`` as compiled code calls it: numba cannot call the wrapper of _or_compiled.

    The kernel numba caches: compiling a quick function then reads it from the cache, or
    compiles it once for both paths. Where that cache names a module this process cannot
    import (see :func:`_or_compiled`), compiling a quick function fails, and _fastest no longer
    tries it.
    """
    return getattr(kernel, "cached", kernel)


_pilot_inner, _row_sums_inner, _combine_inner = (
    _inner(kernel) for kernel in (_pilot_kernel, _row_sums_kernel, _combine_kernel))
_sample_steps_inner, _fold_inner = (numba.njit(nogil=True)(f) for f in (_sample_steps, _fold))
_quick = numba.njit(nogil=True, error_model="numpy")  # x/0 is inf, as in NumPy, not an error


@_quick
def _quick_sums(x3, dy3, values):
    """What _pilot and _centred_sums make of a quick function's group; False where not that.

    Into values[:4], Σ xs², Σ xs, Σ dy and Σ dy·xs (0 without dy3) per channel, from the
    first guess of :func:`_pilot` (in values[8], float64 values of x's dtype), by the kernels
    of :func:`_kernel_sums` on the same rows, so the same
    bits. False where :func:`_centred_sums` would sweep again or raise: a sum not finite, a
    guess more than FAR allows from the mean, or a Σ xs² above NEAR (whatever the dtype), where
    :func:`_sums` looks further and the spread may be beyond float32's SPREAD. Loops, not
    array expressions, which take numba seconds to compile; (np.int64(0), n) is a kernel's
    range typed as from Python (numba types a 0 written here as a literal).
    """
    n_p, n_c, n_q = x3.shape
    m = n_p * n_q
    step_p, step_q = _sample_steps_inner(x3)
    out, shift = values[0:4], values[8]
    for k in range(n_c):
        shift[k] = 0.0
    _pilot_inner(x3, step_p, step_q, shift)
    count = -(-n_p // step_p) * -(-n_q // step_q)
    narrow = np.empty(1, x3.dtype)
    for k in range(n_c):
        narrow[0] = shift[k] / count
        shift[k] = narrow[0]
    for j in range(4):
        for k in range(n_c):
            out[j, k] = 0.0
    fold, even = _fold_inner(n_p, n_c, WIDE)
    for start, stop, f in ((0, even, fold), (even, n_p, 1)):
        if stop > start:
            _add_row_sums(x3, dy3, shift, start, stop, f, out)
    for k in range(n_c):
        delta = out[1, k] / m
        if not (np.isfinite(out[0, k]) and delta * delta <= FAR * out[0, k] / m
                and out[0, k] <= NEAR):
            return False
    return True


@_quick
def _add_row_sums(x3, dy3, shift, start, stop, fold, out):
    """Add to ``out`` the (4, C) sums of rows start..stop of (P, C, 1) x3 (and dy3).

    The rows are read fold at a time, as :func:`_kernel_sums` reads them: each of the fold
    columns of a channel added in turn (a fold allocates 9 rows of fold·C float64 values, the
    shift and the sums here and the kernel's accumulators, fold·C below 2·WIDE elements).
    """
    n_c = x3.shape[1]
    rows = (stop - start) // fold
    if fold == 1:
        _row_sums_inner(_rows_of(x3, start, stop, 1), _rows_of(dy3, start, stop, 1), shift,
                        (np.int64(0), rows), out)  # the kernel adds to out
        return
    centre = np.empty(fold * n_c)
    for j in range(fold * n_c):
        centre[j] = shift[j % n_c]
    sums = np.zeros((4, fold * n_c))
    _row_sums_inner(_rows_of(x3, start, stop, fold), _rows_of(dy3, start, stop, fold), centre,
                    (np.int64(0), rows), sums)
    for i in range(4):
        for k in range(n_c):
            total = sums[i, k]
            for j in range(1, fold):
                total += sums[i, j * n_c + k]
            out[i, k] += total


def _rows_of(a3, start, stop, fold):
    """Rows start..stop of a (P, C, 1) array read fold at a time, (rows, fold·C); None: None.

    Compiled code only: see :func:`_rows_of_typed`.
    """
    raise NotImplementedError("called from compiled code only")


@numba.extending.overload(_rows_of)
def _rows_of_typed(a3, start, stop, fold):
    """The compiled :func:`_rows_of`, chosen by a3's type: None stays None."""
    if isinstance(a3, numba.types.NoneType):
        return lambda a3, start, stop, fold: None

    def rows(a3, start, stop, fold):
        n_c = a3.shape[1]
        flat = a3.reshape(-1)[start * n_c:stop * n_c]
        return flat.reshape((stop - start) // fold, fold * n_c)
    return rows


_unrolled = numba.literal_unroll  # numba finds it as a global name, not as an attribute
TINY64, TINY32 = float(np.finfo(np.float64).tiny), float(np.finfo(np.float32).tiny)
BIG32, UNSPLIT = float(np.finfo(np.float32).max), float(TINY[np.dtype(np.float32)])


@_quick
def _scalar_product(*factors):
    """:func:`_product` of one channel's ``(value, power)`` factors, as plain as it is there.

    The factors multiplied in turn, as :func:`_in_turn` multiplies them; NaN where
    :func:`_product` may not take that plain product: a product not finite, or a step that
    fell below float64's normal range (a result below it from a zero factor is exact).
    """
    out = 1.0
    for factor in _unrolled(factors):
        value, power = factor
        for _ in range(abs(power)):
            before = out
            if power > 0:
                out = out * value
                low = abs(out) < TINY64 and before != 0 and value != 0
            else:
                out = out / value
                low = abs(out) < TINY64 and before != 0
            if low:
                return np.nan
    return out if np.isfinite(out) else np.nan


@_quick
def _narrowed(v, narrow, low):
    """One channel's coefficient v as _narrow or _split leaves it, in float64; NaN: refused.

    Rounded to x's dtype (that of ``narrow``, one element); NaN where the group function may
    do more than that (whatever the dtype, by float32's limits, with a margin for the
    rounding): where it is not below float32's largest there, or not 0 and below twice
    ``low``. A coefficient _narrow takes has ``low`` float32's normal range, below which it may
    be refused; b, which _split takes, has TINY's, below which it is split.
    """
    narrow[0] = v
    size = abs(narrow[0])
    if not size < BIG32 or (size < 2 * low and v != 0):  # NaN: not below
        return np.nan
    return np.float64(narrow[0])


@_quick
def _at_mean_one(shift, k, delta, sum_xs_xs, m, b, c, narrow, wide):
    """_at_mean for channel k: shift[k] (a float64 value of x's dtype) moved, c returned.

    ``wide`` (two float64 values) takes b and c as plain numbers (the printed lines can make
    them 0-d arrays).
    """
    wide[0] = b
    wide[1] = c
    narrow[0] = shift[k] + delta
    moved = np.float64(narrow[0])
    step = moved - shift[k]
    gain = wide[0] * step
    spread = np.sqrt(max(sum_xs_xs - m * delta * delta, 0.0))
    near = spread + abs(delta - step) < MOVABLE
    if np.isfinite(moved) and np.isfinite(gain) and step != 0 and near:
        shift[k] = moved
        return wide[1] + gain
    return wide[1]


@_quick
def _in_dtype(values, first, stop, narrow):
    """Rows ``first`` to ``stop`` (at most 4) of ``values``, in x's dtype (that of ``narrow``).

    Written over rows 4 to 7, kept for them: so that the quick function allocates nothing the
    size of its values.
    """
    n_c = values.shape[1]
    out = values[4:8].reshape(-1).view(narrow.dtype)[:(stop - first) * n_c]
    out = out.reshape((stop - first, n_c))
    for j in range(stop - first):
        for k in range(n_c):
            out[j, k] = values[first + j, k]
    return out


@_quick
def _finite(values, first):
    """Whether rows ``first`` on of ``values`` are all finite."""
    for j in range(first, values.shape[0]):
        for k in range(values.shape[1]):
            if not np.isfinite(values[j, k]):
                return False
    return True
'''


def _stored(name: str, narrowed: set[str], results: list[str]) -> str:
    """What a quick function stores of ``name``.

    A result as it is, a coefficient as the group function takes it (see the module's
    _narrowed).
    """
    if name in results:
        return name
    return f"_narrowed({name}, narrow, {'TINY32' if name in narrowed else 'UNSPLIT'})"


def quick_source(name: str, views: list[str], params: list[str], sums: list[str],
                 lines: list[str], terms: dict[str, str], narrowed: set[str],
                 results: list[str]) -> tuple[list[str], str]:
    """The lines of ``_<name>_quick``, and the keywords ``_fastest`` takes with it.

    ``views`` are the group function's (P, C, Q) arrays, the result last; ``params`` its
    per-channel parameters; ``sums`` the names of the sums it takes; ``lines`` the printed
    per-channel lines (indented for the loop); ``terms`` names each term's coefficient (keys
    of TERMS); those in ``narrowed`` are rounded to x's dtype; ``results`` are kept per
    channel. The function returns False where the group function must do it (see
    ``_fastest``): :func:`_quick_sums` said so, or a coefficient or result is not finite.
    Given ``summed``, the sums and the shift are in its ``values`` already, and the elementwise
    pass is left to the caller.

    >>> lines, keywords = quick_source("forward", ["x3", "y3"], ["gamma"],
    ...                                ["sum_xs_xs", "sum_xs"], ["        p = gamma"],
    ...                                {"xs": "p"}, {"p"}, [])
    >>> keywords
    'rows=10, results=(), data=(None, 0, 1), terms=(None, 1, None)'
    >>> lines[1]
    'def _forward_quick(x3, y3, gamma3, eps, values, summed):'
    >>> lines[-2]
    '        _combine_inner(y3, None, x3, None, cast[1], None, cast[0], None, rows, channels)'
    """
    stored = [*(terms[t] for t in TERMS if t in terms), *results]
    row = {n: SCRATCH + j for j, n in enumerate(stored)}
    dy = "dy3" if "dy3" in views else "None"
    out = views[-1]
    args = ", ".join([*views, *(p + "3" for p in params), "eps", "values", "summed"])
    body = [
        "@_jit(error_model=\"numpy\")",
        f"def _{name}_quick({args}):",
        f'    """_{name}_channels on one group, compiled, for _fastest (which see)."""',
        f"    if not summed and not _quick_sums(x3, {dy}, values):",
        "        return False",
        "    n_p, n_c, n_q = x3.shape",
        "    m = n_p * n_q",
        "    narrow, wide = np.empty(1, x3.dtype), np.empty(2)",
        "    for k in range(n_c):",
        f"        {', '.join(sums)} = {', '.join(f'values[{j}, k]' for j in range(len(sums)))}",
        *(f"        {p} = np.float64({p}3[0, k, 0])" for p in params),
        *lines,
        *([f"        {terms['']} = _at_mean_one(values[{SHIFT}], k, delta, sum_xs_xs, m, "
           f"{terms['xs']}, {terms['']}, narrow, wide)"] if {"xs", ""} <= terms.keys() else []),
        *(f"        values[{row[n]}, k] = {_stored(n, narrowed, results)}" for n in stored),
        f"    if not _finite(values, {SCRATCH}):",
        "        return False",
        "    rows, channels = (np.int64(0), n_p), (np.int64(0), n_c)  # as typed from Python",
        f"    cast = _in_dtype(values, {SHIFT}, {SCRATCH + len(stored) - len(results)}, narrow)",
    ]
    coefficient = [f"cast[{row[terms[t]] - SHIFT}]" if t in terms else "None" for t in TERMS]
    x, shift = ("x3", "cast[0]") if "xs" in terms else ("None", "None")
    body.append("    if not summed:")
    body.append(f"        _combine_inner({out}, {dy if 'dy' in terms else 'None'}, {x}, "
                f"{', '.join(coefficient)}, {shift}, None, rows, channels)")
    body.append("    return True")
    data = tuple(views.index(v) if v in views else None for v in ("dy3", "x3", out))
    cast = tuple(row[terms[t]] - SHIFT if t in terms else None for t in TERMS)
    keywords = (f"rows={SCRATCH + len(stored)}, results={tuple(row[r] for r in results)}, "
                f"data={data}, terms={cast}")
    return body, keywords


__all__ = ["QUICK", "quick_source"]
