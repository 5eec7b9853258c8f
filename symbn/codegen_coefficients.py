"""The fixed parts of a generated module: per-channel coefficients kept in range.

Text copied verbatim into the module :mod:`symbn.codegen` writes, after the sweeps of
:mod:`symbn.codegen_passes`: a product of per-channel factors safe from its own steps'
overflow and underflow, and a coefficient narrowed to x's dtype (split in two factors, or
refused with a ValueError naming the channel) where it is beyond that dtype's range.
"""

from __future__ import annotations

PRODUCT = '''def _product(*factors):
    """The product of per-channel float64 ``(value, power)`` factors, safe from its own steps.

    The factors are multiplied in turn, as printed (numerator, then denominator). A step may
    overflow where the product does not (r³ = inf with eps = 1e-300, for a constant channel
    whose Σ dy·xs is 0; r³·Σ dy·xs for γ = 1e-100 with dy = 1e110), or fall below float64's
    normal range and lose digits (γ·r³ for γ = 1e-150 at a spread of 1e60: dx off by 0.47),
    and no order suits every input. Where the product is not finite, or (rare: NumPy's
    underflow flag says so, at no cost otherwise) a step fell below the normal range, each
    value is split as m·2^e with m in [0.5, 1), the mantissas multiplied and the exponents
    added, so that the product is inf or NaN only where it is itself, and rounded once.
    """
    with np.errstate(over="ignore", invalid="ignore", under="raise"):  # as plain: inf, NaN
        try:
            plain = _in_turn(factors)
            repair = ~np.isfinite(plain)
        except FloatingPointError:  # a step underflowed: find the channels where one did
            with np.errstate(under="ignore"):
                plain, low = _in_turn(factors, low=False)
            repair = low | ~np.isfinite(plain)
        if not repair.any():
            return plain
        split = [(np.frexp(value), power) for value, power in factors]
        mantissa = _in_turn([(m, power) for (m, _), power in split])
        exponent = 0
        for (_, e), power in split:
            exponent = exponent + e * power
        with np.errstate(under="ignore"):  # a product below the normal range, rounded once
            return np.where(repair, np.ldexp(mantissa, exponent), plain)


def _in_turn(factors, low=None):
    """The ``(value, power)`` factors multiplied one at a time, in order.

    Given ``low`` (False), also where a step fell below float64's normal range (or to 0).
    """
    out = 1.0
    for value, power in factors:
        for _ in range(abs(power)):
            out = out * value if power > 0 else out / value
            if low is not None:
                low = low | (np.abs(out) < np.finfo(np.float64).tiny)
    return out if low is None else (out, low)'''

# b split as b·2^e and 2^-e: the NumPy backends' elementwise pass takes b this way
SPLIT = '''


def _split(b, dtype):
    """``b`` (float64, per channel) as ``b2 * 2**-e`` with both factors representable in dtype.

    b·xs may be an ordinary float32 number while b alone is below float32's range (|x| ~ 1e37
    gives b ~ r³·Σ(dy·xs) ~ 1e-73) or above it (a spread of 1e-20 with eps = 1e-30 gives
    b ~ 1e40): then xs is scaled by a power of two (exact) and b the other way. Returns
    (b2, None) when b fits as it is.
    """
    size = np.abs(b)
    out = ((size < TINY[np.dtype(dtype)]) & (b != 0)) | (size > float(np.finfo(dtype).max))
    out &= np.isfinite(b)
    if not out.any():
        return b.astype(dtype), None
    _, exponent = np.frexp(np.where(out, b, 1.0))
    e = np.where(out, -exponent // 2, 0)
    return np.ldexp(b, e).astype(dtype), np.ldexp(np.ones_like(b), -e).astype(dtype)'''

