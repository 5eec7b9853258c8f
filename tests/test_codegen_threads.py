"""The generated modules' worker thread (``_at_once``), the same text in every backend.

A large array is swept in two halves at once, the second by one worker thread the module keeps
for later calls. Here ``_at_once`` is called directly, in the numpy and numba modules: the
parts' results in order, errors raised in the caller after every part has ended, the caller's
np.errstate in the worker, a child made by fork, the interpreter shutting down. Sweeps in
halves are tested with each backend's passes (test_codegen_blocks, test_codegen_numba).
"""

import concurrent.futures
import importlib.util
import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from test_codegen import compiled

import symbn
from symbn import codegen

BACKENDS = [pytest.param("numpy"),
            pytest.param("numba", marks=pytest.mark.skipif(
                importlib.util.find_spec("numba") is None, reason="numba is not installed"))]


@pytest.fixture(scope="module", params=BACKENDS)
def ns(request):
    return compiled(codegen.generate_module(symbn.LayerSpec(), request.param))


def test_the_parts_come_back_in_order_the_later_ones_from_the_worker(ns):
    """One part runs in the caller; the others in the worker thread, in order."""
    where = {}

    def work(part):
        where[part] = threading.current_thread()
        return part * 2

    assert ns["_at_once"](work, [5]) == [10]
    assert ns["_at_once"](work, [1, 2, 3]) == [2, 4, 6]
    assert where[1] is threading.current_thread()
    assert where[2] is where[3] is not threading.current_thread()
    worker = where[2]
    ns["_at_once"](work, [7, 8])
    assert where[8] is worker  # kept for later calls, not started anew


def test_threads_keep_the_callers_errstate_and_raise_their_errors_in_it(ns):
    """_at_once runs each part in a copy of the caller's context, so an overflow the caller
    ignores is ignored in the worker too (in the worker's own context NumPy warns); an error
    raised in the worker is raised in the caller."""
    def overflow(part):
        return np.float32(3e38) * np.float32(part)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore"):
            assert np.isinf(ns["_at_once"](overflow, [1, 10, 100])[1:]).all()

    def fail(part):
        if part == 2:
            raise KeyError("the second part")
        return part

    with pytest.raises(KeyError, match="the second part"):
        ns["_at_once"](fail, [1, 2])


def test_an_error_reaches_the_caller_after_both_halves(ns):
    """_at_once raises either half's error in the caller, once both halves have ended."""
    done = []

    def work(part):
        if part == 1:
            raise ArithmeticError("second half")
        done.append(part)
        return part

    with pytest.raises(ArithmeticError, match="second half"):
        ns["_at_once"](work, [0, 1])
    assert done == [0]

    def slow_second(part):
        if part == 0:
            raise ArithmeticError("first half")
        time.sleep(0.2)
        done.append(part)

    with pytest.raises(ArithmeticError, match="first half"):
        ns["_at_once"](slow_second, [0, 1])
    assert done == [0, 1]  # the second half had ended when the error was raised


def test_a_forked_child_has_a_worker_of_its_own(ns):
    """After the parent started its worker, a child made by fork (which has no such thread)
    gets its parts done instead of waiting for ever on the missing worker."""
    assert ns["_at_once"](lambda part: part + 1, [1, 2]) == [2, 3]  # the worker runs
    pid = os.fork()
    if pid == 0:  # the child: no pytest here, only an exit status
        try:
            os._exit(0 if ns["_at_once"](lambda part: part + 1, [1, 2]) == [2, 3] else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child did not finish in 60 s")


class _Refusing:
    """A worker that takes ``accept`` parts, then refuses work as an executor does at shutdown."""

    def __init__(self, accept):
        self.accept, self.pool = accept, concurrent.futures.ThreadPoolExecutor(1)

    def submit(self, *args):
        if not self.accept:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        self.accept -= 1
        return self.pool.submit(*args)


@pytest.mark.parametrize("accept", [0, 1])
def test_parts_run_in_turn_once_the_worker_is_shut_down(ns, monkeypatch, accept):
    """While the interpreter shuts down the worker takes no more work: the parts it refused
    run in the caller, in order, those it took (before it refused) in the worker."""
    worker = _Refusing(accept)
    monkeypatch.setitem(ns, "_WORKER", [worker])
    where = {}

    def work(part):
        where[part] = threading.current_thread()
        return -part

    assert ns["_at_once"](work, [1, 2, 3]) == [-1, -2, -3]
    here = [part for part, thread in where.items() if thread is threading.current_thread()]
    assert sorted(here) == [1, *range(2 + accept, 4)]
    worker.pool.shutdown()
