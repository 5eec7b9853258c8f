"""Peak memory of the generated backward where it is largest: few elements per channel.

Run ``python bench/bench_memory.py`` (about 5 s). Each figure is tracemalloc's peak during one
call, results included, in input-sized arrays (and MiB), on float32 inputs of standard normal
data with the default variant (training mode, eps in the root, biased, affine), except the
m = 1 row, which is in evaluation mode (training needs m >= 2). Memory does not depend on the
machine, so one run gives the figures; the README quotes them.

* m = 2 with 2^15 to 2^20 channels, numpy backend and (where installed) numexpr and numba;
* a few small or narrow shapes: one group of few rows, an array of one block.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import symbn
from symbn.codegen import BACKENDS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backward import installed, peak_arrays, versions  # as the speed table has them
from bench_backward import module as user_module  # numba: from a file, as the speed table

WIDE = tuple(1 << k for k in (15, 17, 18, 19, 20))
OTHER = (((8, 4096), "train"), ((32, 4096), "train"), ((1, 1 << 20), "eval"),
         ((16384, 1), "train"), ((256, 1024), "train"))


def peak(module, shape: tuple[int, ...], mode: str) -> tuple[float, float]:
    """Peak of one backward call: (input-sized arrays, MiB)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = np.ones(shape[-1], np.float32)
    stats = (np.zeros(shape[-1], np.float32), np.ones(shape[-1], np.float32))
    args = (dy, x, gamma, *stats) if mode == "eval" else (dy, x, gamma)
    inputs = peak_arrays(lambda: module.backward(*args), x.nbytes)
    return inputs, inputs * x.nbytes / 2**20


def modules(mode: str) -> dict[str, object]:
    spec = symbn.LayerSpec(mode=mode)
    return {b: user_module(spec, b) for b in installed(BACKENDS)}


def wide_table() -> list[str]:
    mods = modules("train")
    rows = ["| channels (m = 2) | " + " | ".join(f"2^{c.bit_length() - 1}" for c in WIDE) + " |",
            "|---" * (len(WIDE) + 1) + "|"]
    for name, module in mods.items():
        figures = [peak(module, (2, c), "train") for c in WIDE]
        rows.append(f"| {name}: inputs | " + " | ".join(f"{p:.2f}" for p, _ in figures) + " |")
        rows.append(f"| {name}: MiB | " + " | ".join(f"{mib:.1f}" for _, mib in figures) + " |")
    return rows


def other_table() -> list[str]:
    rows = ["| shape (axis -1) | mode | numpy: inputs (MiB) |", "|---|---|---|"]
    for shape, mode in OTHER:
        inputs, mib = peak(modules(mode)["numpy"], shape, mode)
        rows.append(f"| {shape} | {mode} | {inputs:.2f} ({mib:.2f}) |")
    return rows


def main() -> None:
    print(f"symbn {symbn.__version__}, numpy {np.__version__}, {versions()}; float32\n")
    print("\n".join(wide_table()))
    print()
    print("\n".join(other_table()))


if __name__ == "__main__":
    main()
