"""``symbn check``: check a user's backward function against symbn's proven gradient."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from symbn.cases import check_dtype, check_seed
from symbn.checker import check_backward
from symbn.commands.options import add_variant_flags, spec_from_args, whole_number
from symbn.spec import LAYERS
from symbn.targets import load_function

NAME = "check"
HELP = "check your own backward function against symbn's proven gradient"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ". The function must have the signature "
        "backward(dy, x, gamma, *, eps, axis) -> (dx, dgamma, dbeta) (eval mode: running_mean, "
        "running_var after gamma; --no-affine: no gamma, returns dx). Exit 0 on pass, 1 on fail, 2 "
        "(one line) for a bad option or a target that cannot be loaded or called so. What the "
        "function prints goes to standard error, so that the report stays whole.",
        epilog="Example: symbn check path/to/layers.py:bn_backward --layer batchnorm")
    p.add_argument("target", help="path/to/file.py:function or package.module:function")
    p.add_argument("--layer", default="batchnorm",
                   help=f"the normalization layer: {', '.join(LAYERS)} (default: batchnorm)")
    add_variant_flags(p)
    p.add_argument("--dtype", default="float64", metavar="{float64,float32}",
                   help="dtype of the inputs symbn feeds the function (default: float64)")
    p.add_argument("--seed", default=0, type=whole_number,
                   help="seed of symbn's inputs, a whole number >= 0 (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    check_dtype(args.dtype, "--dtype")
    check_seed(args.seed, "--seed")
    spec = spec_from_args(args)
    # what the target prints, as it is imported or called, goes to stderr: not in the report
    with contextlib.redirect_stdout(_Unclosable(sys.stderr)):
        fn = load_function(args.target)
        report = check_backward(fn, spec.layer, eps_placement=spec.eps_placement,
                                variance=spec.variance, affine=spec.affine, mode=spec.mode,
                                dtype=args.dtype, seed=args.seed)
    print(report.format())
    return 0 if report.passed else 1


class _Unclosable:
    """A stream that writes to ``stream`` and ignores close(): the target's sys.stdout.

    A backward that closed sys.stdout would otherwise close the real stderr (a review).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def close(self) -> None:
        """Not closed: the stream is symbn's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
