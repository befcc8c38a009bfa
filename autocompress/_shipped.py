"""Where the shipped YAML folders (``search_spaces``, ``hardware_profiles``) are read from.

They live at the top of the repository, where users look for them, and the build maps them into
the package as ``autocompress.search_spaces`` / ``autocompress.hardware_profiles`` (see
``pyproject.toml``), so that a wheel or ``pip install .`` finds them from any working directory.
"""

from __future__ import annotations

import importlib
from pathlib import Path


def shipped_dir(folder: str) -> Path:
    """The data package ``autocompress.<folder>`` as a filesystem path.

    Installed from a wheel it is a folder of the package (a namespace package: YAML files only).
    An editable install or a source checkout on ``PYTHONPATH`` has no such package; there the
    repository's top-level folder is the same content.
    """
    try:
        module = importlib.import_module(f"autocompress.{folder}")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / folder
    return Path(next(iter(module.__path__)))
