"""The benchmark script runs against the generated modules as they are now (a smoke run on tiny
shapes), and its numexpr pass computes what it says."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import symbn
from symbn.codegen import load

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_backward.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_backward", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_table_runs_on_small_shapes(bench):
    """Two small shapes, one repeat: a row per dtype and shape, every cell filled."""
    backends = bench.installed(["numpy", "numexpr", "numba"])
    rows = bench.speed_table(backends, 1, shapes=(((64, 8), -1), ((4, 3, 5, 5), 1)))
    head, body = rows[0].strip("| ").split(" | "), rows[2:]
    assert len(body) == 4
    for row in body:
        cells = row.strip("| ").split(" | ")
        assert len(cells) == len(head)
        numbers = [c.rstrip("x") for c in cells[2:] if c != "n/a"]
        assert all(float(c) > 0 for c in numbers), row


@pytest.mark.parametrize("shape, axis", [((6, 4), -1), ((3, 4, 5, 2), 1)])
def test_numexpr_pass_computes_a_dy_plus_b_xs_plus_c(bench, shape, axis):
    """The timed numexpr pass writes 1.1*dy + 0.3*(x - 0.2) - 0.1 into its output."""
    pytest.importorskip("numexpr")
    module = load(symbn.LayerSpec(), "numexpr")
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    out = np.empty_like(x)
    bench.numexpr_pass(module, dy, x, axis, out)()
    np.testing.assert_allclose(out, 1.1 * dy + 0.3 * (x - 0.2) - 0.1, rtol=1e-14)


@pytest.mark.parametrize("shape", [(6, 4), (2, 3)])
def test_torch_from_x_gives_torch_s_backward(bench, shape):
    """torch's statistics kernel then its backward: the gradients torch gives with the saved
    statistics of its own training forward, and those of our backward."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma = 1 + 0.1 * rng.standard_normal(shape[1])
    got = [t.numpy() for t in bench.torch_from_x(dy, x, gamma)()]
    saved = [t.numpy() for t in bench.torch_backward(dy, x, gamma)()]
    ours = load(symbn.LayerSpec(), "numpy").backward(dy, x, gamma, eps=bench.EPS)
    for a, b, c in zip(got, saved, ours, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


def test_block_costs_script_runs(capsys):
    """bench/bench_blocks.py prints its sums table (a row per block), its per-channel table (a
    row per array) and the sums' share of a backward."""
    path = BENCH.with_name("bench_blocks.py")
    spec = importlib.util.spec_from_file_location("bench_blocks", path)
    blocks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blocks)
    blocks.main()
    out = capsys.readouterr().out
    assert out.count("ns/element") == 2
    assert out.count("\n| (") == len(blocks.BLOCKS) + len(blocks.ARRAYS)
    assert out.count("of which the sums sweep") == 2


def test_memory_script_runs_on_small_shapes(capsys, monkeypatch):
    """bench/bench_memory.py prints a row per backend (inputs and MiB) for the m = 2 shapes and
    a row per other shape, every figure a positive number (training and evaluation mode)."""
    path = BENCH.with_name("bench_memory.py")
    spec = importlib.util.spec_from_file_location("bench_memory", path)
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    monkeypatch.setattr(memory, "WIDE", (16, 64))
    monkeypatch.setattr(memory, "OTHER", (((4, 8), "train"), ((1, 16), "eval")))
    memory.main()
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ")]
    backends = len(memory.installed(["numpy", "numexpr", "numba"]))
    assert len(rows) == 1 + 2 * backends + 1 + 2  # a head row each, then the figures
    inputs = [r for r in rows if "inputs |" in r] + rows[-2:]  # MiB rows round tiny shapes to 0
    figures = [c.split(" (")[0] for r in inputs for c in r.strip("| ").split(" | ")[1:]
               if c[0].isdigit()]
    assert len(figures) == 2 * backends + 2 and all(float(f) > 0 for f in figures)


def test_heap_script_measures_a_row():
    """bench/bench_heap.py times the textbook and ours in the state it is asked for; a row is
    ``state dtype textbook-ms ours-ms``."""
    path = BENCH.with_name("bench_heap.py")
    spec = importlib.util.spec_from_file_location("bench_heap", path)
    heap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heap)
    state, dtype, book, ours = heap.measure("settled", "float32", repeats=1, shape=(8, 16)).split()
    assert (state, dtype) == ("settled", "float32")
    assert float(book) > 0 and float(ours) > 0


@pytest.mark.slow
def test_numba_compile_script_prints_a_row_per_way_of_loading(capsys):
    """bench/bench_numba_compile.py: three positive times for the module read from a file and
    three for load(); the file's later processes read the kernels from numba's cache, so they
    are faster than its first."""
    pytest.importorskip("numba")
    path = BENCH.with_name("bench_numba_compile.py")
    spec = importlib.util.spec_from_file_location("bench_numba_compile", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main()
    rows = [r for r in capsys.readouterr().out.splitlines()
            if r.startswith("| ") and not r.startswith("| module")]
    times = [[float(c) for c in r.strip("| ").split(" | ")[1:]] for r in rows]
    assert len(times) == 2 and all(len(t) == 3 and min(t) > 0 for t in times)
    assert max(times[0][1:]) < times[0][0]
