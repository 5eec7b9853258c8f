"""Options shared by the subcommands: the layer and its variant, and where output goes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from symbn.errors import OptionError
from symbn.spec import EPS_PLACEMENTS, LAYERS, MODES, VARIANCES, LayerSpec


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """The positional layer and the variant flags (``--eps-placement`` …)."""
    parser.add_argument("layer", help=f"the normalization layer: {', '.join(LAYERS)}")
    add_variant_flags(parser)


def add_variant_flags(parser: argparse.ArgumentParser) -> None:
    """``--eps-placement``, ``--variance``, ``--no-affine``, ``--mode``."""
    group = parser.add_argument_group("variant")
    group.add_argument(
        "--eps-placement", default="sqrt", metavar="{sqrt,std}",
        help="where eps goes: 'sqrt' (default) (x-mu)/sqrt(var+eps), as in Ioffe & Szegedy and "
             "every framework; 'std' (x-mu)/(sqrt(var)+eps), as some lecture notes write it")
    group.add_argument(
        "--variance", default="biased", metavar="{biased,unbiased}",
        help="divide the sum of squares by m ('biased', default) or by m-1 ('unbiased')")
    group.add_argument(
        "--no-affine", dest="affine", action="store_false",
        help="no learned gamma and beta: y = xhat (default: y = gamma*xhat + beta)")
    group.add_argument(
        "--mode", default="train", metavar="{train,eval}",
        help="'train' (default): batch statistics, which depend on x; 'eval': running mean and "
             "variance are inputs, constants for the gradient")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``: what the generated module computes with."""
    from symbn.codegen import BACKENDS

    parser.add_argument(
        "--backend", default="numpy", metavar="{" + ",".join(BACKENDS) + "}",
        help="'numpy' (default): the generated module imports only NumPy; 'numexpr': its "
             "elementwise pass fused and multi-threaded by numexpr; 'numba': its two passes "
             "over the data compiled by numba (sums in float64), on two threads for large arrays "
             "(numexpr and numba are optional dependencies)")


def spec_from_args(args: argparse.Namespace, layer: str | None = None) -> LayerSpec:
    """The validated :class:`LayerSpec` the arguments describe (raises OptionError)."""
    return LayerSpec(
        layer=layer if layer is not None else args.layer,
        eps_placement=args.eps_placement,
        variance=args.variance,
        affine=args.affine,
        mode=args.mode,
    )


def whole_number(text: str) -> int:
    """An integer option's value: ASCII digits with an optional sign, else a one-line error.

    >>> whole_number("12")
    12
    >>> whole_number("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '1.5' is not allowed; expected a whole number, such as 3
    """
    digits = text.strip()
    if re.fullmatch(r"[+-]?[0-9]+", digits, re.ASCII) is None:  # not '3_0', '+-3' or '３'
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; expected a whole number, such as 3")
    return int(digits)


@contextmanager
def writing(option: str, value: str) -> Iterator[None]:
    """Turn an ``OSError`` in the block into the usual one-line :class:`OptionError`.

    ``option`` and ``value`` are the option that named the output (``--output``, ``--dir``) and
    what the user gave; the message adds the file concerned when it is another one (a file
    inside a ``--dir`` folder) and the system's reason. An empty name is refused before the
    block runs (``-o ''`` said "Is a directory").

    >>> try:
    ...     with writing("--output", "/no/x.tex"):
    ...         Path("/no/x.tex").write_text("x")
    ... except OptionError as error:
    ...     print(error)
    --output='/no/x.tex' is not allowed; cannot write it: No such file or directory
    """
    if not value.strip():
        raise OptionError.bad_value(option, value, "expected a file name")
    try:
        yield
    except UnicodeEncodeError:  # a name of bytes that are not UTF-8, in text to write
        raise OptionError.bad_value(
            option, value, "cannot write it: its text is not UTF-8") from None
    except OSError as error:
        same = error.filename is None or Path(error.filename) == Path(value)
        where = "it" if same else str(error.filename)
        raise OptionError.bad_value(
            option, value, f"cannot write {where}: {error.strerror or error}") from None


def write_output(option: str, value: str, text: str) -> None:
    """Write ``text`` to the file ``value`` (UTF-8) that ``option`` named; see :func:`writing`."""
    with writing(option, value):
        data = text.encode("utf-8")  # before the file is made: no empty file on an error
        Path(value).write_bytes(data)


__all__ = ["EPS_PLACEMENTS", "MODES", "VARIANCES", "add_backend_argument", "add_layer_arguments",
           "add_variant_flags", "spec_from_args", "whole_number", "write_output", "writing"]
