"""``symbn derive``: print the chain-rule steps, closed forms and (optionally) their proof."""

from __future__ import annotations

import argparse
import sys

from symbn.api import derive, prove
from symbn.commands.options import add_layer_arguments, spec_from_args, whole_number
from symbn.errors import OptionError
from symbn.formats import FORMATS
from symbn.spec import MAX_EXPLICIT_M

NAME = "derive"
HELP = "derive the gradients of a layer: chain-rule steps, closed forms, proof"


def _batch_size(text: str) -> int:
    """``--m`` as :func:`whole_number` reads it, with the batch size's own message."""
    try:
        return whole_number(text)
    except argparse.ArgumentTypeError:
        raise OptionError.bad_value(
            "m", text, "the batch size must be a whole number >= 1") from None


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ".",
        epilog="Example: symbn derive batchnorm --prove; "
               "symbn derive batchnorm --m 3 --format json")
    add_layer_arguments(p)
    p.add_argument("--m", default=None, metavar="M",
                   help=f"a concrete batch size, 1 to {MAX_EXPLICIT_M} (explicit elements "
                        "x_0..x_{M-1}); default: symbolic m, valid for every batch size")
    p.add_argument("--format", default="text", metavar="{text,latex,json}",
                   help="'text' (default) for people, 'latex' for an align* block, "
                        "'json' for programs (expressions SymPy parses back)")
    p.add_argument("--prove", action="store_true",
                   help="prove every closed form equal to the raw derivative; exit 1 if a "
                        "proof fails")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status."""
    if args.format not in FORMATS:
        raise OptionError.bad_value("--format", args.format, list(FORMATS))
    spec = spec_from_args(args)
    m = None if args.m is None else _batch_size(args.m)
    derivation = derive(spec, m)
    report = prove(derivation) if args.prove else None
    sys.stdout.write(FORMATS[args.format](derivation, report))
    return 0 if report is None or report.holds else 1
