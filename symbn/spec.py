"""Layer specifications: which normalization layer, which variant; validated once.

Everything downstream (graph, derivation, printers) trusts a :class:`LayerSpec`: the checks
live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from symbn.errors import OptionError, check_whole

LAYERS: tuple[str, ...] = ("batchnorm",)
EpsPlacement = Literal["sqrt", "std"]
Variance = Literal["biased", "unbiased"]
Mode = Literal["train", "eval"]

EPS_PLACEMENTS: tuple[EpsPlacement, ...] = ("sqrt", "std")
VARIANCES: tuple[Variance, ...] = ("biased", "unbiased")
MODES: tuple[Mode, ...] = ("train", "eval")
MAX_EXPLICIT_M = 64


@dataclass(frozen=True)
class LayerSpec:
    """A normalization layer and its variant.

    Parameters
    ----------
    layer
        The layer: ``"batchnorm"``.
    eps_placement
        ``"sqrt"`` (default): ``x̂ = (x − μ)/√(σ² + ε)``, as in Ioffe & Szegedy and every major
        framework. ``"std"``: ``x̂ = (x − μ)/(σ + ε)`` with ``σ = √σ²``, as some lecture notes
        write it.
    variance
        ``"biased"`` (default) divides the sum of squares by m, ``"unbiased"`` by m − 1.
    affine
        With ``True`` (default), ``y = γ·x̂ + β`` with learned γ and β; with ``False``, ``y = x̂``.
    mode
        ``"train"`` (default) normalizes with the batch statistics, which depend on x;
        ``"eval"`` with running mean and variance, which are inputs (constants for the gradient).

    Examples
    --------
    >>> LayerSpec(eps_placement="std").describe()
    'batchnorm, eps_placement=std, variance=biased, affine, mode=train'
    >>> LayerSpec(variance="sample")
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: variance='sample' is not allowed; choose one of: 'biased', 'unbiased'

    """

    layer: str = "batchnorm"
    eps_placement: EpsPlacement = "sqrt"
    variance: Variance = "biased"
    affine: bool = True
    mode: Mode = "train"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("layer", self.layer, LAYERS),
            ("eps_placement", self.eps_placement, EPS_PLACEMENTS),
            ("variance", self.variance, VARIANCES),
            ("mode", self.mode, MODES),
        ):
            if not isinstance(value, str) or value not in allowed:  # not np.array("sqrt")
                raise OptionError.bad_value(name, value, allowed)
        if isinstance(self.affine, np.bool_):  # NumPy's True is a bool too
            object.__setattr__(self, "affine", bool(self.affine))
        if not isinstance(self.affine, bool):
            raise OptionError.bad_value("affine", self.affine, [True, False])

    @property
    def uses_batch_statistics(self) -> bool:
        """True in training mode, where μ and σ² are computed from the batch."""
        return self.mode == "train"

    @property
    def smallest_batch(self) -> int:
        """The fewest elements per channel the variant takes (2 for unbiased training).

        The batch variance divides by m − 1 there; 1 elsewhere.

        >>> LayerSpec(variance="unbiased").smallest_batch, LayerSpec(variance="unbiased",
        ...                                                          mode="eval").smallest_batch
        (2, 1)
        """
        return 2 if self.variance == "unbiased" and self.uses_batch_statistics else 1

    def describe(self) -> str:
        """One line naming the layer and every option."""
        affine = "affine" if self.affine else "no affine"
        return (
            f"{self.layer}, eps_placement={self.eps_placement}, variance={self.variance}, "
            f"{affine}, mode={self.mode}"
        )

    def check_batch_size(self, m: object) -> int | None:
        """``m`` as an ``int`` (``None`` means symbolic m), or reject one this variant cannot use.

        NumPy integers are whole numbers; booleans are not.

        >>> LayerSpec(variance="unbiased").check_batch_size(1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        symbn.errors.OptionError: m=1 is not allowed; unbiased variance divides by m - 1 = 0: ...
        """
        if m is None:
            return None
        m = check_whole("m", m, 1, "a whole-number batch size")
        if m > MAX_EXPLICIT_M:
            raise OptionError.bad_value(
                "m", m,
                f"explicit elements are for m <= {MAX_EXPLICIT_M} (the derivation and its proof "
                "grow like m^2); leave m out for the symbolic form, valid for every batch size",
            )
        if m < self.smallest_batch:
            raise OptionError.bad_value(
                "m", m,
                "unbiased variance divides by m - 1 = 0: use m >= 2 or variance='biased'",
            )
        return m


def all_variants(layer: str = "batchnorm") -> tuple[LayerSpec, ...]:
    """Every combination of options for a layer, default variant first.

    >>> len(all_variants())
    16
    """
    return tuple(
        LayerSpec(layer, eps, var, affine, mode)
        for mode in MODES
        for eps in EPS_PLACEMENTS
        for var in VARIANCES
        for affine in (True, False)
    )


def checked_spec(spec: object) -> LayerSpec:
    """``spec`` itself if it is a :class:`LayerSpec`; an :class:`OptionError` naming it if not.

    >>> checked_spec(None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: spec=None is not allowed; give a symbn.LayerSpec, such as ...
    """
    if not isinstance(spec, LayerSpec):
        raise OptionError.bad_value(
            "spec", spec, "give a symbn.LayerSpec, such as symbn.LayerSpec(layer='batchnorm')")
    return spec
