"""The fixed parts of a generated module: the passes over the data.

Text copied verbatim into the module :mod:`symbn.codegen` writes, after the helpers of
:mod:`symbn.codegen_templates`: the per-block sums, the first guess at the mean and its
correction, the shift of evaluation mode. :func:`passes_source` puts them together with the
worker thread (:mod:`symbn.codegen_threads`), the per-channel coefficients' helpers
(:mod:`symbn.codegen_coefficients`) and the elementwise pass (:mod:`symbn.codegen_combine`),
or the numba backend's passes (:mod:`symbn.codegen_numba`).
"""

from __future__ import annotations

from symbn import codegen_numba as numba
from symbn.codegen_coefficients import AT_MEAN, COEFFICIENTS, NARROW, PRODUCT, SPLIT
from symbn.codegen_combine import COMBINE
from symbn.codegen_quick import QUICK
from symbn.codegen_threads import AT_ONCE

# The dtypes' limits the sweeps and coefficients check against (TINY: _split's only).
TINY = '''
# below these a per-channel coefficient loses digits in the dtype (see _split)
TINY = {np.dtype(np.float32): np.finfo(np.float32).tiny / np.finfo(np.float32).eps,
        np.dtype(np.float64): np.finfo(np.float64).tiny / np.finfo(np.float64).eps}'''

RANGES = '''
# root-mean-square spread of a channel (|x - mean|) beyond which x - mean overflows (float32),
# or b ~ gamma*dy/spread**2 nears the bottom of float64's range (float64)
SPREAD = {np.dtype(np.float32): float(np.finfo(np.float32).max), np.dtype(np.float64): 1e100}
# x - shift (both in x's dtype) cannot overflow where |shift| is below half a unit in the last
# place of the dtype's largest number (2**128 - 2**104 in float32), as |x| is at most that number
SAFE_SHIFT = {np.dtype(np.float32): 2.0 ** 103, np.dtype(np.float64): 2.0 ** 970}
'''

