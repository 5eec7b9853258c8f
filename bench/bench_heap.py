"""How the state of the C heap moves the timings of ``bench_backward.py`` (its ``settle_heap``).

glibc serves a block of at least its mmap threshold with new pages (a page fault per 4 KiB on
first touch) and raises the threshold when such a block is freed, so a function with large
temporaries runs slower in a new process than in one that has run a while. Each measurement
here runs in a process of its own: ``new`` as Python starts it, ``settled`` after
``settle_heap`` (the state ``bench_backward.py`` times in). It times the textbook backward and
ours (numpy backend) on ``(256, 1024)`` as ``bench_backward.py`` does (``median_times``: caches
flushed before every call, calls in rounds) and prints the medians and their ratio.

Run ``python bench/bench_heap.py`` (about 40 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

import symbn
from symbn.codegen import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_backward as bb  # the same timing as the speed table's

SHAPE = (256, 1024)
STATES = ("new", "settled")
DTYPES = ("float32", "float64")


def measure(state: str, dtype: str, repeats: int = 20, shape: tuple[int, ...] = SHAPE) -> str:
    """One line, ``state dtype textbook-ms ours-ms``, timed in this process as it stands.

    Call it first thing in a new process: ``state`` "settled" settles the heap first, and "new"
    leaves it as it is.
    """
    if state == "settled":
        bb.settle_heap()
    module = load(symbn.LayerSpec())
    x, dy, gamma = bb.speed_inputs(shape, -1, dtype)
    t = bb.median_times({"book": lambda: bb.textbook_backward(dy, x, gamma),
                         "ours": lambda: module.backward(dy, x, gamma)}, repeats)
    return f"{state} {dtype} {t['book'] * 1e3:.3f} {t['ours'] * 1e3:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("STATE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(*args.child))
        return
    print(f"symbn {symbn.__version__}, numpy {np.__version__}; shape {SHAPE}, each row in a "
          "process of its own\n")
    print("| heap | dtype | textbook ms | ours ms | vs textbook |")
    print("|---|---|---|---|---|")
    for dtype in DTYPES:
        for state in STATES:
            run = subprocess.run([sys.executable, __file__, "--child", state, dtype],
                                 capture_output=True, text=True, check=True)
            _, _, book, ours = run.stdout.split()
            print(f"| {state} | {dtype} | {float(book):.2f} | {float(ours):.2f} | "
                  f"{float(book) / float(ours):.2f}x |")


if __name__ == "__main__":
    main()
