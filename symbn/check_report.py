"""What a check of a backward function reports: per output, per input, and overall."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symbn.cases import Case
from symbn.spec import LayerSpec

__all__ = ["UNINFORMATIVE", "CaseResult", "CheckReport", "OutputCheck"]

UNINFORMATIVE = 0.05        # a tolerance this loose cannot tell right from wrong


@dataclass(frozen=True)
class OutputCheck:
    """The worst element of one output on one case.

    ``error`` is ``|analytic − reference| / (|reference| + scale)`` at its worst element, where
    scale is the output's natural size for that channel (dx: |γ|·r·max|dy|; dγ: Σ|dy·x̂| +
    |μ|·r·Σ|dy|, which includes what rounding x − μ costs; dβ: Σ|dy|), so that outputs
    that cancel to ~0 (m = 2, dy constant) are judged fairly.
    """

    output: str
    case: str
    error: float
    tolerance: float
    index: tuple[int, ...] = ()
    analytic: float = math.nan
    reference: float = math.nan
    note: str = ""
    valid: bool = True      # False: the output was missing, of the wrong shape or not numbers
    unjudged: int = 0       # elements in channels whose tolerance is too loose: finiteness only

    @property
    def informative(self) -> bool:
        """False when the tolerance is too loose to tell right from wrong.

        That of the element reported; :attr:`unjudged` counts all such elements.
        """
        return self.tolerance < UNINFORMATIVE

    @property
    def judged(self) -> bool:
        """Whether every element was held to its tolerance, not only checked to be finite."""
        return self.valid and self.informative and not self.unjudged

    @property
    def passed(self) -> bool:
        """Within tolerance (an uninformative check only needs finite values)."""
        if not self.valid:
            return False
        if not self.informative:
            return math.isfinite(self.analytic) or not math.isfinite(self.reference)
        return self.error <= self.tolerance

    def line(self) -> str:
        """``dx: error 3.1e-16 (tolerance 4.2e-14) at [2, 0]: analytic … reference …``."""
        if not self.valid:
            return f"{self.output}: FAIL, {self.note}"
        where = f" at {list(self.index)}" if self.index else ""
        status = "ok" if self.passed else "FAIL"
        if not self.informative:
            status += ", uninformative"
        text = (f"{self.output}: {status}, relative error {self.error:.3g} "
                f"(tolerance {self.tolerance:.3g}){where}: analytic {self.analytic!r} "
                f"reference {self.reference!r}")
        return text + (f" [{self.note}]" if self.note else "")


@dataclass(frozen=True)
class CaseResult:
    """Every output of one case, or the reason none could be compared."""

    case: Case
    outputs: tuple[OutputCheck, ...]
    error: str = ""
    tolerance_note: str = ""

    @property
    def passed(self) -> bool:
        """No error and every output within tolerance.

        An output whose check is not :attr:`informative` passes where it is finite: see
        :attr:`CaseResult.informative`.
        """
        return not self.error and all(o.passed for o in self.outputs)

    @property
    def informative(self) -> bool:
        """Whether every output was judged against its tolerance, not only for finiteness.

        False where an output's tolerance is too loose to tell a right value from a wrong one
        (float32 with x = 1e4 + N(0, 1): a right float32 backward may lose most of dx's digits
        there), so that :attr:`passed` says only that the output is finite. A property test
        can count on ``passed and informative``, or ``hypothesis.assume(informative)`` after
        asserting ``passed`` (a NaN still fails).
        """
        return not self.error and all(o.judged for o in self.outputs)

    def explain(self) -> str:
        """The input and, per output, the worst error with both values."""
        lines = [self.case.describe()]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  {o.line()}" for o in self.outputs]
        loose = [f"{o.output} ({o.unjudged} element(s))" for o in self.outputs
                 if o.valid and not o.judged]
        if loose:
            lines.append(f"  uninformative: {', '.join(loose)} checked for finite values "
                         f"only (a tolerance of {UNINFORMATIVE:g} or more cannot tell right from "
                         f"wrong in their channels)")
        if self.tolerance_note:
            lines.append(f"  tolerance: {self.tolerance_note}")
        return "\n".join(lines)


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check_backward`."""

    spec: LayerSpec
    dtype: str
    cases: tuple[CaseResult, ...]
    warnings: tuple[str, ...] = ()
    tolerance_rule: str = field(default="", repr=False)

    @property
    def passed(self) -> bool:
        """True when every case passed."""
        return all(c.passed for c in self.cases)

    def worst(self) -> dict[str, OutputCheck]:
        """Per output, the check closest to (or furthest past) its tolerance."""
        out: dict[str, OutputCheck] = {}
        for c in self.cases:
            for o in c.outputs:
                best = out.get(o.output)
                if best is None or _severity(o) > _severity(best):
                    out[o.output] = o
        return out

    def format(self) -> str:
        """A table for people: per output the worst case, then failures and warnings."""
        verdict = "PASS" if self.passed else "FAIL"
        passed = sum(c.passed for c in self.cases)
        lines = [f"check of a backward for {self.spec.describe()}, {self.dtype}: {verdict} "
                 f"({passed} of {len(self.cases)} inputs passed)",
                 f"{'output':<8}{'worst rel. error':>18}{'tolerance':>12}  input"]
        for name, o in self.worst().items():
            error = f"{o.error:>18.3g}" if o.valid else f"{'(not compared)':>18}"  # not inf
            lines.append(f"{name:<8}{error}{o.tolerance:>12.3g}  {o.case}")
            lines.append(f"{'':8}{o.note}" if not o.valid else
                         f"{'':8}analytic {o.analytic!r} reference {o.reference!r}"
                         + (f" at {list(o.index)}" if o.index else ""))
        failed = [c for c in self.cases if not c.passed]
        if failed:
            lines.append("failures:")
            lines += ["  " + c.explain().replace("\n", "\n  ") for c in failed]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.tolerance_rule:
            lines.append(f"tolerance rule: {self.tolerance_rule}")
        return "\n".join(lines)

    __str__ = format


def _severity(o: OutputCheck) -> float:
    """Error over tolerance; failures of uninformative checks rank first, passes last."""
    if not o.informative:
        return -1.0 if o.passed else math.inf
    return o.error / o.tolerance if o.valid else math.inf
