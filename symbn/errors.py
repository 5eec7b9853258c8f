"""The exceptions symbn raises.

Every error a user can cause is a :class:`SymbnError`; the ones about a bad value also subclass
:class:`ValueError`, so ``except ValueError`` keeps working for callers who expect it.
The command line turns each into a one-line message and exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterable


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
