"""Load the function a user points symbn at: ``path/to/file.py:name`` or ``module:name``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symbn.errors import OptionError

__all__ = ["load_function"]


def load_function(target: str) -> Callable[..., Any]:
    """The function ``path/to/file.py:name`` or ``package.module:name`` names.

    Raises
    ------
    OptionError
        When the file or module cannot be found or imported, or has no such function.

    """
    if ":" not in target:
        raise OptionError.bad_value("target", target,
                                    "write it as path/to/file.py:function or module:function")
    where, _, name = target.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise OptionError.bad_value("target", target, f"there is no file {where}")
        module_name = f"_symbn_target_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise OptionError.bad_value("target", target, f"cannot import {where}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise OptionError.bad_value(
                "target", target, f"importing {where} failed: {type(error).__name__}: {error}"
            ) from None
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(where)
        except Exception as error:
            raise OptionError.bad_value(
                "target", target, f"cannot import module {where!r}: {error}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise OptionError.bad_value("target", target, f"{where} has no function {name!r}")
    return fn
