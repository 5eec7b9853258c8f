"""symbn.precision: mpmath's working precision for a block, one thread at a time."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import mpmath

from symbn.precision import working_bits, working_digits

PACKAGE = Path(__file__).resolve().parents[1] / "symbn"


def test_a_second_thread_waits_for_the_first_block() -> None:
    """While one thread computes at 30 digits, another asking for 60 waits (it set mp.dps
    under the first one before, which then computed at 60 or put back the wrong value)."""
    mpmath.mp.dps = 15
    inside, release, entered = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with working_digits(30):
            inside.set()
            release.wait(5)
            seen.append(mpmath.mp.dps)

    def second() -> None:
        with working_digits(60):
            entered.set()
            seen.append(mpmath.mp.dps)

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(5)
    b = threading.Thread(target=second)
    b.start()
    assert not entered.wait(0.2)  # blocked while the first block runs
    release.set()
    a.join(5)
    b.join(5)
    assert seen == [30, 60] and mpmath.mp.dps == 15


def test_blocks_nest_in_one_thread() -> None:
    """The lock is re-entrant: the reference converts data at 64 bits inside a check's block."""
    mpmath.mp.dps = 15
    with working_digits(40):
        with working_bits(200):
            assert mpmath.mp.prec == 200
        assert mpmath.mp.dps == 40
    assert mpmath.mp.dps == 15


def test_symbn_sets_mpmath_precision_only_through_these_blocks() -> None:
    """No module of symbn calls mpmath.workdps or workprec itself: one in `symbn verify` did,
    outside the lock, after the others had moved to it (a review)."""
    direct = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "precision.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("workdps", "workprec", "extradps", "extraprec")):
                direct.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr in ("dps", "prec")
                    for t in node.targets):
                direct.append(f"{path.relative_to(PACKAGE)}:{node.lineno} (assigns)")
    assert direct == []
