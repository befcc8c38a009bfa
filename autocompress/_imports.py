"""A user's function by ``path/to/file.py:function`` or ``module:function``: how a task names
its metric (:mod:`autocompress.metrics`) and its data pipeline (:mod:`autocompress.data.pipeline`).

A file is imported once per process under a name of its own; every failure is a one-line
:class:`InputError` naming ``where`` and what was asked for (``what``: "metric", "data")."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autocompress.errors import InputError


def load_function(spec: str, where: str, what: str) -> tuple[Callable[..., Any], str]:
    """The function ``spec`` names, and its name."""
    target, _, func_name = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise InputError(where, f"{what} file {target} not found")
        module_name = f"_autocompress_{what}_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader = importlib.util.spec_from_file_location(module_name, path)
            if loader is None or loader.loader is None:
                raise InputError(where, f"{what} file {target} cannot be imported")
            module = importlib.util.module_from_spec(loader)
            try:
                loader.loader.exec_module(module)
            except Exception as exc:  # the user's file: any error is a bad-input line
                raise InputError(where, f"{what} file {target} fails to import: {exc}") from None
            sys.modules[module_name] = module
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise InputError(where, f"cannot import {what} module {target!r}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise InputError(where, f"{what} {spec}: {target} has no function {func_name!r}")
    return fn, func_name
