"""Proofs hold for every variant and fail for wrong closed forms."""

from __future__ import annotations

import pytest
import sympy as sp

import symbn
from symbn import symbols as S
from symbn.batch import ConcreteBatch
from symbn.closed import statistics_facts
from symbn.derive import backward
from symbn.proof import prove_concrete, prove_symbolic
from symbn.spec import LayerSpec, all_variants


@pytest.mark.parametrize("spec", all_variants(), ids=lambda s: s.describe())
def test_every_variant_is_proved_symbolic_and_concrete(spec: LayerSpec) -> None:
    """closed − raw reduces to 0 for symbolic m, and at m = 3 element by element."""
    assert symbn.prove(symbn.derive(spec)).holds
    report = symbn.prove(symbn.derive(spec, 3))
    assert report.holds
    assert any("m=3" in p.claim for p in report.proofs)


def test_default_variant_concrete_m_one_to_eight() -> None:
    """The default variant's proofs hold for m = 1..8."""
    for m in range(1, 9):
        assert symbn.prove(symbn.derive(LayerSpec(), m)).holds, m


def _wrong_forms() -> dict[str, sp.Expr]:
    g, xhat = S.element_function("g"), S.element_function("xhat")
    sg = sp.Sum(g(S.j), (S.j, 1, S.m))
    sgx = sp.Sum(g(S.j) * xhat(S.j), (S.j, 1, S.m))
    gi, xi = g(S.i), xhat(S.i)
    return {
        "missing x̂Σ(g x̂) term": S.gamma * S.r / S.m * (S.m * gi - sg),
        "dy instead of γ·dy": S.r / S.m * (S.m * gi - sg - xi * sgx),
        "unbiased factor": S.gamma * S.r / S.m * (S.m * gi - sg - S.m / (S.m - 1) * xi * sgx),
        "sign error": S.gamma * S.r / S.m * (S.m * gi + sg - xi * sgx),
    }


@pytest.mark.parametrize("name", list(_wrong_forms()))
def test_wrong_closed_forms_are_not_proved(name: str) -> None:
    """A closed form with a classic mistake fails both the symbolic and the concrete proof."""
    d = symbn.derive()
    wrong = _wrong_forms()[name]
    raw = d.raw["x"]
    assert isinstance(raw, sp.Expr)
    facts = statistics_facts(d.graph, None)
    assert not prove_symbolic("x", wrong, raw, d.graph, d.form, facts).holds
    concrete = backward(d.graph, ConcreteBatch(4))
    assert not prove_concrete("x", wrong, concrete.raw["x"], d.graph, d.form,
                              ConcreteBatch(4)).holds


def test_eps_outside_root_is_not_the_standard_gradient() -> None:
    """The std-placement closed form does not prove against the sqrt-placement derivative."""
    std = symbn.derive(LayerSpec(eps_placement="std"))
    sqrt = symbn.derive()
    facts = statistics_facts(sqrt.graph, None)
    raw = sqrt.raw["x"]
    assert isinstance(raw, sp.Expr)
    wrong = std.closed["x"].xreplace({S.sigma: sp.sqrt(S.var)})
    assert not prove_symbolic("x", wrong, raw, sqrt.graph, sqrt.form, facts).holds
