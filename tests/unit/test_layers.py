"""The layer rule, read from the code's own imports (docs/architecture.md).

``schemas`` is the bottom: the contract, settings and Kafka client configuration, importing none of the others.
``producers`` (on the lab machines), ``sinks`` and ``streams`` each build on ``schemas`` alone, so the lab
emitter never drags in the worker's stack and a sink can change without the worker noticing. ``cact`` is the
one composition root that may import them all; nothing imports it. Every import counts, also one inside a
function or behind ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "producers", "sinks", "streams", "cact")
ALLOWED = {
    "schemas": {"schemas"},
    "producers": {"schemas", "producers"},
    "sinks": {"schemas", "sinks"},
    "streams": {"schemas", "streams"},
    "cact": set(PACKAGES),
}
#: What the lab emitter may import beyond the standard library and its own packages (pyproject's "lab" extra).
WORKER_STACK = ("faust", "aiokafka", "sqlalchemy", "alembic", "psycopg", "mode")


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every absolute import in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def edges() -> Iterator[tuple[str, str, int, str]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in imported(path):
                if module in PACKAGES:
                    yield package, str(path.relative_to(ROOT)), line, module


def test_every_package_imports_only_the_layers_below_it() -> None:
    wrong = [f"{file}:{line} imports {module}" for package, file, line, module in edges()
             if module not in ALLOWED[package]]
    assert not wrong, "imports against the layer rule (docs/architecture.md):\n" + "\n".join(wrong)


def test_the_rule_sees_every_package() -> None:
    """A rule that reads no file passes whatever the code does: each package must contribute imports."""
    seen = {package for package, *_ in edges()}
    assert seen == set(PACKAGES)


@pytest.mark.parametrize("module", ["producers/emitter.py", "producers/lab_cli.py", "producers/spool.py",
                                    "producers/batching.py"])
def test_the_lab_side_needs_none_of_the_worker_stack(module: str) -> None:
    """Lab machines install ``pip install '.[lab]'``: the emitter must not import Faust, aiokafka or the store."""
    heavy = [f"{module}:{line} imports {name}" for line, name in imported(ROOT / module) if name in WORKER_STACK]
    assert not heavy
