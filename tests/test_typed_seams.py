"""The seams between rooms are typed: mypy can only check a project, store or settings it knows the type of."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "apprentice"
SEAM_NAMES = {"project", "store", "settings"}


def _untyped_seams(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign):
            name = node.arg if isinstance(node, ast.arg) else getattr(node.target, "id", "")
            annotation = node.annotation
        elif isinstance(node, ast.FunctionDef) and node.name in SEAM_NAMES:
            name, annotation = node.name, node.returns
        else:
            continue
        if name in SEAM_NAMES and annotation is not None and ast.unparse(annotation) in {"Any", "Any | None"}:
            found.append(f"{name}: {ast.unparse(annotation)} (line {node.lineno})")
    return found


def test_no_project_store_or_settings_is_typed_any() -> None:
    offenders = {
        str(path.relative_to(SOURCE)): seams
        for path in sorted(SOURCE.rglob("*.py"))
        if (seams := _untyped_seams(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}
