"""The import graph of facerefl follows the package map in the README.

Every module is parsed (not imported); every ``import`` and ``from ... import`` counts,
at the top or inside a function, as do ``importlib.import_module("facerefl....")`` calls.
A part may import itself, the base modules and the parts listed for it in :data:`MAY_IMPORT`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import facerefl

PACKAGE = Path(facerefl.__file__).parent

#: Top-level modules every part may use; they import only each other.
BASE = {"errors", "fsutil", "assets", "resources"}

#: What each part may import besides itself and BASE (the README's package map).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "fsutil": set(),
    "assets": set(),
    "resources": set(),
    "render": set(),
    "geometry": {"render"},
    "data": {"render", "geometry"},
    "models": {"render", "data"},
    "fit": {"render", "geometry", "models"},
    "export": {"render", "geometry"},
    "eval": {"render", "geometry", "data", "models", "fit", "export"},
    "tasks": {"render", "geometry", "data", "models", "fit", "export", "eval"},
}

def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of the modules ``source`` (the text of ``module``) imports, wherever
    the import sits; for ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names.add(origin)
            names.update(f"{origin}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return names


def part_of(name: str) -> str | None:
    """The part of the package that module ``name`` belongs to (None outside facerefl;
    ``""`` for the package itself)."""
    parts = name.split(".")
    if parts[0] != "facerefl":
        return None
    if len(parts) == 1:
        return ""
    return parts[1] if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file() else None


def package_modules() -> dict[str, tuple[str, bool]]:
    """Every module of the package: name -> (source, is a package ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path.read_text(encoding="utf-8"), is_package)
    return found


def test_the_parser_sees_imports_inside_functions_and_relative_ones():
    source = ("import os\nfrom . import sh\n"
              "def f():\n    from facerefl.fit.loop import FitSettings\n"
              "    return importlib.import_module('facerefl.tasks.optimize')\n")
    names = imported_modules(source, "facerefl.render.shading")
    assert {"facerefl.render.sh", "facerefl.fit.loop", "facerefl.tasks.optimize"} <= names
    assert {part_of(n) for n in names} >= {"render", "fit", "tasks"}


def test_every_part_is_in_the_map():
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    parts |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert parts <= set(MAY_IMPORT), f"add {sorted(parts - set(MAY_IMPORT))} to the map"
    assert not [p for p in PACKAGE.rglob("bench.py")], "benchmarks live in bench/, outside the package"


def test_imports_follow_the_map():
    wrong, seen = [], set()
    for module, (source, is_package) in package_modules().items():
        own = part_of(module)
        # the package root holds only __version__; `from facerefl import assets` passes through it
        allowed = {"", own, *BASE, *MAY_IMPORT.get(own, set())} if own else {""}
        for name in sorted(imported_modules(source, module, is_package)):
            root = name.split(".")[0]
            if root in ("bench", "tests"):
                wrong.append(f"{module} imports {name} (the library never imports benchmarks or tests)")
            target = part_of(name)
            if target is not None and target not in allowed and (module, target) not in seen:
                seen.add((module, target))
                wrong.append(f"{module} imports {name} ({own} may not import {target})")
    assert not wrong, "imports against the README's package map:\n" + "\n".join(wrong)
