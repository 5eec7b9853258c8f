"""Load the function a user points symbn at: ``path/to/file.py:name`` or ``module:name``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from symbn.errors import OptionError

__all__ = ["load_function"]


def load_function(target: str) -> Callable[..., Any]:
    """The function ``path/to/file.py:name`` or ``package.module:name`` names.

    A file is imported with its own folder first on ``sys.path``, and a module with the current
    directory first, as ``python -m`` does; ``sys.path`` is restored afterwards.

    Raises
    ------
    OptionError
        When the file or module cannot be found or imported, or has no such function.

    """
    if ":" not in target:
        raise OptionError.bad_value("target", target,
                                    "write it as path/to/file.py:function or module:function")
    where, _, name = target.rpartition(":")
    module = _load_file(target, where) if where.endswith(".py") else _import(target, where)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise OptionError.bad_value("target", target, f"{where} has no function {name!r}")
    return fn


@contextmanager
def _first_on_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` inside the block only."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def _load_file(target: str, where: str) -> ModuleType:
    """Execute the file ``where`` as the module ``_symbn_target_<stem>``.

    The module is in ``sys.modules`` while it executes, as an import would put it (``dataclasses``
    and ``typing`` look it up there); if executing it fails, the entry is what it was before.
    """
    path = Path(where)
    if not path.is_file():
        raise OptionError.bad_value("target", target, f"there is no file {where}")
    module_name = f"_symbn_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise OptionError.bad_value("target", target, f"cannot import {where}")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)  # a file of the same name loaded before
    sys.modules[module_name] = module
    try:
        with _first_on_path(str(path.resolve().parent)):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # sys.exit on import: not the checker's exit
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        raise OptionError.bad_value(
            "target", target, f"importing {where} failed: {type(error).__name__}: {error}"
        ) from None
    return module


def _import(target: str, where: str) -> ModuleType:
    """Import the module ``where`` with the current directory first on ``sys.path``."""
    try:
        with _first_on_path(os.getcwd()):
            return importlib.import_module(where)
    except (Exception, SystemExit) as error:  # sys.exit on import: not the checker's exit
        raise OptionError.bad_value(
            "target", target, f"cannot import module {where!r}: {error}") from None
