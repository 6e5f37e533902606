"""The package's import graph: no cycle, and no operation importing another one unless listed here.

Imports are read with `ast` (those inside functions included; those under
`if TYPE_CHECKING:` left out, they never run), so a lazy import cannot hide a
cycle. What several operations share belongs in a non-op module with one job
(`layout`, `history`, `pins`, `backup_rows`, `stored_snapshot`), not in one of
the operations.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dr_tasks

PACKAGE = Path(dr_tasks.__file__).parent

# (importer, imported) -> why an operation composes another on purpose.
ALLOWED_OPS_IMPORTS: dict[tuple[str, str], str] = {
    **{
        ("drill", op): "the drill runs every operation end to end"
        for op in ("backup", "recover", "restore", "rollback", "snapshot", "verify", "versioning")
    },
    ("rollback", "snapshot"): "a rollback takes a safety snapshot first",
    ("verify", "freshness"): "dr.verify reports the freshness checks",
    ("verify", "versioning"): "dr.verify reports the bucket's versioning",
    ("recover", "backup"): "dr.recover reads back what dr.backup wrote (its state, its engine settings)",
}
# Modules under ops/ that are no operation: any operation may import them.
OPS_HELPERS: dict[str, str] = {
    "leasing": "the one helper every writing operation takes the lease through",
}
# Modules split out of an operation by job: they are that operation. (A package,
# such as ops/restore/, is one operation with its submodules.)
OPS_PARTS: dict[str, str] = {
    "backup_plan": "backup",
    "backup_state": "backup",
    "drill_live": "drill",
    "drill_proof": "drill",
    "rollback_plan": "rollback",
}


def _operation(name: str) -> str:
    head = name.split(".")[0]
    return OPS_PARTS.get(head, head)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports, wherever in the file the import is."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                visit_orelse(child)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                for alias in child.names:
                    sub = f"{mod}.{alias.name}"
                    found.add(sub if sub in modules else mod)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    def visit_orelse(node: ast.If) -> None:
        for child in node.orelse:
            visit(ast.Module(body=[child], type_ignores=[]))

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def ops_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importing operation, imported operation) pairs; an operation's own parts and the helpers are left out."""
    prefix = "dr_tasks.ops."
    pairs = {
        (_operation(src[len(prefix) :]), _operation(dst[len(prefix) :]))
        for src, dsts in graph.items()
        if src.startswith(prefix)
        for dst in dsts
        if dst.startswith(prefix) and dst[len(prefix) :] not in OPS_HELPERS
    }
    return {(a, b) for a, b in pairs if a != b}


def test_the_graph_is_read() -> None:
    graph = import_graph()
    # Top-level, relative, lazy (inside a function) and `from .. import x` forms are all seen.
    assert "dr_tasks.layout" in graph["dr_tasks.ops.prune"]
    assert "dr_tasks.ops.snapshot" in graph["dr_tasks.ops.drill"]
    assert "dr_tasks.config" in graph["dr_tasks.ops.drill"]
    assert "dr_tasks.ops.prune" in graph["dr_tasks.tasks.maintenance"]
    # The layout names the config only for type checkers.
    assert "dr_tasks.config" not in graph["dr_tasks.layout"]


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_operations_import_no_other_operation_unless_listed() -> None:
    unlisted = sorted(ops_imports(import_graph()) - set(ALLOWED_OPS_IMPORTS))
    assert unlisted == [], "move what these share into a non-op module, or list a deliberate composition"


def test_every_listed_ops_import_still_exists() -> None:
    # A stale entry would let that import come back unnoticed.
    graph = import_graph()
    assert sorted(set(ALLOWED_OPS_IMPORTS) - ops_imports(graph)) == []
    assert all(f"dr_tasks.ops.{helper}" in graph for helper in OPS_HELPERS)


def test_cycles_and_sideways_imports_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert ops_imports({"dr_tasks.ops.x": {"dr_tasks.ops.y", "dr_tasks.index", "dr_tasks.ops.leasing"}}) == {("x", "y")}
    # A package's submodules and an operation's split-out parts are that operation; across operations they count.
    assert ops_imports({"dr_tasks.ops.restore": {"dr_tasks.ops.restore.scope"}}) == set()
    assert ops_imports({"dr_tasks.ops.backup": {"dr_tasks.ops.backup_state"}}) == set()
    assert ops_imports({"dr_tasks.ops.recover": {"dr_tasks.ops.backup_state", "dr_tasks.ops.restore.diff"}}) == {
        ("recover", "backup"),
        ("recover", "restore"),
    }


def test_a_restore_loads_neither_the_index_nor_the_lease() -> None:
    # Start-up is most of a one-unit restore's time (bench/README.md finding 17):
    # a reader that writes no row and takes no lease does not load their modules.
    # Each is loaded where it is needed: a snapshot id as TS, a dead restore's staging dir.
    # The sweep for dead restores' staging dirs runs as a restore ends, over its own staging dir too.
    code = (
        "import os, sys, tempfile, pathlib, dr_tasks.tasks, dr_tasks.ops.restore, dr_tasks.transport.crt_engine\n"
        "from dr_tasks.ops.restore.holding import sweep_dead_staging\n"
        "root = pathlib.Path(tempfile.mkdtemp())\n"
        "(root / f'.u07.partial-{os.getpid()}-x').mkdir()\n"
        "sweep_dead_staging(root)\n"
        "assert (root / f'.u07.partial-{os.getpid()}-x').is_dir()\n"
        "print(' '.join(m for m in sys.modules if m.startswith(('dr_tasks.index', 'dr_tasks.rows',"
        " 'dr_tasks.history', 'dr_tasks.lease'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