# The NumPy backends' block machinery: sums per block, values per block, halves.
BLOCKWISE = '''

def _block_sum(a, b, ones):
    """Σ a (or Σ a·b, given b) over one float64 (p, c, q) block, per channel; ``ones``: 1.0s.

    NumPy's own sums and einsum take a short run element by element (5.9 ns per element for
    Q = 4, against 0.16 ns for a BLAS product with ones), so the sums go along long runs:
    - rows of Q of at least LONG elements: along Q (pairwise, or np.vecdot), then down P;
    - shorter ones: read as (p, c·q) rows, summed down P (with ones, or einsum), then along Q
      (with ones). Where c·q is below LONG, ``fold`` rows are read as one, so that the runs
      are long and no sum runs down more than BLOCK_SIZE / LONG rows in sequence (2^17 rows
      of float64 in sequence left dβ off by up to 1e-12); rows beyond a multiple of ``fold``
      are summed on their own. A block of one row needs no sum down P.
    """
    n_p, n_c, n_q = a.shape
    if n_q >= LONG:
        return a.sum(axis=2).sum(axis=0) if b is None else np.vecdot(a, b).sum(axis=0)
    fold, even = _fold(n_p, n_c * n_q, LONG)
    if 0 < even < n_p:
        parts = (slice(None, even), slice(even, None))
        head, tail = (_block_sum(a[s], None if b is None else b[s], ones) for s in parts)
        return head + tail
    if n_p % fold:  # fewer rows than a fold
        fold = 1
    rows = a.reshape(n_p // fold, -1)
    if len(rows) == 1:
        per_q = rows[0] if b is None else rows[0] * b.reshape(rows.shape)[0]
    elif b is None:
        per_q = ones[: len(rows)] @ rows
    else:
        per_q = np.einsum("pk,pk->k", rows, b.reshape(rows.shape))
    if fold > 1:
        per_q = ones[:fold] @ per_q.reshape(fold, -1)
    return per_q if n_q == 1 else per_q.reshape(n_c, n_q) @ ones[:n_q]


def _ones(size):
    """The 1.0s :func:`_block_sum` needs for blocks of at most ``size`` elements.

    After the fold a block has at most size / LONG rows, and fold and Q are at most LONG.
    """
    return np.ones(max(size // LONG, LONG))


def _by_block(v, blocks, a3):
    """Per-channel ``v``, shaped (1, C, 1), for each block of a3, to go with :func:`_rows`.

    For blocks of whole rows (r > 0), ``v`` is written out to r rows of P and read as one row
    of r·C·Q elements, which NumPy reads down the block's rows in long runs and which stays in
    cache: broadcast, NumPy takes a per-channel value along short runs (of Q, or of C·Q down the
    rows) at a fraction of its speed. One row is written out, then copied to the next rows,
    doubling (NumPy writes a short run of Q element by element). The rows written out hold
    about RUN to 2·RUN elements where a row of P is short (fewer in a small block), and one
    row where it is longer (a whole block in NCHW, where one image is a block); writing ``v``
    out to whole blocks took a quarter of the array, in new memory on every call (a page fault
    every 4 KiB). Blocks with r = 0 (see :func:`_blocks`) take ``v`` broadcast.
    """
    if v is None:
        return [None] * len(blocks)
    rows = max(r for *_, r in blocks)
    if not rows:
        return [v[:, c] for _, c, _, _ in blocks]
    pattern = np.empty((rows, *a3.shape[1:]), v.dtype)
    np.copyto(pattern[:1], v)
    done = 1
    while done < rows:
        more = min(done, rows - done)
        pattern[done : done + more] = pattern[:more]
        done += more
    return [pattern[:r].reshape(1, -1) for *_, r in blocks]


def _halves(blocks, a3):
    """The blocks of a3 in parts to sweep at once (see :func:`_at_once`).

    Two halves, in order, where a3 holds at least THREADED elements; else one part.

    Two threads took 0.65 to 0.97 of the time of one on arrays of 2^21 elements and more, on a
    2-core VM (three interleaved runs), but up to 2 times as long on arrays of 2^18 (the threads
    wait for each other's short NumPy calls). The halves depend on the array alone, so the sums
    do too.
    """
    if a3.size < THREADED or len(blocks) < 2:
        return [blocks]
    half = (len(blocks) + 1) // 2
    return [blocks[:half], blocks[half:]]


def _largest(a3, blocks):
    """The elements of the largest of ``blocks`` of a3, for scratch space used block by block.

    Not always the first block's: a half (see :func:`_halves`) may start with the last, short
    piece of a row of Q or of the channels.
    """
    return max(a3[b[:3]].size for b in blocks)
'''

# The NumPy backends' sums, block by block (numba has its own: codegen_numba.SUMS).
BLOCK_SUMS = '''

def _sums(x3, shift, blocks, dy3=None, squares=True, keep=None):
    """Per-channel Σ xs² and Σ xs (if ``squares``), Σ dy and Σ dy·xs (given dy); xs = x - shift.

    Each is float64, shaped (1, C, 1), from one sweep over the blocks (in halves at once, see
    :func:`_halves`, the halves' sums then added in order). Given ``keep`` (an array like x3),
    xs is left there for :func:`_combine`.
    """
    parts = _at_once(lambda part: _part_sums(x3, shift, part, dy3, squares, keep),
                     _halves(blocks, x3))
    totals = parts[0]
    for more in parts[1:]:
        totals = totals + more
    wanted = ([0, 1] if squares else []) + ([2, 3] if dy3 is not None else [])
    return tuple(totals[k].reshape(1, -1, 1) for k in wanted)


def _part_sums(x3, shift, blocks, dy3, squares, keep):
    """The (4, C) sums of :func:`_sums` over some of x3's blocks, in order.

    xs is formed block by block in scratch space (or in ``keep``). Every sum accumulates in
    float64: float32 blocks of xs and dy are copied to float64 first, so that their products
    are exact and no block's sum can overflow (dy and x near 1e37) or drift (a float32 sum of
    dy = 0.1 down 2^17 rows was off by 6e-4). Σ xs says how far the mean is from the shift.
    """
    totals = np.zeros((4, x3.shape[1]))
    size = _largest(x3, blocks)
    narrow = x3.dtype != np.float64
    xs_space = np.empty(size, x3.dtype) if keep is None else None
    xs_wide_space = np.empty(size) if narrow else None
    dy_wide_space = np.empty(size) if narrow and dy3 is not None else None
    ones = _ones(size)
    for (p, c, q, r), centre in zip(blocks, _by_block(shift, blocks, x3), strict=True):
        xb = x3[p, c, q]
        xs = xs_space[: xb.size].reshape(xb.shape) if keep is None else keep[p, c, q]
        np.subtract(_rows(xb, r), centre, out=_rows(xs, r))
        if narrow:
            xs_wide = xs_wide_space[: xb.size].reshape(xb.shape)
            np.copyto(xs_wide, xs)
            xs = xs_wide
        if squares:
            totals[0, c] += _block_sum(xs, xs, ones)
            totals[1, c] += _block_sum(xs, None, ones)
        if dy3 is not None:
            g = dy3[p, c, q]
            if narrow:
                g_wide = dy_wide_space[: xb.size].reshape(xb.shape)
                np.copyto(g_wide, g)
                g = g_wide
            totals[2, c] += _block_sum(g, None, ones)
            totals[3, c] += _block_sum(g, xs, ones)
    return totals
'''

