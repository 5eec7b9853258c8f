"""The ``symbn`` command: parses arguments, calls the pipeline, prints. Nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from symbn import __version__
from symbn.commands import check, codegen, derive, latex, render, testgen, verify
from symbn.errors import SymbnError

COMMANDS = (derive, codegen, verify, check, testgen, latex, render)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit status 2."""

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symbn`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {c.NAME: c for c in COMMANDS}[args.command]
    try:
        return int(command.run(args))
    except SymbnError as error:
        print(f"symbn: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``symbn … | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
