"""Where the shipped YAML folders (``search_spaces``, ``hardware_profiles``) are read from.

They are data folders of the package (``autocompress/search_spaces``,
``autocompress/hardware_profiles``), so that a wheel or ``pip install .`` finds them from any
working directory; the repository's top-level ``search_spaces/`` and ``hardware_profiles/`` are
links to them, where users look.
"""

from __future__ import annotations

from pathlib import Path


def shipped_dir(folder: str) -> Path:
    """The shipped data folder ``autocompress/<folder>`` as a filesystem path."""
    return Path(__file__).resolve().parent / folder
