"""The UI's doors: pages speak only through ``backend``, and ``backend`` only through
``syncrox.client`` (and the pure protocol and config modules), like any client."""

from __future__ import annotations

import ast
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SERVER_SIDE = ("syncrox.services", "syncrox.store", "syncrox.sandbox", "syncrox.net.tcp")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pages_import_no_syncrox_module() -> None:
    pages = sorted((FRONTEND / "views").glob("*.py"))
    assert pages
    for page in pages:
        direct = {name for name in imported(page) if name.split(".")[0] == "syncrox"}
        assert not direct, f"{page.name} reaches past backend: {sorted(direct)}"


def test_the_ui_never_imports_the_server_side() -> None:
    for module in sorted(FRONTEND.rglob("*.py")):
        server = {name for name in imported(module) if name.startswith(SERVER_SIDE)}
        assert not server, f"{module.relative_to(FRONTEND)} imports {sorted(server)}"
