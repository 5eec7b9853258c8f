"""``symbn latex``: write a derivation as a complete LaTeX document, or as Markdown."""

from __future__ import annotations

import argparse
import sys

from symbn.api import derive, prove
from symbn.commands.options import add_layer_arguments, spec_from_args, write_output
from symbn.document import to_markdown, to_tex

NAME = "latex"
HELP = "write the derivation of a layer as a LaTeX document (or Markdown with --markdown)"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the subcommand."""
    p = sub.add_parser(
        NAME, help=HELP, description=HELP + ": forward graph, every chain-rule step with its "
        "justification, closed forms, conditions, proof and gradient-descent updates. The "
        "document compiles with pdflatex (packages amsmath, amssymb, geometry).",
        epilog="Examples: symbn latex batchnorm -o bn.tex && latexmk -pdf bn.tex; "
               "symbn latex batchnorm --eps-placement std --markdown -o bn.md")
    add_layer_arguments(p)
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write to FILE instead of standard output")
    p.add_argument("--markdown", action="store_true",
                   help="write Markdown with $$ math that GitHub renders instead of LaTeX")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status (1 if a proof in the document failed)."""
    derivation = derive(spec_from_args(args))
    report = prove(derivation)
    text = (to_markdown if args.markdown else to_tex)(derivation, report)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_output("--output", args.output, text)
    return 0 if report.holds else 1
