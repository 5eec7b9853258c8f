"""The exceptions symbn raises.

Every error a user can cause is a :class:`SymbnError`; the ones about a bad value also subclass
:class:`ValueError`, so ``except ValueError`` keeps working for callers who expect it.
The command line turns each into a one-line message and exit status 2. :func:`check_whole`
and :func:`check_positive` are the two checks of a number that every option goes through.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np


class SymbnError(Exception):
    """Base class of every error symbn raises on purpose."""


class OptionError(SymbnError, ValueError):
    """An option, layer name or batch size that symbn does not accept."""

    @classmethod
    def bad_value(cls, name: str, value: object, allowed: Iterable[object] | str) -> OptionError:
        """Build the standard message: the option, the value given and what is allowed.

        >>> print(OptionError.bad_value("variance", "sample", ["biased", "unbiased"]))
        variance='sample' is not allowed; choose one of: 'biased', 'unbiased'
        """
        if isinstance(allowed, str):
            return cls(f"{name}={value!r} is not allowed; {allowed}")
        choices = ", ".join(repr(a) for a in allowed)
        return cls(f"{name}={value!r} is not allowed; choose one of: {choices}")


class ProofError(SymbnError, ArithmeticError):
    """A closed form that symbn could not prove equal to the raw derivative."""


def check_whole(name: str, value: object, least: int, what: str = "a whole number") -> int:
    """``value`` as an ``int`` if it is a whole number ≥ ``least``, else an :class:`OptionError`.

    NumPy integers are whole numbers; ``True`` and ``False`` are not.

    >>> check_whole("levels", 3, 1)
    3
    >>> check_whole("levels", 0, 1)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: levels=0 is not allowed; use a whole number >= 1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise OptionError.bad_value(name, value, f"use {what} >= {least}")
    return int(value)


def check_positive(name: str, value: object, example: str = "") -> float:
    """``value`` as a ``float`` if it is a finite real number > 0, else an :class:`OptionError`.

    >>> check_positive("step", 0.5)
    0.5
    >>> check_positive("step", float("nan"))
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: step=nan is not allowed; use a finite real number > 0
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:  # a 0-d array, as NumPy gives
        value = value[()]
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not 0 < float(value) < math.inf):
        raise OptionError.bad_value(name, value, "use a finite real number > 0" + example)
    return float(value)


def printable(text: str) -> str:
    r"""``text`` with what is not UTF-8 (a path's undecodable bytes, ``'\udcfe'``) escaped.

    Such a name made ``print`` raise where standard output is strict UTF-8 (it is, in a UTF-8
    locale), after the file was written.

    >>> printable("out\udcfe")
    'out\\udcfe'
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
