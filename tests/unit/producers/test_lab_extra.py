"""``pip install '.[lab]'`` installs everything the lab side imports: the base dependencies and the ``lab``
extra must name the distribution of every third-party module ``producers/`` and ``schemas/`` import.

The other half, that the lab side imports nothing of the worker's stack, is tests/unit/test_layers.py and,
run in a child interpreter without that stack, tests/integration/producers/test_lab_install.py.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
OWN = {"producers", "schemas", "sinks", "streams", "cact"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def lab_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"]}


def third_party_imports() -> dict[str, str]:
    """Top-level module → first file importing it, for every non-stdlib, non-project import of the lab side."""
    found: dict[str, str] = {}
    for package in ("producers", "schemas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                         else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN and top != "__future__":
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_module_the_lab_side_imports_is_installed_by_the_lab_extra() -> None:
    distributions = packages_distributions()
    wanted = lab_requirements()
    imports = third_party_imports()
    assert "kafka" in imports and "pydantic" in imports  # the scan sees the emitter's client and the contract
    missing = []
    for module, where in imports.items():
        provided_by = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not provided_by & wanted:
            missing.append(f"{where} imports {module} ({', '.join(sorted(provided_by)) or 'no distribution'})")
    assert not missing, "add to pyproject's dependencies or its [lab] extra:\n" + "\n".join(missing)
