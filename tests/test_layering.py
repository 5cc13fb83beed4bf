"""Rule: dependencies go one way, and no module uses another module's private names.

The dispatcher gets what it needs from the office through a small explicit interface
(:class:`humasflow.publishing.dispatch.PostingOffice`); it does not import the office,
and nothing outside ``office.py`` reaches into an office's private attributes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import humasflow

SRC = Path(humasflow.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))


def _imports(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.ImportFrom, ast.Import))]


def test_the_dispatcher_does_not_import_the_office():
    tree = ast.parse((SRC / "publishing" / "dispatch.py").read_text("utf-8"))
    imported = set()
    for node in _imports(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
        else:
            imported.update(alias.name for alias in node.names)
    assert "humasflow.office" not in imported
    assert "humasflow.cli" not in imported


def test_no_module_imports_a_private_name_of_another():
    offenders = []
    for path in MODULES:
        for node in _imports(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                continue
            package = SRC.parent / (node.module or "").replace(".", "/")
            for alias in node.names:
                if (package / f"{alias.name}.py").is_file():
                    continue  # a private module of the package, e.g. humasflow._input
                if alias.name == "_" and node.module == "humasflow.i18n":
                    continue  # gettext's conventional name for the translation function
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offenders.append(f"{path.relative_to(SRC)}: {node.module}.{alias.name}")
    assert offenders == []


def test_nothing_outside_the_office_touches_its_private_attributes():
    offenders = []
    for path in MODULES:
        if path.name == "office.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and ast.unparse(node.value).split(".")[-1] == "office"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: "
                                 f"{ast.unparse(node)}")
    assert offenders == []
