"""Reading user YAML safely: safe loader, size cap, and errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autocompress.errors import InputError

MAX_YAML_BYTES = 1_000_000


def load_yaml(path: str | Path) -> Any:
    """Load a user YAML file with the safe loader, behind a size cap; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(str(p), "file not found")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise InputError(str(p), f"file is larger than {MAX_YAML_BYTES} bytes")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(str(p), "not a UTF-8 text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(str(p), f"malformed YAML{where}: {problem}") from None
    return data


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Load a YAML file whose top level must be a mapping with string keys."""
    p = Path(path)
    data = load_yaml(p)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputError(str(p), "expected a mapping of names to values at the top level")
    return data


def check_keys(source: str, data: dict[str, Any], known: set[str], required: set[str]) -> None:
    """Reject unknown keys (typos) and missing required keys, naming them."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            source, f"unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})"
        )
    missing = sorted(required - set(data))
    if missing:
        raise InputError(source, f"missing required key {missing[0]!r}")
