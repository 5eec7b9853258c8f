"""``symbn codegen``: write a standalone NumPy module with a layer's forward and backward pass."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symbn.codegen import generate_module
from symbn.commands.options import (
    add_backend_argument,
    add_layer_arguments,
    spec_from_args,
    write_output,
)
from symbn.errors import OptionError, printable

NAME = "codegen"
HELP = "write a standalone NumPy module with the layer's forward and backward pass"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ", generated from the proven closed form.",
        epilog="Example: symbn codegen batchnorm -o bn_grad.py; "
               "symbn codegen batchnorm --eps-placement std --backend numexpr -o bn_std.py")
    add_layer_arguments(p)
    p.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="where to write the module, a file name ending in .py ('-', the "
                        "default, for standard output)")
    add_backend_argument(p)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    spec = spec_from_args(args)
    source = generate_module(spec, args.backend)
    if args.output == "-":
        sys.stdout.write(source)
        return 0
    path = Path(args.output)
    if path.suffix != ".py":
        raise OptionError.bad_value("--output", args.output,
                                    "expected a file name ending in .py, such as bn_grad.py")
    write_output("--output", args.output, source)
    print(f"wrote {printable(str(path))}: {spec.describe()}, backend={args.backend}")
    return 0
