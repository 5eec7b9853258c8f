"""The ``symbn`` command: parses arguments, calls the pipeline, prints. Nothing else."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from symbn import __version__
from symbn.commands import check, codegen, derive, latex, render, testgen, verify
from symbn.errors import SymbnError

COMMANDS = (derive, codegen, verify, check, testgen, latex, render)


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, never breaking a line at a hyphen (``--eps-`` / ``placement``)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2, and no abbreviated options.

    An abbreviation hid a missing option: ``--eps 1e-3`` was taken for ``--eps-placement``,
    and the error then named the eps placement.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, formatter_class=_Formatter, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"symbn: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="symbn",
        description="Derive the gradients of normalization layers symbolically, prove them, "
                    "and turn them into NumPy code.",
    )
    parser.add_argument("--version", action="version", version=f"symbn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # for main's errors in a subcommand
        command_parser.set_defaults(command_parser=command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symbn`` console script; returns the exit status.

    Ctrl-C ends it with one line and status 130, as a shell reports SIGINT (a traceback
    before).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("symbn: interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    before = next((w for w in words if not w.startswith("-")), None)
    for word in words[: words.index(before) if before is not None else len(words)]:
        if word not in ("-h", "--help", "--version"):  # symbn --bogus: name it, not COMMAND
            parser.error(f"unrecognized arguments: {word}")
    args, unknown = parser.parse_known_args(words)
    if unknown:  # named by the subcommand, whose help lists what it takes
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    command = {c.NAME: c for c in COMMANDS}[args.command]
    try:
        if sys.stdout is None:  # closed (``symbn … >&-``): output would be lost
            raise OSError(errno.EBADF, "standard output is closed")
        return int(command.run(args))
    except SymbnError as error:
        print(f"symbn: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``symbn … | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # standard output full or closed (files are SymbnErrors)
        print(f"symbn: error: cannot write the output: {error.strerror or error}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
