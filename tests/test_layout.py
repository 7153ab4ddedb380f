"""The package layout is the architecture: imports run one way and never in a circle.

Layers, highest first (README "Architecture"):

    cli → ops → context → {acme, challenges, store, notify, net} → {pki, policy, config}
        → {reporting, models, errors}

A module may import its own layer or any lower one, never a higher one. Every
import counts, also those inside functions (lazy, for start-up speed) and under
`if TYPE_CHECKING:`: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "certctl"

LAYERS: list[tuple[str, ...]] = [
    ("cli", "__main__"),
    ("ops",),
    ("context",),
    ("acme", "challenges", "store", "notify", "net"),
    ("pki", "policy", "config"),
    ("reporting", "models", "errors", "__init__"),
]
RANK = {part: len(LAYERS) - i for i, parts in enumerate(LAYERS) for part in parts}

# Third-party libraries that belong to one part only.
OWNED = {"click": "cli", "rich": "cli", "acme": "acme", "josepy": "acme"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """Every module imported by `path` (absolute or relative), with its line."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in known else base, node.lineno))
    return found


def part_of(module: str) -> str:
    """The layer key of a certctl module: its first component under certctl."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {
        name: [(m, line) for m, line in imports_of(path, name, known) if m.startswith("certctl")]
        for name, path in mods.items()
    }


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({part_of(m) for m in modules()} - set(RANK))
    assert unplaced == [], f"give these a layer in LAYERS and the README: {unplaced}"


def test_imports_never_go_up_a_layer() -> None:
    wrong = []
    for name, targets in graph().items():
        here = RANK[part_of(name)]
        for target, line in targets:
            there = RANK.get(part_of(target), 0)
            if there > here:
                wrong.append(f"{name}:{line} imports {target} (a higher layer)")
    assert wrong == []


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle met by a depth-first walk, as a path that ends where it began."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles() -> None:
    edges = {name: {t for t, _ in targets if t != name} for name, targets in graph().items()}
    cycles = find_cycles(edges)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_one() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("library", sorted(OWNED))
def test_libraries_stay_in_their_part(library: str) -> None:
    owner = OWNED[library]
    known = set(modules())
    outside = [
        f"{name}:{line}"
        for name, path in modules().items()
        if part_of(name) != owner
        for target, line in imports_of(path, name, known)
        if target == library or target.startswith(library + ".")
    ]
    assert outside == [], f"only certctl.{owner} may import {library}: {outside}"


def test_modules_and_classes_stay_small() -> None:
    too_big = []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > 600:
            too_big.append(f"{name}: {lines} lines (limit 600)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 300:
                    too_big.append(f"{name}.{node.name}: {size} lines (limit 300)")
    assert too_big == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The walk itself works: an upward import and a relative import are both found."""
    fake = tmp_path / "certctl" / "pki"
    fake.mkdir(parents=True)
    module = fake / "x.py"
    module.write_text("def f():\n    from ..ops import obtain\n    import certctl.cli.app\n")
    found = imports_of(module, "certctl.pki.x", {"certctl.ops.obtain"})
    assert ("certctl.ops.obtain", 2) in found
    assert ("certctl.cli.app", 3) in found
    assert RANK[part_of("certctl.ops.obtain")] > RANK[part_of("certctl.pki.x")]
