"""``symbn latex``: write a derivation as a complete LaTeX document, or as Markdown."""

from __future__ import annotations

import argparse
import sys
from pathlib import PurePath

from symbn.api import derive, prove
from symbn.commands.options import add_layer_arguments, spec_from_args, write_output
from symbn.document import to_markdown, to_tex
from symbn.errors import OptionError

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
    p.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="write to FILE, such as bn.tex (bn.md with --markdown), instead of "
                        "standard output ('-', the default); a name made for another format, "
                        "such as bn.pdf, is refused")
    p.add_argument("--markdown", action="store_true",
                   help="write Markdown with $$ math that GitHub renders instead of LaTeX")


SUFFIXES = {False: (".tex", ".ltx", ".latex"), True: (".md", ".markdown")}
OTHER_FORMATS = (".pdf", ".dvi", ".ps", ".eps", ".html", ".htm", ".docx", ".odt", ".rtf",
                 ".png", ".svg", ".jpg", ".jpeg")


def check_output_name(name: str, markdown: bool) -> None:
    """Refuse an output name whose suffix says another format than the one written.

    ``-o bn.pdf`` wrote LaTeX source into a file named as a PDF, and ``-o bn.md`` without
    ``--markdown`` wrote LaTeX into a Markdown name, both without a word. Any other name
    (``bn``, ``bn.txt``, ``/dev/stdout``) is written as given.

    >>> check_output_name("bn.tex", markdown=False)
    >>> check_output_name("notes.txt", markdown=False)
    >>> check_output_name("bn.pdf", markdown=False)
    Traceback (most recent call last):
    ...
    symbn.errors.OptionError: --output='bn.pdf' is not allowed; expected a file name ending in \
.tex, such as bn.tex: symbn writes LaTeX source, which pdflatex or latexmk -pdf turns into a PDF
    """
    suffix = PurePath(name).suffix.lower()
    if suffix in SUFFIXES[not markdown]:
        why = ("without --markdown, symbn writes LaTeX; add --markdown to write Markdown"
               if not markdown else "--markdown writes Markdown; leave it out to write LaTeX")
    elif suffix not in OTHER_FORMATS:
        return
    elif markdown:
        why = f"--markdown writes Markdown, not {suffix[1:].upper()}"
    else:
        why = "symbn writes LaTeX source, which pdflatex or latexmk -pdf turns into a PDF"
    wanted = SUFFIXES[markdown][0]
    raise OptionError.bad_value(
        "--output", name, f"expected a file name ending in {wanted}, such as bn{wanted}: {why}")


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit status (1 if a proof in the document failed)."""
    output = None if args.output in (None, "-") else args.output  # '-': standard output
    if output is not None:
        check_output_name(output, args.markdown)
    derivation = derive(spec_from_args(args))
    report = prove(derivation)
    text = (to_markdown if args.markdown else to_tex)(derivation, report)
    if output is None:
        sys.stdout.write(text)
    else:
        write_output("--output", output, text)
    return 0 if report.holds else 1
