"""Shared test configuration: hypothesis profiles and a guard on mpmath's precision.

Profiles (choose with ``HYPOTHESIS_PROFILE=name``): ``default`` (hypothesis' defaults,
derandomized, no deadline: the mpmath reference is slow on the first call), ``ci`` (the same,
fewer examples), ``thorough`` (1000 examples per property, as mpmath's own conftest offers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import mpmath
import pytest
from hypothesis import HealthCheck, settings

import symbn

_COMMON = {"deadline": None, "derandomize": True,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("default", **_COMMON)
settings.register_profile("ci", max_examples=50, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _mpmath_precision_is_local() -> Iterator[None]:
    """Fail a test that leaves mpmath's global precision changed, and restore it."""
    before = (mpmath.mp.prec, mpmath.mp.dps)
    yield
    after = (mpmath.mp.prec, mpmath.mp.dps)
    mpmath.mp.prec = before[0]
    assert after == before, f"mpmath precision changed from {before} to {after}"


# The variants the default run tests the numba backend on (its kernels compile per module, a
# few seconds each): between them, every kernel and every elementwise pass a module has.
NUMBA_VARIANTS = (
    symbn.LayerSpec(),
    symbn.LayerSpec(eps_placement="std", variance="unbiased", affine=False),
    symbn.LayerSpec(mode="eval"),
    symbn.LayerSpec(eps_placement="std", variance="unbiased", affine=False, mode="eval"),
)


def _numba_on_another_variant(item: pytest.Item) -> bool:
    params = getattr(item, "callspec", None)
    params = params.params if params is not None else {}
    return params.get("backend") == "numba" and params.get("spec", NUMBA_VARIANTS[0]) not in (
        NUMBA_VARIANTS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave ``@pytest.mark.slow`` tests out unless a marker expression is given (-m slow).

    The numba backend's tests on variants beyond NUMBA_VARIANTS are marked slow.
    """
    for item in items:
        if _numba_on_another_variant(item):
            item.add_marker(pytest.mark.slow)
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow: exhaustive suite, run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
