"""Speed, memory and float32 accuracy of symbn's generated batch-norm backward.

Run ``python bench/bench_backward.py`` (about 100 s) or ``--quick`` (fewer repeats).
Every ratio in a table is measured in this one run, on this machine:

* ``vs textbook``: time of the plain NumPy closed form (mean, var, x̂, then the formula, as
  courses write it) divided by ours (> 1: we are faster);
* ``vs torch``: time of ``torch.ops.aten.native_batch_norm_backward`` on CPU (given the saved
  mean and inverse std, so torch does less work than we do) divided by ours, with torch's
  default threads (one per core) and, in ``vs torch 1t``, on one thread as NumPy runs
  (timed after the rounds of the other functions, its thread count set once around them);
* ``/ bound``: our time divided by 2.5 × the time of ``np.copyto`` on one input-sized array
  (an ideal backward moves 5 arrays' worth of data);
* ``peak mem``: tracemalloc's peak during one call, in input-sized arrays (output included);
* ``vs torch+stats``: torch from x as ours starts, its statistics kernel
  (``torch.batch_norm_update_stats``: the batch's mean and variance) and then its backward,
  default threads, divided by ours;
* ``torch / bound``, ``torch 1t / bound``, ``torch+stats / bound``: torch's times over the
  bound, for orientation;
* ``ne pass / bound``: the numexpr backend's fused elementwise pass alone (its ``_combine``:
  one ``numexpr.evaluate("a*dy + b*(x - shift) + c")`` over the whole array), over the bound.

The accuracy table evaluates the closed form with mpmath (50 digits) on float32 inputs that are
hard for float32: x = 1e4 + N(0, 1), a constant channel, variance below ε; errors are
‖dx − truth‖ / (‖dy‖·|γ|·r), worst channel (dγ and dβ: relative to their natural scale, as in
:func:`symbn.codegen_reference.relative_errors`).

Times are medians of the repeats, spread over rounds that take the functions of a row in
turn, with the caches flushed before every call (see :func:`median_times`), in a C heap
settled first as a long-running process has it (see :func:`settle_heap`). On a shared machine,
run it a few times and read ranges.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import symbn
from symbn.codegen import BACKENDS, generate_module, load
from symbn.codegen_reference import reference, relative_errors

try:
    import torch
except ImportError:  # torch is an optional extra
    torch = None

try:
    import numexpr
except ImportError:  # numexpr is an optional extra
    numexpr = None

try:
    import numba
except ImportError:  # numba is an optional extra
    numba = None

OPTIONAL = {"numexpr": numexpr, "numba": numba}  # each optional backend's library, or None


def installed(backends: Any) -> list[str]:
    """The backends of ``backends`` whose library is installed here."""
    return [b for b in backends if OPTIONAL.get(b, np) is not None]


FOLDER = tempfile.TemporaryDirectory(prefix="symbn-bench-")  # numba modules' files, this run


def module(spec: symbn.LayerSpec, backend: str) -> Any:
    """The generated module, as a user gets it: numba's from a file, the others from ``load``.

    A numba module read from a file (as ``symbn codegen --backend numba -o`` writes it) keeps
    its compiled code on disk and has the quick functions for small arrays, which a module
    made in memory by ``load`` leaves out (compiling them pays only where it is kept); the
    NumPy backends' modules are the same either way.
    """
    if backend != "numba":
        return load(spec, backend)
    name = f"bench_{backend}_{abs(hash(spec)):x}"
    path = Path(FOLDER.name) / f"{name}.py"
    path.write_text(generate_module(spec, backend))
    found = importlib.util.spec_from_file_location(name, path)
    assert found is not None and found.loader is not None
    loaded = importlib.util.module_from_spec(found)
    sys.modules[name] = loaded  # numba's cache finds the module by its name
    found.loader.exec_module(loaded)
    return loaded


def versions() -> str:
    """The optional backends' libraries and their versions, for a script's first line."""
    return ", ".join(f"{name} {lib.__version__ if lib else 'not installed'}"
                     for name, lib in OPTIONAL.items())

FLUSH = np.zeros(8 << 20)  # 64 MB, read before every timed call
HEAP = (32 << 20) - (64 << 10)  # bytes: just below glibc's largest dynamic mmap threshold
ROUNDS = 4  # the timed calls of each function are spread over this many rounds
SHAPES = (((256, 1024), -1), ((4096, 1024), -1), ((32, 64, 56, 56), 1))
# beyond the shapes: short rows (7x7, 2x2 images) and few features in a tall batch
OTHER_SHAPES = (((256, 512, 7, 7), 1), ((512, 256, 2, 2), 1), ((1 << 20, 2), -1))
# small arrays, where a call's fixed costs (checks, shift, per-channel safeguards) dominate
SMALL_SHAPES = (((2, 1024), -1), ((32, 128), -1), ((8, 16, 8, 8), 1), ((64, 512), -1))
EPS = 1e-5


def textbook_backward(dy, x, gamma, eps=EPS, axis=-1):
    """The closed form the way courses write it: mean, var, x̂, then the formula."""
    axes = tuple(k for k in range(x.ndim) if k != axis % x.ndim)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    gamma = gamma.reshape(shape)
    m = x.size // x.shape[axis]
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    dxhat = dy * gamma
    dx = inv / m * (m * dxhat - dxhat.sum(axis=axes, keepdims=True)
                    - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


def median_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each function over ``repeats`` calls (rounded up to a multiple of
    ROUNDS), spread over ROUNDS rounds.

    Each round takes the functions in turn, each for a run of repeats / ROUNDS timed calls after
    one untimed call, so that a burst of load from another tenant of a shared machine falls on
    every function of a row rather than on one (with each function timed in one run, the
    ratios of a small shape swung by 2x between runs). Runs are not interleaved call by call:
    torch's OpenMP threads and OpenBLAS's keep spinning for a while after a call and could slow
    down whatever ran next, and the untimed call takes that. Before every timed call the caches
    are flushed (a read of 64 MB, twice the L3 of the machine measured), so that each call, the
    copy of the bound included, reads its inputs from memory as a training step would. The
    warm-up before the first round (at least 3 calls and 0.3 s) matters for torch, whose first
    dozen calls on new tensors can take 4x longer.
    """
    for fn in fns.values():
        warm, start = 0, time.perf_counter()
        while warm < 3 or time.perf_counter() - start < 0.3:
            fn()
            warm += 1
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            fn()
            for _ in range(-(-repeats // ROUNDS)):
                FLUSH.sum()
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in samples.items()}


def settle_heap() -> None:
    """Put the C heap in the state a long-running process reaches, before anything is timed.

    glibc serves an allocation of at least its mmap threshold (128 KiB in a new process) with
    new pages from the system, a page fault per 4 KiB on first touch, and raises the threshold
    to the size of any such block freed, up to 32 MiB. So temporaries cost page faults early in
    a process and not later, and the ratios of a row depended on the rows run before it: the
    textbook's float64 (256, 1024) backward took 5.9 to 6.4 ms in a new process and 2.0 to
    2.8 ms settled (``bench_heap.py``, three runs). Freeing one block just below 32 MiB first
    gives every row the state of a process that has run a while, as a training loop has: blocks
    below 32 MiB come from the heap, larger ones from the system, for every function timed. That
    favours the textbook, whose temporaries pay the page faults. Other allocators are left as
    they are.
    """
    np.empty(HEAP, np.uint8)  # allocated and freed at once


def peak_arrays(fn: Callable[[], object], nbytes: int) -> float:
    """tracemalloc's peak during a call of ``fn``, results included, in units of ``nbytes``.

    One untraced call comes first: the numba backend compiles its kernels on their first call
    (or reads them from its cache), and that memory is not the call's. Arrays that compiled
    code allocates are traced too (numba 0.68: an 8 MiB np.empty in a compiled function
    peaked at 8 MiB).
    """
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / nbytes


def torch_backward(dy, x, gamma, eps=EPS):
    """A closure running torch's CPU batch-norm backward (the saved statistics precomputed)."""
    xt, dyt, wt = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(gamma)
    _, mean, invstd = torch.ops.aten.native_batch_norm(xt, wt, None, None, None, True, 0.1, eps)

    def run():
        return torch.ops.aten.native_batch_norm_backward(
            dyt, xt, wt, None, None, mean, invstd, True, eps, [True, True, True])
    return run


def torch_from_x(dy, x, gamma, eps=EPS):
    """A closure running torch's statistics kernel, then its backward: the work ours does.

    ``torch.batch_norm_update_stats`` (no running statistics) gives the batch's mean and
    biased variance per channel, as torch's training forward computes them; the inverse std
    follows, then ``native_batch_norm_backward`` as in :func:`torch_backward`.
    """
    xt, dyt, wt = torch.from_numpy(x), torch.from_numpy(dy), torch.from_numpy(gamma)

    def run():
        mean, var = torch.batch_norm_update_stats(xt, None, None, 0.1)
        return torch.ops.aten.native_batch_norm_backward(
            dyt, xt, wt, None, None, mean, (var + eps).rsqrt(), True, eps, [True, True, True])
    return run


def numexpr_pass(module, dy, x, axis, out):
    """A closure making the numexpr backend's fused pass out = a*dy + b*(x - shift) + c alone."""
    axis %= x.ndim
    order = module._memory_order(x)
    x3, dy3, out3 = (module._channels(v, axis, order) for v in (x, dy, out))
    shape = (1, x.shape[axis], 1)
    a, shift, c = (np.full(shape, v, x.dtype) for v in (1.1, 0.2, -0.1))
    b = np.full(shape, 0.3)  # float64, as the backend gets it

    def run():
        return module._combine(out3, None, dy3, a, b, c, x3, shift)
    return run


def torch_one_thread_time(fn: Callable[[], object], repeats: int) -> float:
    """Median time of ``fn`` with torch on one thread (set once, around all the calls)."""
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return median_times({"torch1": fn}, repeats)["torch1"]
    finally:
        torch.set_num_threads(default)


def speed_inputs(shape: tuple[int, ...], axis: int,
                 dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, dy and gamma as the speed tables time them: N(0, 1) data, gamma near 1 (seed 0)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(shape[axis])).astype(dtype)
    return x, dy, gamma


def speed_table(backends: list[str], repeats: int,
                shapes: tuple[tuple[tuple[int, ...], int], ...] = SHAPES) -> list[str]:
    """The speed table's rows (Markdown), one per dtype and shape in ``shapes``."""
    spec = symbn.LayerSpec()
    modules = {b: module(spec, b) for b in backends}
    head = ["dtype", "shape (axis)", "bound ms", "torch / bound", "torch 1t / bound",
            "torch+stats / bound", "ne pass / bound"]
    for b in backends:
        head += [f"{b} ms", "vs textbook", "vs torch", "vs torch 1t", "vs torch+stats",
                 "/ bound", "peak mem"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for dtype in (np.float32, np.float64):
        for shape, axis in shapes:
            x, dy, gamma = speed_inputs(shape, axis, dtype)
            out = np.empty_like(x)
            fns: dict[str, Callable[[], object]] = {
                "copy": lambda out=out, x=x: np.copyto(out, x),
                "book": lambda x=x, dy=dy, g=gamma, a=axis: textbook_backward(dy, x, g, axis=a),
            }
            if torch is not None:
                fns["torch"] = torch_backward(dy, x, gamma)
                fns["torch+stats"] = torch_from_x(dy, x, gamma)
            if "numexpr" in modules:
                fns["ne pass"] = numexpr_pass(modules["numexpr"], dy, x, axis, out)
            for b in backends:
                fns[b] = lambda f=modules[b].backward, x=x, dy=dy, g=gamma, a=axis: f(
                    dy, x, g, axis=a)
            t = median_times(fns, repeats)
            if torch is not None:
                t["torch1"] = torch_one_thread_time(fns["torch"], repeats)
            bound = 2.5 * t["copy"]
            row = [np.dtype(dtype).name, f"{shape} ({axis})", f"{bound * 1e3:.2f}"]
            row += [f"{t[k] / bound:.2f}" if k in t else "n/a"
                    for k in ("torch", "torch1", "torch+stats", "ne pass")]
            for b in backends:
                ours = t[b]
                mem = peak_arrays(fns[b], x.nbytes)
                vs_torch = [f"{t[k] / ours:.2f}x" if torch is not None else "n/a"
                            for k in ("torch", "torch1", "torch+stats")]
                row += [f"{ours * 1e3:.2f}", f"{t['book'] / ours:.2f}x", *vs_torch,
                        f"{ours / bound:.2f}", f"{mem:.2f}"]
            rows.append("| " + " | ".join(row) + " |")
    return rows


def hard_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    m, c = 128, 4
    return {
        "x = 1e4 + N(0,1)": (1e4 + rng.standard_normal((m, c))).astype(np.float32),
        "constant channel": np.tile(np.float32([3.7, -11.0, 1e7, 0.1]), (m, 1)),
        "variance below eps": (-11 + 1e-3 * rng.standard_normal((m, c))).astype(np.float32),
    }


def accuracy_table(backends: list[str]) -> list[str]:
    head = (["variant", "input"] + [f"{b} dx err" for b in backends]
            + ["numpy dgamma, dbeta err", "textbook", "torch"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for spec in (symbn.LayerSpec(), symbn.LayerSpec(eps_placement="std")):
        d = symbn.derive(spec)
        modules = {b: module(spec, b) for b in backends}
        rng = np.random.default_rng(1)
        for name, x in hard_inputs(rng).items():
            dy = rng.standard_normal(x.shape).astype(np.float32)
            gamma = (1 + 0.1 * rng.standard_normal(x.shape[1])).astype(np.float32)
            ref = reference(spec, dy, x, gamma, eps=EPS, derivation=d)
            row = [spec.eps_placement, name]
            for b in backends:
                got = modules[b].backward(dy, x, gamma)
                row.append(f"{relative_errors(spec, got, ref)['x']:.1e}")
            errors = relative_errors(spec, modules["numpy"].backward(dy, x, gamma), ref)
            row.append(f"{errors['gamma']:.1e}, {errors['beta']:.1e}")
            if spec.eps_placement == "sqrt":
                with np.errstate(all="ignore"):
                    book = textbook_backward(dy, x, gamma)
                row.append(f"{relative_errors(spec, book[0], ref)['x']:.1e}")
                if torch is not None:
                    got = torch_backward(dy, x, gamma)()[0].numpy()
                    row.append(f"{relative_errors(spec, got, ref)['x']:.1e}")
                else:
                    row.append("n/a")
            else:
                row += ["(sqrt only)", "(sqrt only)"]
            rows.append("| " + " | ".join(row) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="8 timed calls of each function instead of 20")
    parser.add_argument("--backend", default="all", choices=("all", *BACKENDS))
    args = parser.parse_args()
    settle_heap()
    backends = installed(BACKENDS if args.backend == "all" else [args.backend])
    print(f"symbn {symbn.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not installed'}, {versions()}")
    print("\n## Speed: training backward, default variant (eps in the root, biased, affine)\n")
    print("\n".join(speed_table(backends, 5 if args.quick else 20)))
    print("\n## Speed on other layouts (no targets; same columns)\n")
    print("\n".join(speed_table(backends, 5 if args.quick else 20, OTHER_SHAPES)))
    print("\n## Speed on small arrays (no targets; same columns)\n")
    print("\n".join(speed_table(backends, 5 if args.quick else 20, SMALL_SHAPES)))
    print("\n## float32 accuracy on hard inputs (vs mpmath truth of the closed form)\n")
    print("\n".join(accuracy_table(backends)))


if __name__ == "__main__":
    main()
