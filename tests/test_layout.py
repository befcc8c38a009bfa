"""The package's shape, checked: modules stay readable, imports flow without circles, and other
libraries' private names are used in one adapter each (issue 41)."""

from __future__ import annotations

import ast
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autocompress"
MAX_LINES = 450
# The one use each of a private name of another library, in the module that says why.
ADAPTERS = {
    "study/samplers.py": "Optuna's Study._get_trials (TPE reads the history through it)",
    "models/safe_mode.py": "tf_keras' SafeModeScope (no public scoped safe mode)",
}
PRIVATE = re.compile(
    r"(?:from|import)\s+(?:optuna|tf_keras|keras|tensorflow)[\w.]*\._\w"  # a private module
    r"|(?:tf_keras|keras)\.src\b"  # Keras' source tree
    r"|\.(?:_storage|_study_id|_trial_id|_get_trials|_inbound_nodes|_keras_history|_layers)\b"
)


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def test_no_module_is_over_the_limit() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """What importing ``name`` runs of the package at module load: its top-level imports and
    the ``__init__`` of every package on their way (function-level imports run later)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != name and not name.startswith(prefix + "."):
                    found.add(prefix)
    return found


def test_no_import_circle() -> None:
    known = modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                raise AssertionError(
                    "import circle: " + " -> ".join(path[path.index(dep) :] + [dep])
                )
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_checker_sees_a_circle(tmp_path) -> None:
    """Not a test that cannot fail: the same walk finds a circle through a package __init__."""
    root = tmp_path / "autocompress"
    (root / "a").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a" / "__init__.py").write_text("from autocompress.a.x import f\n")
    (root / "a" / "x.py").write_text("from autocompress.b import g\n")
    (root / "b.py").write_text("from autocompress.a.y import h\n")
    (root / "a" / "y.py").write_text("")
    known = {
        "autocompress": root / "__init__.py",
        "autocompress.a": root / "a" / "__init__.py",
        "autocompress.a.x": root / "a" / "x.py",
        "autocompress.a.y": root / "a" / "y.py",
        "autocompress.b": root / "b.py",
    }
    assert "autocompress.a" in _imports("autocompress.b", known["autocompress.b"], known)
    assert "autocompress.b" in _imports("autocompress.a.x", known["autocompress.a.x"], known)


def _code_lines(path: Path) -> dict[int, str]:
    """The file's code by line, without comments and strings (docstrings that name a private
    attribute to say it is not used, or a file format's strings, are not uses)."""
    lines: dict[int, list[str]] = {}
    with path.open("rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type in (tokenize.COMMENT, tokenize.STRING, tokenize.ENCODING):
                continue
            lines.setdefault(token.start[0], []).append(token.string)
    return {n: " ".join(parts).replace(" . ", ".") for n, parts in lines.items()}


def test_private_names_of_other_libraries_only_in_their_adapters() -> None:
    found = []
    for path in modules().values():
        relative = str(path.relative_to(PACKAGE))
        for number, code in _code_lines(path).items():
            if PRIVATE.search(code) and relative not in ADAPTERS:
                found.append(f"{relative}:{number}: {code}")
    assert not found, "private names outside their adapter:\n" + "\n".join(found)
    for relative in ADAPTERS:  # and each adapter says why
        assert "why" in (PACKAGE / relative).read_text(), relative


def test_the_private_name_check_sees_a_use(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text('"""study._storage in a docstring is fine"""\nx = study._storage  # a use\n')
    assert [n for n, code in _code_lines(path).items() if PRIVATE.search(code)] == [2]