NARROW = '''


def _narrow(v, name, result, dtype, first=0, scales=False, split=False):
    """Per-channel float64 ``v``, the coefficient ``name`` of ``result``, in x's dtype.

    In float32 a coefficient such as γ·r can be beyond the dtype's range while the result is
    not (γ = 3e36 with eps = 1e-5, or eps = 1e-80 on a constant channel): cast, it was inf, and
    inf·0 gave NaN. A ValueError names the first such channel (counted from ``first``). Values
    already infinite or NaN (from inf or NaN inputs) go through, to propagate. With ``scales``
    (a coefficient that multiplies the data), a value so far below the dtype's normal range
    that the cast loses more than 2^-20 of it (below about 1.5e-39 in float32) is refused too:
    the result lost as much (γ = 1e-20 at a spread of 1e30 in float32 gave a = 0, and dx off
    by its own size, silently, before a review found it). In float64 the same holds of the
    float64 value itself, below about 5.2e-318 (γ = 1e-300 at a spread of 1e20 left dx off by
    2e-4 of its scale, silently, before a review found it); a product that fell to 0 is not
    seen (the known limit of b below float64's normal range, in README).

    With ``split`` (the coefficient of xs), v stays float64 and is returned as it is, for
    :func:`_split`, where its two factors hold it in the dtype: that is, below 2^254 in
    float32 (every float64 value in float64). Beyond, they were inf, and 0·inf gave NaN where
    x - shift is 0: a float32 constant channel with γ/ε above 2.9e76 (eps = 1e-80 in the std
    placement) had y NaN, silently, before a review found it. Such a v is refused.
    """
    if split:
        top = 2 * (np.finfo(dtype).maxexp - 1)  # 2^-e and b·2^e both hold below 2^top
        limit = 2.0**top if top < 1024 else np.inf  # float64: every float64 value
        beyond = np.flatnonzero(np.isfinite(v) & (np.abs(v) >= limit))
        if beyond.size:
            j = int(beyond[0])
            raise ValueError(
                f"in channel {first + j} the coefficient {name} of {result} is "
                f"{float(v.reshape(-1)[j]):.3e}, beyond what {np.dtype(dtype)} arithmetic can "
                f"apply (as two factors within its range): expected |{name}| below 2^{top} "
                f"({2.0 ** top:.1e}); use a smaller gamma, a larger eps, or float64 inputs")
        return v
    few = float(np.finfo(dtype).smallest_subnormal) * 2**20  # below: fewer than 20 bits
    if v.dtype == dtype:  # float64: v is already rounded, and its own size says what it lost
        if not scales or not (np.abs(v) < few).any():  # three NumPy calls where none is
            return v
        narrow, lost = v, (np.abs(v) < few) & (v != 0)
    else:  # a cast measures its own loss
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # inf - inf
            narrow = v.astype(dtype)
            lost = np.abs(narrow - v) > np.abs(v) * 2.0 ** -20 if scales else None
    if not np.isfinite(narrow).all():
        beyond = np.flatnonzero(np.isinf(narrow) & np.isfinite(v))
        if beyond.size:
            j = int(beyond[0])
            raise ValueError(
                f"in channel {first + j} the coefficient {name} of {result} is "
                f"{float(v.reshape(-1)[j]):.3e}, beyond the range of {np.dtype(dtype)}: expected "
                f"|{name}| below {float(np.finfo(dtype).max):.1e}; use a smaller gamma, a "
                "larger eps, or float64 inputs")
    if scales and lost.any():  # only below the normal range
        j = int(np.flatnonzero(lost)[0])
        wider = " or float64 inputs" if np.dtype(dtype) != np.float64 else ""
        raise ValueError(
            f"in channel {first + j} the coefficient {name} of {result} is "
            f"{float(v.reshape(-1)[j]):.3e}, so far below the normal range of {np.dtype(dtype)} "
            f"that it keeps too few digits: expected |{name}| above {few:.1e}, or 0; use a "
            f"larger gamma{wider}")
    return narrow
'''

# where the elementwise pass forms x - shift itself (not the numpy backend, whose sums keep xs)
AT_MEAN = '''


# a channel whose sqrt(m·var) + |mean - new shift| is below this keeps every x - new shift
# within float32's range
MOVABLE = float(np.finfo(np.float32).max) * (1 - 2.0**-20)


def _at_mean(shift, delta, sum_xs_xs, m, b, c):
    """The elementwise pass's shift moved to the mean, and c to match: the same b·(x - shift) + c.

    shift + delta is the mean (delta = Σ xs/m), and the new shift is it rounded to x's dtype.
    The first guess may be up to 4σ off (the numba backend's FAR), and b·(x - shift) then
    cancels with c's -b·delta: a float32 pass lost 3.2e-7 of dx's scale there, and (x -
    shift)·b overflowed where b·(x - mean) does not (a review). c (float64) gains b·step,
    step = new - shift, so that b·(x - new) + c is unchanged (to float64's rounding of step
    and b·step). A channel keeps its shift where the new one, b or b·step is not finite, or
    where some x - new might be beyond float32 (whatever the dtype), as x - shift was checked
    to be within it and x - mean may not be: |x - new| is at most sqrt(Σ (x - mean)²) +
    |mean - new|, Σ (x - mean)² = Σ xs² - m·delta² (see MOVABLE).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # not finite: that channel keeps its own
        moved = (shift + delta).astype(shift.dtype)
        step = moved.astype(np.float64) - shift
        spread = np.sqrt(np.maximum(sum_xs_xs - m * delta * delta, 0.0))
        spread += np.abs(delta - step)
        ok = np.isfinite(moved) & (step != 0) & (spread < MOVABLE)
        del spread  # (per-channel temporaries count at a group's peak: few values per channel)
        gain = np.multiply(b, step, out=step)
        ok &= np.isfinite(gain)
        np.add(c, gain, out=c, where=ok)  # c is this call's own array
    return np.where(ok, moved, shift), c'''

COEFFICIENTS = PRODUCT + SPLIT + NARROW
