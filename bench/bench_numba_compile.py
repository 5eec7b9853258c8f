"""What the numba backend's first call costs: compiling its kernels, or reading them from disk.

Run ``python bench/bench_numba_compile.py`` (about 15 s; needs numba). It writes the default
variant's numba module to a new folder, as ``symbn codegen batchnorm --backend numba -o`` does,
and times, in three new processes one after another, the first forward and backward calls on
float32 and float64 data in both kernel layouts ((N, D) and NCHW): the first process compiles
the kernels and numba keeps them in the folder's ``__pycache__``, the next two read them. It
also times the same calls through ``symbn.codegen.load``, which compiles in memory every time.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import symbn
from symbn.codegen import generate_module

FIRST_CALLS = textwrap.dedent("""
    import time
    import numpy as np
    start = time.perf_counter()
    {load}
    for dtype in (np.float32, np.float64):
        for shape, axis in (((64, 32), -1), ((4, 3, 8, 8), 1)):
            x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
            g = np.ones(shape[axis], dtype)
            bn.backward(x, x, g, axis=axis)
            bn.forward(x, g, 0 * g, axis=axis)
    print(f"{{time.perf_counter() - start:.2f}}")
""")


def first_calls(folder: Path, load: str) -> float:
    """Seconds from importing the module to the end of its first calls, in a new process."""
    code = FIRST_CALLS.format(load=load)
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    import numba

    print(f"symbn {symbn.__version__}, numba {numba.__version__}\n")
    rows = ["| module | process 1 s | process 2 s | process 3 s |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bn_nb.py").write_text(generate_module(symbn.LayerSpec(), "numba"))
        for name, load in (("from a file (bn_nb.py)", "import bn_nb as bn"),
                           ("symbn.codegen.load, in memory",
                            "import symbn; from symbn.codegen import load; "
                            "bn = load(symbn.LayerSpec(), 'numba')")):
            times = [first_calls(folder, load) for _ in range(3)]
            rows.append(f"| {name} | " + " | ".join(f"{t:.2f}" for t in times) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
