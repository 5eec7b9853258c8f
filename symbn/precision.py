"""mpmath's working precision, set for a block and safe between threads.

mpmath keeps one precision for the whole process (``mpmath.mp``). ``mpmath.workdps`` sets it
for a block and puts back what it found, which is not enough with threads: two checks running
at once, each saving the other's precision, left ``mp.dps`` at 30 after both had finished
(started at 15), and one computed its reference at the other's 15 digits (a review). symbn's
blocks take one lock, so that they run one after another; a thread of the user's that sets
mpmath's precision itself, outside symbn, still changes symbn's (the README says so).

>>> import mpmath
>>> with working_digits(40):
...     mpmath.mp.dps
40
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import mpmath

__all__ = ["working_bits", "working_digits"]

_LOCK = threading.RLock()  # re-entrant: a block may call code that opens one of its own


@contextmanager
def working_digits(dps: int) -> Iterator[None]:
    """``mpmath.workdps(dps)`` for the block, one thread at a time."""
    with _LOCK, mpmath.workdps(dps):
        yield


@contextmanager
def working_bits(prec: int) -> Iterator[None]:
    """``mpmath.workprec(prec)`` for the block, one thread at a time."""
    with _LOCK, mpmath.workprec(prec):
        yield
