"""Layer specifications: validation names the bad value and what is allowed."""

from __future__ import annotations

import numpy as np
import pytest

from symbn.errors import OptionError
from symbn.spec import MAX_EXPLICIT_M, LayerSpec, all_variants


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("layer", "layernorm", "'batchnorm'"),
    ("eps_placement", "inside", "'sqrt', 'std'"),
    ("variance", "sample", "'biased', 'unbiased'"),
    ("mode", "inference", "'train', 'eval'"),
    ("affine", "yes", "True, False"),
])
def test_bad_option_names_value_and_choices(field: str, value: object, allowed: str) -> None:
    """Each bad option raises OptionError (a ValueError) naming the value and the choices."""
    with pytest.raises(OptionError) as info:
        LayerSpec(**{field: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert f"{field}={value!r}" in message and allowed in message
    assert isinstance(info.value, ValueError)


def test_unbiased_needs_two_elements_in_training_only() -> None:
    """m = 1 with unbiased variance is refused in train mode, allowed in eval mode."""
    with pytest.raises(OptionError, match="m - 1 = 0"):
        LayerSpec(variance="unbiased").check_batch_size(1)
    LayerSpec(variance="unbiased", mode="eval").check_batch_size(1)


def test_explicit_batch_sizes_are_capped() -> None:
    """A concrete m beyond the explicit-element limit is refused with advice to use symbolic m."""
    with pytest.raises(OptionError, match="leave m out"):
        LayerSpec().check_batch_size(MAX_EXPLICIT_M + 1)
    LayerSpec().check_batch_size(MAX_EXPLICIT_M)


def test_all_variants_are_distinct_and_complete() -> None:
    """16 distinct variants, the default first."""
    variants = all_variants()
    assert len(set(variants)) == 16
    assert variants[0] == LayerSpec()


def test_a_numpy_string_or_bool_option_is_read_as_what_it_holds() -> None:
    """np.array("sqrt") passed the membership test elementwise and made an unhashable spec,
    and np.True_ was refused (a review): the first is refused, the second taken as True."""
    with pytest.raises(OptionError, match="eps_placement=array"):
        LayerSpec(eps_placement=np.array("sqrt"))  # type: ignore[arg-type]
    spec = LayerSpec(affine=np.True_)  # type: ignore[arg-type]
    assert spec.affine is True and hash(spec) == hash(LayerSpec())
