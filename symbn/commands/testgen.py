"""``symbn testgen``: write a pytest + hypothesis test file for a user's backward function."""

from __future__ import annotations

import argparse
import sys

from symbn.checker import check_signature
from symbn.commands.options import add_layer_arguments, spec_from_args, whole_number, write_output
from symbn.errors import printable
from symbn.targets import load_function
from symbn.testgen import generate_tests

NAME = "testgen"
HELP = "write a property-based test file checking your backward against symbn's gradient"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ".",
        epilog="Example: symbn testgen batchnorm --target mypkg.layers:bn_backward "
               "-o tests/test_bn_backward.py")
    add_layer_arguments(p)
    p.add_argument("--target", required=True,
                   help="the function to test: package.module:function (or file.py:function)")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where to write the test file (default: standard output)")
    p.add_argument("--dtype", default="float64", metavar="{float64,float32}",
                   help="dtype of the generated inputs (default: float64)")
    p.add_argument("--examples", default=200, type=whole_number,
                   help="hypothesis examples per property test, a whole number >= 1 "
                        "(default: 200)")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    spec = spec_from_args(args)
    # refused here, as symbn check refuses it, not in every test of the file
    check_signature(load_function(args.target), spec)
    source = generate_tests(spec, args.target, dtype=args.dtype, examples=args.examples,
                            test_file=args.output)
    if args.output is None:
        sys.stdout.write(source)
    else:
        write_output("--output", args.output, source)
        print(f"wrote {printable(args.output)}: tests for {printable(args.target)} "
              f"({spec.describe()})")
    return 0
