"""The numba backend's quick functions: a group function's printed lines, one channel at a time.

A module :mod:`symbn.codegen` writes with ``backend="numba"`` has, beside each training group
function (``_backward_channels``, ``_forward_channels``), a compiled ``_<name>_quick`` that
runs the same printed per-channel lines (printed for scalars, a product by
``_scalar_product``) in a loop over the channels, between the same kernels; ``_fastest`` (text
in :mod:`symbn.codegen_numba`) calls it on small arrays and falls back on the group function.
"""

from __future__ import annotations

SCRATCH = 9  # rows of ``values`` before the coefficients: 4 sums, 4 of scratch, the shift
TERMS = ("dy", "xs", "")  # the elementwise pass's terms, in the order _combine_kernel takes them


def quick_source(name: str, views: list[str], params: list[str], sums: list[str],
                 lines: list[str], terms: dict[str, str], narrowed: set[str],
                 results: list[str]) -> tuple[list[str], int, tuple[int, ...]]:
    """The lines of ``_<name>_quick``, the rows of its ``values`` and those of ``results``.

    ``views`` are the group function's (P, C, Q) arrays, the result last; ``params`` its
    per-channel parameters; ``sums`` the names of the sums it takes; ``lines`` the printed
    per-channel lines (indented for the loop); ``terms`` names each term's coefficient (keys
    of TERMS); those in ``narrowed`` are rounded to x's dtype; ``results`` are kept per
    channel. The function returns False where the group function must do it (see
    ``_fastest``): :func:`_quick_sums` said so, or a coefficient or result is not finite.

    >>> lines, rows, results = quick_source("forward", ["x3", "y3"], ["gamma"],
    ...                                     ["sum_xs_xs", "sum_xs"], ["        p = gamma"],
    ...                                     {"xs": "p"}, {"p"}, [])
    >>> rows, results, lines[1]
    (10, (), 'def _forward_quick(x3, y3, gamma3, eps, values):')
    >>> lines[-2]
    '    _combine_inner(y3, None, x3, None, values[9], None, values[8], rows, channels)'
    """
    stored = [*(terms[t] for t in TERMS if t in terms), *results]
    row = {n: SCRATCH + j for j, n in enumerate(stored)}
    dy = "dy3" if "dy3" in views else "None"
    out = views[-1]
    args = ", ".join([*views, *(p + "3" for p in params), "eps", "values"])
    body = [
        "@_jit(error_model=\"numpy\")",
        f"def _{name}_quick({args}):",
        f'    """_{name}_channels on one group, compiled, for _fastest (which see)."""',
        f"    if not _quick_sums(x3, {dy}, values):",
        "        return False",
        "    n_p, n_c, n_q = x3.shape",
        "    m = n_p * n_q",
        "    narrow = np.empty(1, x3.dtype)",
        "    for k in range(n_c):",
        f"        {', '.join(sums)} = {', '.join(f'values[{j}, k]' for j in range(len(sums)))}",
        *(f"        {p} = np.float64({p}3[0, k, 0])" for p in params),
        *lines,
        *(f"        values[{row[n]}, k] = {f'_narrowed({n}, narrow)' if n in narrowed else n}"
          for n in stored),
        f"    if not _finite(values, {SCRATCH}):",
        "        return False",
        "    rows, channels = (np.int64(0), n_p), (np.int64(0), n_c)  # as typed from Python",
    ]
    coefficient = [f"values[{row[terms[t]]}]" if t in terms else "None" for t in TERMS]
    x, shift = ("x3", "values[8]") if "xs" in terms else ("None", "None")
    body.append(f"    _combine_inner({out}, {dy if 'dy' in terms else 'None'}, {x}, "
                f"{', '.join(coefficient)}, {shift}, rows, channels)")
    body.append("    return True")
    return body, SCRATCH + len(stored), tuple(row[r] for r in results)


__all__ = ["quick_source"]
