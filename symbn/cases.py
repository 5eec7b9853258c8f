"""Inputs for checking a backward function: the :class:`Case` type and symbn's own inputs.

symbn's inputs (:func:`default_cases`) always use random upstream gradients and γ ≠ 1, and
cover m = 1, 2, 8, 256, an NCHW input, a large mean offset, a constant channel, variance below ε,
tiny and large γ, a large ε, a single channel and, in float32, |x| near overflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from symbn.errors import OptionError, check_positive, check_whole
from symbn.spec import LayerSpec

__all__ = ["DTYPES", "Case", "DTypeLike", "check_axis", "check_dtype", "check_eps", "check_seed",
           "default_cases", "parameter_names", "signature", "validate_case"]

DTYPES: tuple[str, ...] = ("float64", "float32")
DTypeLike = str | type[np.generic] | np.dtype[Any]  # "float32", np.float32, np.dtype("float32")


def check_dtype(dtype: Any, name: str = "dtype") -> str:
    """``dtype`` (a name, a NumPy dtype or scalar type) as a name in :data:`DTYPES`.

    An :class:`OptionError` otherwise.

    >>> check_dtype(np.float32)
    'float32'
    >>> check_dtype("float16")
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: dtype='float16' is not allowed; choose one of: 'float64', 'float32'
    """
    if isinstance(dtype, type) and issubclass(dtype, np.generic):  # np.float32
        dtype = np.dtype(dtype)
    if not isinstance(dtype, (str, np.dtype)) or dtype not in DTYPES:
        raise OptionError.bad_value(name, dtype, DTYPES)
    return str(dtype)


def check_axis(axis: Any, shape: tuple[int, ...], name: str = "axis") -> int:
    """``axis`` as an ``int`` if it is an axis of an array of ``shape``, else an OptionError.

    >>> check_axis(-1, (8, 3))
    -1
    >>> check_axis(True, (8, 3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: axis=True is not allowed; x has shape (8, 3): use an integer -2 ...
    """
    ndim = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -ndim <= axis < ndim:
        raise OptionError.bad_value(name, axis, f"x has shape {tuple(shape)}: use an integer "
                                    f"{-ndim} <= axis < {ndim}")
    return int(axis)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for NumPy's generator: a whole number >= 0, else an :class:`OptionError`."""
    return check_whole(name, seed, 0)


def check_eps(eps: Any, name: str = "eps") -> float:
    """ε: a finite real number > 0 (the generated code's rule too), else an OptionError."""
    return check_positive(name, eps, ", such as 1e-5")


@dataclass(frozen=True, eq=False)
class Case:
    """One input to a backward function.

    ``x`` and ``dy`` have any shape with the channel axis ``axis``; ``gamma`` (affine) and the
    running statistics (eval mode) have one value per channel. The checker validates a case
    with :func:`validate_case` before calling the backward on it. ``spec``, where a case was
    made for one variant (:func:`symbn.strategies.cases` sets it), is the variant it is
    checked as: :func:`symbn.checker.check_case` takes it, and refuses another. Cases compare
    as objects, by identity (field by field, ``==`` on their arrays raised).
    """

    x: np.ndarray
    dy: np.ndarray
    gamma: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    eps: float = 1e-5
    axis: int = -1
    name: str = "case"
    spec: LayerSpec | None = None

    def describe(self) -> str:
        """One line: name, shape, dtype, axis, ε, the range of x and its width.

        The width shows the spread where the ends print alike (``[1e+07, 1e+07]`` at a mean
        offset of 1e7 with unit spread).

        >>> Case(x=1e7 + np.arange(4.0)[:, None], dy=np.ones((4, 1))).describe()
        'case: x(4, 1) float64, axis=-1, eps=1e-05, x in [1e+07, 1e+07] (width 3)'
        """
        x = np.asarray(self.x)
        low, high = float(x.min()), float(x.max())
        return (f"{self.name}: x{tuple(x.shape)} {x.dtype}, axis={self.axis}, "
                f"eps={float(self.eps):g}, "
                f"x in [{_g(low)}, {_g(high)}] (width {high - low:.3g})")

    def columns(self, array: np.ndarray) -> np.ndarray:
        """``array`` (shaped like x) as ``(m, D)``: the channel axis last, the rest flattened."""
        a = np.moveaxis(np.asarray(array), self.axis, -1)
        return a.reshape(-1, a.shape[-1])

    def arguments(self, spec: LayerSpec) -> tuple[Any, ...]:
        """The positional arguments of the backward: dy, x[, gamma][, running stats]."""
        return tuple(getattr(self, name) for name in parameter_names(spec))


def parameter_names(spec: LayerSpec) -> list[str]:
    """The positional parameters of a backward for ``spec`` (also :class:`Case` fields)."""
    return ["dy", "x", *(["gamma"] if spec.affine else []),
            *([] if spec.uses_batch_statistics else ["running_mean", "running_var"])]


def signature(spec: LayerSpec) -> str:
    """The signature a backward for ``spec`` must have.

    >>> signature(LayerSpec(mode="eval", affine=False))
    'backward(dy, x, running_mean, running_var, *, eps, axis) -> dx'
    """
    out = "(dx, dgamma, dbeta)" if spec.affine else "dx"
    return f"backward({', '.join(parameter_names(spec))}, *, eps, axis) -> {out}"


def validate_case(case: Any, spec: LayerSpec, name: str = "case") -> Case:
    """``case`` if it is a :class:`Case` that ``spec``'s backward can be called on.

    The rules are the generated code's: x a NumPy array of float64 or float32 with at least one
    element, dy one of the same shape and dtype, ``axis`` an axis of x, ε finite and > 0,
    γ (affine) and the running statistics (eval mode) arrays of real floats with one value per
    channel, the running variance >= 0; and every value finite. Raises :class:`OptionError`
    naming the field and the value, or a case made for another variant than ``spec``.
    """
    if not isinstance(case, Case):
        raise OptionError(f"{name} is a {type(case).__name__}, not a symbn.checker.Case; build "
                          "it as Case(x, dy, gamma, eps=1e-5, axis=-1)")
    if case.spec is not None and case.spec != spec:
        raise OptionError(f"{name} was made for {case.spec.describe()}, but is checked as "
                          f"{spec.describe()}: check it as its own variant (check_case takes "
                          "it from the case), or draw the cases for the variant checked")
    x = _real_array(f"{name}.x", case.x, DTYPES)
    if x.size == 0:
        raise OptionError.bad_value(f"{name}.x.shape", x.shape, "give at least one element")
    check_axis(case.axis, x.shape, f"{name}.axis")
    dy = _real_array(f"{name}.dy", case.dy, (str(x.dtype),))
    if dy.shape != x.shape:
        raise OptionError.bad_value(f"{name}.dy.shape", dy.shape, f"use x's shape {x.shape}")
    check_eps(case.eps, f"{name}.eps")
    channels = x.shape[case.axis]
    if x.size // channels < spec.smallest_batch:  # found only by the reference, unnamed
        raise OptionError.bad_value(
            f"{name}.x.shape", x.shape, f"{spec.describe()} needs at least "
            f"{spec.smallest_batch} elements per channel (the unbiased variance divides by "
            f"m - 1); use a larger batch or variance='biased'")
    needed = {"gamma": spec.affine, "running_mean": not spec.uses_batch_statistics,
              "running_var": not spec.uses_batch_statistics}
    for field_name in (f for f, need in needed.items() if need):
        value = getattr(case, field_name)
        if value is None:
            raise OptionError(f"{name}.{field_name} is missing: {spec.describe()} needs it, "
                              f"one value per channel, shape ({channels},)")
        per_channel = _real_array(f"{name}.{field_name}", value)
        if per_channel.shape != (channels,):
            raise OptionError.bad_value(f"{name}.{field_name}.shape", per_channel.shape,
                                        f"use one value per channel, ({channels},)")
        if field_name == "running_var" and (per_channel < 0).any():
            raise OptionError(f"{name}.running_var holds {float(per_channel.min())!r}; "
                              "variances are >= 0")
    return case


def _real_array(name: str, value: Any, dtypes: tuple[str, ...] | None = None) -> np.ndarray:
    """``value`` if it is a NumPy array of finite real floats (of one of ``dtypes``)."""
    allowed = " or ".join(dtypes) if dtypes else "a real floating dtype"
    if np.ma.is_masked(value):  # the reference would count the masked values, as NumPy does
        raise OptionError(f"{name} is a masked array with masked values; give an array "
                          "without a mask (fill or drop the masked values first), as the "
                          "generated code asks")
    if not isinstance(value, np.ndarray):
        raise OptionError(f"{name} is a {type(value).__name__}, not a NumPy array; give an "
                          f"array of {allowed}")
    if value.dtype.kind != "f" or (dtypes and str(value.dtype) not in dtypes):
        raise OptionError.bad_value(f"{name}.dtype", str(value.dtype), f"use {allowed}")
    if not np.isfinite(value).all():
        raise OptionError(f"{name} holds NaN or inf; the reference needs finite inputs")
    return value


def _g(v: Any) -> str:
    return f"{float(v):.6g}"


def default_cases(spec: LayerSpec, dtype: DTypeLike = "float64", seed: int = 0) -> tuple[Case, ...]:
    """The inputs symbn checks with: ordinary and hard, random upstream gradients, γ ≠ 1.

    Batch sizes 1 (training with biased variance only), 2, 8 and 256; an NCHW input with
    axis=1; a mean offset (1e7 in float64, 1e4 in float32) with unit spread; a constant
    channel; variance below ε; tiny and large γ; ε = 0.5 (ε's placement visible at unit
    spread); in float32, |x| near the float32 overflow; one channel (a backward that squeezes
    dγ to shape () there passed every other input). Deterministic for a given ``seed``.

    >>> [c.name for c in default_cases(LayerSpec())][:3]
    ['random (8, 4)', 'm=2', 'm=1']
    """
    dtype = check_dtype(dtype)
    rng = np.random.default_rng(check_seed(seed))
    cases: list[Case] = []

    def add(name: str, x: np.ndarray, *, axis: int = -1, eps: float = 1e-5,
            gamma: np.ndarray | None = None) -> None:
        channels = x.shape[axis]
        if gamma is None:
            gamma = rng.choice([-1.0, 1.0], channels) * rng.uniform(0.5, 2.0, channels)
        rm = np.asarray(rng.normal(size=channels)) if not spec.uses_batch_statistics else None
        rv = np.asarray(rng.uniform(0.25, 4.0, channels)) if not spec.uses_batch_statistics \
            else None
        cases.append(Case(
            x=x.astype(dtype), dy=rng.normal(size=x.shape).astype(dtype),
            gamma=gamma.astype(dtype) if spec.affine else None,
            running_mean=None if rm is None else rm.astype(dtype),
            running_var=None if rv is None else rv.astype(dtype),
            eps=eps, axis=axis, name=name))

    spread = np.array([1.0, 3.0, 0.5, 2.0])
    add("random (8, 4)", rng.normal(size=(8, 4)) * spread + np.array([0.0, 1.0, -2.0, 5.0]))
    add("m=2", rng.normal(size=(2, 3)))
    if spec.uses_batch_statistics and spec.variance == "biased":
        add("m=1", rng.normal(size=(1, 3)))
    add("large batch (256, 3)", rng.normal(size=(256, 3)) * 2 + 1)
    add("NCHW (4, 3, 2, 2), axis=1", rng.normal(size=(4, 3, 2, 2)), axis=1)
    offset = 1e7 if dtype == "float64" else 1e4
    add(f"mean offset {offset:g}, unit spread", offset + rng.normal(size=(16, 2)))
    constant = rng.normal(size=(6, 3))
    constant[:, 0] = 0.75
    add("constant channel 0", constant)
    add("variance below eps", 2.0 + 1e-5 * rng.normal(size=(10, 2)))
    add("tiny and large gamma", rng.normal(size=(12, 4)),
        gamma=np.array([1e-6, 1e4, -3e-5, -2e3]))
    add("eps = 0.5", rng.normal(size=(12, 3)) * np.array([1.0, 0.3, 2.0]), eps=0.5)
    if dtype == "float32":
        add("|x| near float32 overflow", 1e37 * (1 + 0.5 * rng.normal(size=(8, 2))))
    add("one channel (12, 1)", 1.5 * rng.normal(size=(12, 1)) - 0.5)  # squeeze() makes () of it
    return tuple(cases)
