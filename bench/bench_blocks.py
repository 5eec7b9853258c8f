"""Per-block costs behind the generated code's choices (README, "How it is generated").

Run ``python bench/bench_blocks.py`` (about 4 s). With warm caches, medians of 30 calls:

1. ns per element for one channel sum over a float64 (P, C, Q) block: NumPy's own
   ``np.add.reduce`` over axes (0, 2), against the generated ``_block_sum`` (its route depends
   on the block: along long rows of Q, down P for short ones, folded rows for narrow ones);
2. ms for a multiply by a per-channel value over a block: broadcast, against the value
   written out to the whole block, and to the few rows ``_by_block`` writes out, which
   ``_rows`` reads down the block's rows as one long row (with what each write-out costs);
3. the share of the sums sweep (``_pilot`` and ``_centred_sums``) in one float32 backward.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import symbn
from symbn.codegen import load

BLOCKS = ((1024, 64, 4), (8192, 8, 4), (128, 16, 49), (1, 64, 3136), (4096, 64, 1),
          (131072, 2, 1))
# arrays whose first block takes the per-channel multiply (as (P, C, Q): axis=1 NCHW is
# (N, C, H·W), (N, D) with axis=-1 is (N, D, 1))
ARRAYS = ((4096, 1024, 1), (256, 1024, 1), (1 << 20, 2, 1), (512, 256, 4), (256, 512, 49),
          (32, 64, 3136))


def median_ms(fn: Callable[[], object], repeats: int = 30) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples)) * 1e3


def sums_table(module) -> list[str]:
    rows = ["| block (P, C, Q) | np.add.reduce ns/element | _block_sum ns/element |",
            "|---|---|---|"]
    rng = np.random.default_rng(0)
    for shape in BLOCKS:
        a = rng.standard_normal(shape)
        ones = module._ones(a.size)
        plain = median_ms(lambda a=a: np.add.reduce(a, axis=(0, 2)))
        ours = median_ms(lambda a=a, ones=ones: module._block_sum(a, None, ones))
        rows.append(f"| {shape} | {plain * 1e6 / a.size:.2f} | {ours * 1e6 / a.size:.2f} |")
    return rows


def per_channel_times(module, shape: tuple[int, int, int]) -> tuple[tuple[int, ...], list[float]]:
    """The first block of a (P, C, Q) array, and ms for a multiply by a per-channel value over
    it: broadcast; written out to the whole block (and that write-out); written out by
    ``_by_block`` and read through ``_rows`` (and that write-out)."""
    a3 = np.ones(shape)
    blocks = module._blocks(a3)
    p, c, q, r = blocks[0]
    block = a3[p, c, q]
    out = np.empty_like(block)
    v = np.linspace(1.0, 2.0, shape[1]).reshape(1, -1, 1)
    whole = np.ascontiguousarray(np.broadcast_to(v, block.shape))
    pattern = module._by_block(v, blocks[:1], a3)[0]
    rows_in, rows_out = module._rows(block, r), module._rows(out, r)
    return block.shape, [
        median_ms(lambda: np.multiply(block, v, out=out)),
        median_ms(lambda: np.multiply(block, whole, out=out)),
        median_ms(lambda: np.ascontiguousarray(np.broadcast_to(v, block.shape))),
        median_ms(lambda: np.multiply(rows_in, pattern, out=rows_out)),
        median_ms(lambda: module._by_block(v, blocks[:1], a3))]


def per_channel_table(module) -> list[str]:
    rows = ["| array (P, C, Q), float64 | block | broadcast (1, C, 1) | whole block written out "
            "(its write-out) | _by_block rows, read by _rows (their write-out) |",
            "|---|---|---|---|---|"]
    for shape in ARRAYS:
        block, t = per_channel_times(module, shape)
        rows.append(f"| {shape} | {block} | {t[0]:.3f} ms | {t[1]:.3f} ms ({t[2]:.3f}) | "
                    f"{t[3]:.3f} ms ({t[4]:.3f}) |")
    return rows


def sums_share_line(module, shape: tuple[int, ...], axis: int) -> str:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    order = tuple(range(x.ndim))
    x3, dy3 = (module._channels(v, axis % x.ndim, order) for v in (x, dy))
    dx3 = np.empty_like(x3)
    blocks = module._blocks(x3)

    def sweep():
        return module._centred_sums(x3, module._pilot(x3), blocks, dy3, keep=dx3)
    whole = median_ms(lambda: module.backward(dy, x, np.ones(shape[axis], np.float32),
                                              axis=axis))
    sums = median_ms(sweep)
    return (f"float32 {shape} axis={axis}: backward {whole:.2f} ms, of which the sums sweep "
            f"{sums:.2f} ms ({sums / whole:.0%}); {whole * 1e6 / x.size:.1f} ns per element")


def main() -> None:
    module = load(symbn.LayerSpec())
    print(f"symbn {symbn.__version__}, numpy {np.__version__}\n")
    print("\n".join(sums_table(module)))
    print()
    print("\n".join(per_channel_table(module)))
    print()
    for shape, axis in (((256, 1024), -1), ((32, 64, 56, 56), 1)):
        print(sums_share_line(module, shape, axis))


if __name__ == "__main__":
    main()
