"""Imports every LlamaDesk module and every module they import, lazily or not: proof that a (frozen) build has them all.

The frozen app runs it with `llamadesk --import-sweep` (packaging/pyinstaller/check_frozen.py); the packaging tests
run it in the development environment and hold its answer against the bundle's exclude list. The imports a module
makes inside functions are read from its bytecode (IMPORT_NAME), because a frozen app carries no sources; that is
what catches a dependency that is imported only on first use (the local server's uvicorn, the single-instance
QtNetwork) and was left out of the bundle.
"""

from __future__ import annotations

import dis
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import CodeType

import llamadesk

# Imported only on another OS; the sweep does not try them here.
OTHER_PLATFORMS: dict[str, frozenset[str]] = {
    "win32": frozenset({"fcntl", "termios", "pwd", "grp", "resource"}),
    "darwin": frozenset({"winreg", "msvcrt", "_winapi"}),
    "linux": frozenset({"winreg", "msvcrt", "_winapi"}),
}

# Imported by a library at run time by name, not by an import statement the sweep can read: what the app needs of
# them is named here. keyring chooses its backend when a key is first read; on Linux that is the Secret Service,
# which needs secretstorage (and cryptography, for the session's encryption).
RUNTIME_IMPORTS: dict[str, tuple[str, ...]] = {
    "linux": ("keyring.backends.SecretService", "secretstorage", "cryptography.hazmat.primitives.ciphers"),
    "darwin": ("keyring.backends.macOS",),
    "win32": ("keyring.backends.Windows",),
}


@dataclass
class SweepResult:
    modules: list[str] = field(default_factory=list)  # every LlamaDesk module imported
    imported: set[str] = field(default_factory=set)  # every name an import statement of LlamaDesk names
    failures: dict[str, str] = field(default_factory=dict)  # module → "ExcType: message"

    @property
    def loaded(self) -> set[str]:
        """Every module in the process after the sweep: the imports, and whatever they imported in turn."""
        return set(sys.modules)


def _platform() -> str:
    return "linux" if sys.platform.startswith("linux") else sys.platform


def llamadesk_modules() -> list[str]:
    """Every module of the package, the `__main__` entry points left out (importing one runs the app)."""
    names = [llamadesk.__name__]
    for info in pkgutil.walk_packages(llamadesk.__path__, prefix=llamadesk.__name__ + "."):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return sorted(names)


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_objects(const)


def import_statements(module: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each import statement of `module` as (absolute module name, names it takes from it), from its bytecode:
    top-level and function-level imports alike."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "get_code"):
        return []
    code = spec.loader.get_code(module)
    if code is None:
        return []
    package = module if spec.submodule_search_locations is not None else module.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for obj in _code_objects(code):
        consts: list[object] = []
        for ins in dis.get_instructions(obj):
            if ins.opname == "LOAD_CONST":
                consts.append(ins.argval)
                continue
            if ins.opname == "IMPORT_NAME" and len(consts) >= 2:
                level, fromlist = consts[-2], consts[-1]
                name = str(ins.argval)
                if isinstance(level, int) and level > 0:
                    name = importlib.util.resolve_name("." * level + name, package)
                items = tuple(str(i) for i in fromlist if i != "*") if isinstance(fromlist, tuple) else ()
                found.append((name, items))
            consts.clear()
    return found


def imports_in(module: str) -> set[str]:
    """The absolute names that `module`'s import statements name (`from a import b` gives a and a.b)."""
    found: set[str] = set()
    for name, items in import_statements(module):
        found.add(name)
        found.update(f"{name}.{item}" for item in items)
    return found


def _import(name: str) -> str | None:
    """None when `name` imports; else why not. `a.b` where b is an attribute, not a module, of a counts as found."""
    try:
        importlib.import_module(name)
        return None
    except ModuleNotFoundError as exc:
        parent, _, attr = name.rpartition(".")
        if parent and exc.name == name:
            try:
                if hasattr(importlib.import_module(parent), attr):
                    return None  # `from parent import attr` of a function or class
            except Exception as inner:
                return f"{type(inner).__name__}: {inner}"
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a module that fails on import for any other reason is as broken in the bundle
        return f"{type(exc).__name__}: {exc}"


def sweep() -> SweepResult:
    """Imports LlamaDesk's modules, then everything their import statements name, then RUNTIME_IMPORTS."""
    result = SweepResult(modules=llamadesk_modules())
    for module in result.modules:
        if (why := _import(module)) is not None:
            result.failures[module] = why
            continue
        result.imported |= imports_in(module)
    skip = OTHER_PLATFORMS.get(_platform(), frozenset())
    wanted = sorted(n for n in result.imported if n.split(".")[0] not in skip) + list(
        RUNTIME_IMPORTS.get(_platform(), ())
    )
    for name in wanted:
        if name not in result.failures and (why := _import(name)) is not None:
            result.failures[name] = why
    return result


def main() -> int:
    """`llamadesk --import-sweep`: one line per module that does not import; exit 1 if any."""
    result = sweep()
    for name, why in sorted(result.failures.items()):
        print(f"import-sweep: {name}: {why}", file=sys.stderr)
    print(
        f"import-sweep: {len(result.modules)} LlamaDesk modules, {len(result.imported)} imported names, "
        f"{len(result.failures)} failed"
    )
    return 1 if result.failures else 0