# Narrow rows read several at once (every backend: the NumPy sums and elementwise pass with
# LONG, the numba kernels with WIDE).
FOLD = '''

def _fold(n_p, k, least):
    """How many rows of k elements to read as one, and how many of n_p rows that covers.

    A folded row holds at least ``least`` elements; the rows covered are a multiple of the fold,
    and the rows left over go on their own.
    """
    fold = -(-least // k)
    return fold, n_p - n_p % fold
'''

# How far off the first guess at the mean may be before _centred_sums sweeps again, and how
# many elements it samples, by backend. Every sum is float64; the NumPy backends' elementwise
# pass runs in x's dtype, where b·xs + c loses what the guess's error adds to its terms (a
# review: float32 dx off by 6.7e-7 of its scale with a guess 3.99σ off at m = 2, 1.1e-7
# within σ/√3); the numba backend's runs in float64.
GUESS = {
    "numpy": '''

# a channel is swept again where δ² > FAR·Σ xs²/m (Σ xs²/m = σ² + δ²): |δ| > σ/√3
FAR = 0.25
PER_CHANNEL = 128  # elements the first guess samples per channel (its error: σ/11)
''',
    "numba": '''

# a channel is swept again where δ² > FAR·Σ xs²/m (Σ xs²/m = σ² + δ²): |δ| > 4σ, which costs
# the variance about 4 bits of float64's 53; the elementwise pass then forms x - shift from the
# mean (_at_mean, where x - mean stays within float32), or float32 dx lost 3.2e-7 of its scale
FAR = 16 / 17
PER_CHANNEL = 16  # elements the first guess samples per channel (its error: σ/4, a 16th of 4σ)
''',
}

# The sample the first guess at the mean is taken from (every backend).
SAMPLE = '''

def _sample_steps(x3):
    """``(step_p, step_q)``: the first guess at the mean samples x3[::step_p, :, ::step_q].

    About PER_CHANNEL elements per channel, spread over the batch: evenly spaced rows of P,
    and evenly spaced elements of each (PER_CHANNEL / 8 of them, or more when P is short). With
    Q = 1 each row sampled is read whole: on (256, 1024) float32 with caches flushed, the numba
    backend's first guess took 102 µs from 128 rows, 44 µs from 16.
    """
    n_p, _, n_q = x3.shape
    per_row = min(n_q, max(PER_CHANNEL // 8, PER_CHANNEL // n_p))
    return max(1, n_p // max(1, PER_CHANNEL // per_row)), max(1, n_q // per_row)
'''

# The first guess at the mean (the numba backend has its own: codegen_numba.PILOT).
PILOT = '''

def _pilot(x3):
    """A first guess at each channel's mean, in x's dtype, for the shift.

    The mean of the sample of :func:`_sample_steps`, summed in x's dtype. It costs a small
    fraction of a pass; its error (see PER_CHANNEL) is far below the |δ| at which
    :func:`_centred_sums` sweeps again (see FAR), and that function corrects it exactly (and
    takes the mean itself where a float32 sum of the sample overflowed).
    """
    step_p, step_q = _sample_steps(x3)
    sample = x3[::step_p, :, ::step_q]
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN: found by _centred_sums
        total = np.add.reduce(sample, axis=0) @ np.ones(sample.shape[2], x3.dtype)
    return total.reshape(1, -1, 1) / x3.dtype.type(sample.shape[0] * sample.shape[2])
'''

