"""The fixed parts of a generated module: the worker thread that sweeps halves at once.

Text copied verbatim into every module :mod:`symbn.codegen` writes, whatever the backend:
``_at_once`` runs the parts of a sweep (two halves of a large array) at once, the caller's in
the caller and the others offered to one worker thread the module keeps for later calls. NumPy's
loops and the numba backend's kernels let go of the interpreter, so the two run in parallel.
The module imports contextvars, os, queue and threading for it.
"""

from __future__ import annotations

AT_ONCE = '''

_WORKER = []  # the queue of the thread that takes parts of _at_once calls, made on first use
_ACTIVE = [None]  # the part that thread is running, if any
_STARTING = threading.Lock()


def _forget_worker():
    """In a child process made by fork: the worker thread was not copied, so start anew."""
    global _STARTING
    _WORKER.clear()
    _ACTIVE[0] = None
    _STARTING = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_worker)


def _at_once(work, parts):
    """``[work(part) for part in parts]``, the parts after the first offered to a worker thread.

    NumPy's loops (and the numba backend's kernels) let go of the interpreter, so the caller's
    part and the worker's run at once. The worker is one thread, kept for later calls: starting
    a thread took 0.2 ms on a 2-core VM (a scratch run), longer than summing 2^18 float32
    elements. It takes the parts offered to it in turn; the caller, its own part done, waits
    for them, but runs one itself where the worker has not taken it within a millisecond
    (busy with another caller's part, or with the part this call was made from): no call
    waits on a busy worker or on itself. A part runs once, by whichever thread claims it. Each
    part runs in a copy of the caller's context, so that np.errstate holds in the worker too;
    an error raised in any part is raised here, after every part has ended (or, after an error
    in the caller's part, been dropped if the worker had not taken it). Each part writes to its
    own blocks only.
    """
    if len(parts) == 1:
        return [work(parts[0])]
    offered = [_Part(work, part) for part in parts[1:]]
    queued = _offer(offered)
    try:
        first = work(parts[0])
    except BaseException:
        for part in offered:
            part.drop()  # the worker will not run it on the arrays of a call that has ended
            part.done.wait()
        raise
    for part in offered:
        if not queued:  # no worker: run it now rather than wait for one
            part.run()
        while not part.done.wait(0.001):
            if _ACTIVE[0] is not part:  # not taken, and the worker is busy or gone: run it
                part.run()
    return [first, *(part.result() for part in offered)]


class _Part:
    """A part of an :func:`_at_once` call, run by the first thread that claims it."""

    def __init__(self, work, part):
        self.work, self.part, self.context = work, part, contextvars.copy_context()
        self.claim, self.done = threading.Lock(), threading.Event()
        self.value = self.error = None

    def run(self):
        """Run the part here, unless another thread has claimed it."""
        if self.claim.acquire(blocking=False):
            try:
                self.value = self.context.run(self.work, self.part)
            except BaseException as error:  # raised in the caller, by result()
                self.error = error
            finally:
                self.work = self.part = self.context = None  # the queue may hold it a while
                self.done.set()

    def drop(self):
        """Claim the part without running it (it will not run), if no thread has."""
        if self.claim.acquire(blocking=False):
            self.work = self.part = self.context = None
            self.done.set()

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def _offer(parts):
    """Queue ``parts`` for the worker thread, started first if there is none; whether queued.

    Where no thread can be started (a limit on threads, or the interpreter shutting down), or
    another thread is starting it, nothing is queued: the caller runs the parts itself.
    """
    if not _WORKER:
        if not _STARTING.acquire(blocking=False):
            return False
        try:
            if not _WORKER:
                queued = queue.SimpleQueue()
                threading.Thread(target=_serve, args=(queued,), name="symbn",
                                 daemon=True).start()
                _WORKER.append(queued)
        except RuntimeError:  # no new thread
            return False
        finally:
            _STARTING.release()
    for part in parts:
        _WORKER[0].put(part)
    return True


def _serve(queued):
    """The worker thread: run the parts queued for it that no caller has claimed yet."""
    while True:
        part = queued.get()
        _ACTIVE[0] = part
        part.run()
        _ACTIVE[0] = None
'''

__all__ = ["AT_ONCE"]
