"""The house's rules, checked: core is Qt-free and importable without a display; ui never reaches llama_cpp/sqlite3."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "llamadesk"


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_core_and_server_never_import_qt() -> None:
    for folder in ("core", "server"):
        offenders = {p for p, names in _imports(ROOT / folder).items() if names & {"PySide6", "shiboken6"}}
        assert not offenders, folder


def test_ui_never_imports_llama_cpp_or_sqlite() -> None:
    offenders = {p for p, names in _imports(ROOT / "ui").items() if names & {"llama_cpp", "sqlite3"}}
    assert not offenders


def test_core_and_cli_import_without_loading_qt() -> None:
    code = (
        "import sys, llamadesk.cli, llamadesk.core.engines.local, llamadesk.core.history; "
        "sys.exit(1 if any(m.startswith('PySide6') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_gui_threads_are_made_only_in_ui_workers() -> None:
    makers = ("QThread(", "QThreadPool(", "threading.Thread(", "Thread(")
    offenders = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "ui").rglob("*.py")
        if p.parent.name != "workers" and any(m in p.read_text(encoding="utf-8") for m in makers)
    }
    assert not offenders


def test_the_window_starts_without_the_heavy_stacks() -> None:
    """Cold start (goal ≤ 1 s, bench/bench_engine.py): numpy/gguf, the Hub and HTTP stacks, the server and llama.cpp
    load when a feature first needs them, not while the window opens."""
    heavy = ("numpy", "gguf", "starlette", "uvicorn", "httpx2", "huggingface_hub", "psutil", "llama_cpp", "keyring")
    code = (
        "import sys, llamadesk.ui.app, llamadesk.ui.main_window; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == []


def _module_graph() -> dict[str, set[str]]:
    """LlamaDesk's modules → the LlamaDesk modules they import (lazily, or for the type checker, too); `from p import
    name` counts as importing p.name when that is a module, else p."""
    from llamadesk import import_sweep

    modules = set(import_sweep.llamadesk_modules())
    graph: dict[str, set[str]] = {}
    for module in modules:
        targets: set[str] = set()
        for name, items in import_sweep.import_statements(module):
            subs = {f"{name}.{item}" for item in items} & modules
            targets |= subs or ({name} & modules)
            if subs != {f"{name}.{item}" for item in items} and name in modules:
                targets.add(name)  # some names come from the package itself
        graph[module] = targets - {module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_circles() -> None:
    """Not one, lazy imports and those for the type checker included: the window's parts take a WindowState and
    the widgets they use, never MainWindow (ui/window_state.py)."""
    assert _circles(_module_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [{"a", "b", "c"}]