# The correction of the first guess; evaluation mode's shift.
CENTRE = '''

def _centred_sums(x3, shift, blocks, dy3=None, keep=None, first=0):
    """:func:`_sums` with Σ xs² and Σ xs, and the shift they are taken from.

    δ = Σ xs/m is how far the mean lies from the shift, exactly. In a channel where |δ| is more
    than FAR allows, the variance (Σ xs² − m·δ²)/m would lose digits, and so would
    Σ dy·xs − δ·Σ dy: the guess was poor (sorted or padded data), or the channel is (nearly)
    constant. The array is then swept again, and those channels take the sums from the
    corrected mean, shift + δ, which is within a unit in the last place of the mean; a constant
    channel's xs are then exact and its variance exactly 0. Where the first sums are not
    finite (x − shift beyond the range of x's dtype, or inf or NaN in x) the mean itself
    (:func:`_mean`) is the new shift, so that inf and NaN give NaN there and only there. A
    ValueError names a channel (counted from ``first``, that of x3's first) whose spread is
    beyond the dtype's range.
    """
    m = x3.shape[0] * x3.shape[2]
    with np.errstate(over="ignore", invalid="ignore"):  # a poor guess: detected, summed again
        sums = _sums(x3, shift, blocks, dy3, keep=keep)
        delta = sums[1] / m
        lost = ~np.isfinite(sums[0])
        far = lost | (delta * delta > FAR * sums[0] / m)  # δ² may overflow: far, as it is
    if far.any():
        with np.errstate(invalid="ignore"):  # an infinite guess: replaced by the mean below
            centre = shift + delta
        if lost.any():
            centre = np.where(lost, _mean(x3), centre)
        moved = np.where(far, centre, shift).astype(shift.dtype)
        with np.errstate(over="ignore"):  # still beyond float32: the ValueError below says so
            again = _sums(x3, moved, blocks, dy3, keep=keep)
        shift = moved
        sums = tuple(np.where(far, b, a) for a, b in zip(sums, again, strict=True))
    within = sums[0] / m <= SPREAD[x3.dtype] ** 2
    if not within.all():  # too wide, or NaN (from inf or NaN in x, which gives NaN there)
        wide = np.flatnonzero(np.isfinite(shift) & ~within)
        if wide.size:
            raise ValueError(
                f"x's channel {first + int(wide[0])} spreads too far from its mean for "
                f"{x3.dtype}: expected |x - mean| below about {SPREAD[x3.dtype]:.1e}; scale the "
                "data down")
    return shift, sums


def _mean(x3):
    """Each channel's mean, in float64, from a pass of its own (inf or NaN where x holds them).

    A plain float64 sum, unless it overflows (a float64 channel of 1.5e308s; pairwise sums of
    ±1.7e308 gave inf − inf, NaN, so the overflow itself is what is looked for): then the sum
    of x scaled (:func:`_scaled_mean`). An inf or NaN in x overflows nothing. Where a finite
    |mean| is above 2^300 it is then corrected once, by the mean of x less it, as
    :func:`_centred_sums` corrects a guess: a sum of equal values rounds, and a constant
    channel's mean must be exact, or its x − mean is not 0 and an error of an ulp (2e292 at
    1.5e308) squares to inf. Only such data pays those passes.
    """
    m = x3.shape[0] * x3.shape[2]
    try:
        with np.errstate(over="raise"):
            mean = np.sum(x3, axis=(0, 2), keepdims=True, dtype=np.float64) / m
    except FloatingPointError:  # a sum beyond float64
        mean = _scaled_mean(x3, 0.0)
    huge = np.isfinite(mean) & (np.abs(mean) > 2.0 ** 300)
    if huge.any():
        with np.errstate(over="ignore", invalid="ignore"):  # beyond the range: the mean stays
            again = mean + _scaled_mean(x3, np.where(huge, mean, 0.0))
        mean = np.where(huge & np.isfinite(again), again, mean)
    return mean


def _scaled_mean(x3, centre):
    """Each channel's mean of x3 − centre, in float64, summed so that it cannot overflow.

    The sum is of x3 − centre scaled by a power of two of at most 1/(2m), exact but for values
    near the bottom of the range (a shift needs no more). The array goes in pieces of about
    2^16 elements (rows of P, or runs of Q within a row), so that the scaled copy stays small.
    """
    n_p, n_c, n_q = x3.shape
    scale = 2.0 ** -(int(n_p * n_q).bit_length() + 1)
    total = np.zeros((1, n_c, 1))
    run = min(n_q, max(1, (1 << 16) // n_c))
    rows = max(1, (1 << 16) // (n_c * run))
    for p in range(0, n_p, rows):
        for q in range(0, n_q, run):
            scaled = np.subtract(x3[p:p + rows, :, q:q + run], centre, dtype=np.float64)
            scaled *= scale
            total += np.sum(scaled, axis=(0, 2), keepdims=True)
    return total / (n_p * n_q) / scale


def _running_shift(x3, running_mean, blocks, first=0):
    """The shift of evaluation mode: running_mean in x's dtype, and delta = running_mean - shift.

    x - shift is formed in x's dtype. Only a channel with |shift| of at least SAFE_SHIFT can
    make it overflow (a float32 x of -2e38 with a running_mean of 2e38, or a running_mean
    beyond float32 itself). The ``blocks`` of x3 holding such channels (None: those of
    :func:`_blocks`, made here) are checked, and a ValueError names the first channel
    (counted from ``first``, that of x3's first) where some x - running_mean is beyond the
    dtype's range. An inf or NaN running_mean is let through, to give NaN in its channel.
    """
    with np.errstate(over="ignore"):
        shift = running_mean.astype(x3.dtype)
    near = (np.abs(shift) >= SAFE_SHIFT[x3.dtype]) & np.isfinite(running_mean)
    if near.any():
        over = np.isinf(shift) & near
        with np.errstate(over="ignore", invalid="ignore"):
            for p, c, q, _ in _blocks(x3) if blocks is None else blocks:
                if near[:, c].any():
                    xb = x3[p, c, q]
                    beyond = np.isinf(xb - shift[:, c]) & np.isfinite(xb)
                    over[:, c] |= beyond.any(axis=(0, 2), keepdims=True) & near[:, c]
        if over.any():
            j = int(np.argmax(over.reshape(-1)))
            raise ValueError(
                f"x - running_mean in channel {first + j} is beyond the range of {x3.dtype} "
                f"(running_mean[{first + j}] = {float(running_mean.reshape(-1)[j])!r}): "
                f"expected |x - running_mean| below {float(np.finfo(x3.dtype).max):.1e}; scale "
                "the data and the running statistics down")
    with np.errstate(invalid="ignore"):  # an infinite running_mean: NaN, to propagate
        delta = running_mean - shift
    return shift, delta


'''

SWEEPS = (TINY + RANGES + BLOCKWISE + FOLD + AT_ONCE + BLOCK_SUMS + GUESS["numpy"] + SAMPLE + PILOT
          + CENTRE)




def passes_source(backend: str = "numpy") -> str:
    """The sweeps, the per-channel coefficients' helpers, then ``backend``'s elementwise pass.

    The numba backend has its own sums and first guess (:mod:`symbn.codegen_numba`) and
    elementwise pass (:mod:`symbn.codegen_combine`, as every backend's), and none of the NumPy
    backends' block machinery; the worker thread (_at_once) and the split of b (_split) are
    every backend's, _at_mean that of the backends whose pass forms x - shift itself.
    """
    if backend == "numba":
        pieces = [TINY, RANGES, AT_ONCE, FOLD, numba.SUMS, GUESS["numba"], SAMPLE, numba.PILOT,
                  CENTRE, PRODUCT, SPLIT, NARROW, AT_MEAN, COMBINE["numba"], QUICK]
        return "\n\n\n".join(piece.strip("\n") for piece in pieces) + "\n"
    at_mean = AT_MEAN if backend == "numexpr" else ""
    return (SWEEPS + COEFFICIENTS + at_mean).rstrip("\n") + "\n" + COMBINE[backend]
