"""The built-in tools, each switched on by the user (none by default) and none touching the network: a calculator,
the date and time, reading files from folders the user granted, searching the history, searching document
collections.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.tools.spec import Tool, ToolError

MAX_EXPRESSION_CHARS = 500
MAX_RESULT_BITS = 4096  # an integer result (or operand of ** and *) of more bits than this is refused: ~1,233 digits
MAX_FILE_BYTES = 256 * 1024  # a file read whole; beyond it the first part, with a note
MAX_LISTED = 200  # entries of a folder listed
SEARCH_HITS = 5

# -- calculator -------------------------------------------------------------------------------------------------


def _bits(value: Any) -> float:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _power(base: Any, exponent: Any) -> Any:
    """`**` whose result cannot be huge: 10 ** 10 ** 10 would take the process's memory and minutes."""
    if (
        isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
        and exponent * math.log2(abs(base)) > MAX_RESULT_BITS
    ):  # fmt: skip
        raise ToolError("The result is too large to compute; use smaller numbers or floats (2.0 ** 5000).")
    if isinstance(exponent, int | float) and abs(exponent) > 1_000_000:
        raise ToolError("The exponent is too large to compute.")
    return operator.pow(base, exponent)


def _multiply(a: Any, b: Any) -> Any:
    if _bits(a) + _bits(b) > MAX_RESULT_BITS:
        raise ToolError("The result is too large to compute; use floats for very large numbers.")
    if isinstance(a, str | list) or isinstance(b, str | list):
        raise ToolError("The calculator computes with numbers only.")
    return operator.mul(a, b)


def _shift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > MAX_RESULT_BITS:
        raise ToolError("The result is too large to compute.")
    return operator.lshift(a, b)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name)
    for name in (
        "sqrt",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "exp",
        "log",
        "log2",
        "log10",
        "floor",
        "ceil",
        "fabs",
        "hypot",
        "degrees",
        "radians",
        "gcd",
    )
} | {"abs": abs, "round": round, "min": min, "max": max, "int": int, "float": float}
_NAMES = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def calculate(expression: str) -> str:
    """Evaluates an arithmetic expression with simpleeval (no names but math's, no attributes, no calls but the
    math functions above) and our limits on how large a number may grow; one sentence when it cannot."""
    import simpleeval

    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("Give an arithmetic expression, such as 2 * (3 + 4).")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    operators = {
        ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _multiply, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power, ast.USub: operator.neg,
        ast.UAdd: operator.pos, ast.LShift: _shift, ast.RShift: operator.rshift, ast.Eq: operator.eq,
        ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    }  # fmt: skip
    evaluator = simpleeval.SimpleEval(operators=operators, functions=dict(_FUNCTIONS), names=dict(_NAMES))
    try:
        value = evaluator.eval(expression.replace("^", "**"))  # models write ^ for powers more often than for xor
    except ToolError:
        raise
    except ZeroDivisionError:
        raise ToolError("The expression divides by zero.") from None
    except (OverflowError, MemoryError):
        raise ToolError("The result is too large to compute.") from None
    except SyntaxError:
        raise ToolError("The expression is not valid arithmetic.") from None
    except simpleeval.InvalidExpression as exc:
        reason = str(exc).split(", for expression")[0].rstrip(".")
        raise ToolError(f"The expression cannot be computed ({reason}).") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ToolError(f"The expression cannot be computed ({type(exc).__name__}).") from None
    if not isinstance(value, int | float | bool):
        raise ToolError("The calculator computes with numbers only.")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def calculator_tool() -> Tool:
    return Tool(
        "calculator",
        "Evaluate an arithmetic expression exactly (+ - * / // % **, parentheses, sqrt, sin, cos, tan, log, exp, "
        "pi, e, round, min, max). Use it for any arithmetic instead of computing in your head.",
        {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "for example 12 * (3 + 4)"}},
            "required": ["expression"],
        },
        lambda args: calculate(args.get("expression", "")),
    )


# -- date and time ----------------------------------------------------------------------------------------------


def now_text(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now().astimezone()
    zone = now.tzname() or "local"
    return f"{now:%A, %d %B %Y, %H:%M:%S} (time zone {zone}, UTC{now:%z}); ISO 8601: {now.isoformat()}"


def time_tool() -> Tool:
    return Tool(
        "current_time",
        "The current local date, time and time zone of the user's computer.",
        {"type": "object", "properties": {}},
        lambda _args: now_text(),
    )


# -- files in granted folders -----------------------------------------------------------------------------------


def inside(root: Path, path: str) -> Path:
    """`path` (relative to `root`, or absolute) with every symlink and `..` resolved, when it lies within `root`
    (itself resolved); a ToolError otherwise. Resolving first is what keeps a symlink inside the folder from
    reaching outside it."""
    if not isinstance(path, str) or "\x00" in path:
        raise ToolError("Give a file's path as text.")
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(real_root / path))  # an absolute `path` replaces the root here
    if target != real_root and real_root not in target.parents:
        raise ToolError(f"{path} is outside the folders you may read.")
    return target


class FileReader:
    """Reads text files and lists folders within the folders the user granted, nothing else."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]

    def _resolve(self, path: str) -> Path:
        errors: list[str] = []
        for root in self.roots:
            try:
                target = inside(root, path)
            except ToolError as exc:
                errors.append(str(exc))
                continue
            if target.exists():
                return target
        if errors and len(errors) == len(self.roots):
            raise ToolError(errors[0])
        raise ToolError(f"There is no file {path} in the folders you may read.")

    def read(self, path: str) -> str:
        target = self._resolve(path)
        try:
            # O_NOFOLLOW: the path was resolved, so a symlink here means it was swapped in since; refuse it
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise ToolError(f"{path} cannot be read ({exc.strerror}).") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise ToolError(f"{path} is a folder; list it with list_files." if stat.S_ISDIR(info.st_mode) else
                            f"{path} is not a regular file.")  # fmt: skip
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if b"\x00" in data[:8192]:
            raise ToolError(f"{path} is not a text file.")
        text = data[:MAX_FILE_BYTES].decode("utf-8", "replace")
        if len(data) > MAX_FILE_BYTES:
            text += f"\n[… only the first {MAX_FILE_BYTES // 1024} KiB of {info.st_size:,} bytes were read]"
        return text

    def list_folder(self, path: str = ".") -> str:
        if path in ("", ".") and len(self.roots) > 1:
            return "\n".join(str(r) + "/" for r in self.roots)
        target = self._resolve(path or ".")
        if not target.is_dir():
            raise ToolError(f"{path} is not a folder.")
        try:
            entries = sorted(os.scandir(target), key=lambda e: e.name)
        except OSError as exc:
            raise ToolError(f"{path} cannot be listed ({exc.strerror}).") from None
        lines = [e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries[:MAX_LISTED]]
        if len(entries) > MAX_LISTED:
            lines.append(f"[… and {len(entries) - MAX_LISTED} more]")
        return "\n".join(lines) or "(empty folder)"

    def tools(self) -> list[Tool]:
        where = ", ".join(str(r) for r in self.roots)
        path = {"type": "string", "description": "a path relative to the folder, or an absolute path inside it"}
        return [
            Tool("read_file", f"Read a text file from the folders the user shared ({where}).",
                 {"type": "object", "properties": {"path": path}, "required": ["path"]},
                 lambda args: self.read(args.get("path", ""))),
            Tool("list_files", f"List the files of a folder the user shared ({where}).",
                 {"type": "object", "properties": {"path": path}},
                 lambda args: self.list_folder(args.get("path", "."))),
        ]  # fmt: skip


# -- searching the history and documents -----------------------------------------------------------------------


def history_tool(search: Callable[..., list[Any]]) -> Tool:
    """Searches the history with `search` (History.search of a connection the calling thread owns)."""
    from llamadesk.core.history import MARK_END, MARK_START

    def run(args: dict[str, Any]) -> str:
        query = args.get("query", "")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("Give words to search for.")
        try:
            hits = search(query, limit=SEARCH_HITS, order="relevance")
        except LlamaDeskError as exc:
            raise ToolError(str(exc)) from None
        if not hits:
            return f"Nothing in the history matches {query!r}."
        lines = []
        for hit in hits:
            when = dt.datetime.fromtimestamp(hit.created_at).strftime("%Y-%m-%d")
            snippet = hit.snippet.replace(MARK_START, "").replace(MARK_END, "")
            lines.append(f"- {hit.title!r} ({when}): {snippet}")
        return "\n".join(lines)

    return Tool(
        "search_history",
        "Search the user's earlier conversations for words; gives the best matches with their titles and dates.",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        run,
    )


def documents_tool(collections: Sequence[str]) -> Tool:
    """Searches the named document collections (core/documents), each opened for the call."""
    from llamadesk.core.documents import search as doc_search
    from llamadesk.core.documents.context import place
    from llamadesk.core.documents.store import open_collection

    names = list(collections)

    def run(args: dict[str, Any]) -> str:
        query = args.get("query", "")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("Give words to search for.")
        found: list[tuple[str, Any]] = []
        for name in names:
            try:
                with open_collection(name) as collection:
                    found += [(name, hit) for hit in doc_search.search(collection, query, SEARCH_HITS)]
            except LlamaDeskError as exc:
                raise ToolError(str(exc)) from None
        if not found:
            return f"No passage of {', '.join(names)} matches {query!r}."
        found.sort(key=lambda pair: -pair[1].score)
        return "\n\n".join(f"[{n}] {place(hit.path, hit.page, hit.line)}:\n{hit.text}"
                           for n, (_name, hit) in enumerate(found[:SEARCH_HITS], 1))  # fmt: skip

    return Tool(
        "search_documents",
        f"Search the user's document collections ({', '.join(names)}) for passages about a question.",
        {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        run,
    )


def builtin_tools(specs: Sequence[str], *, search_history: Callable[..., list[Any]] | None = None) -> list[Tool]:
    """The tools `--tool` options name: calculator, time, files:DIR (repeatable: one reader for every folder),
    history, documents:NAME[,NAME]. A ToolError says what is wrong with a spec."""
    tools: list[Tool] = []
    folders: list[Path] = []
    collections: list[str] = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        kind = kind.strip().lower()
        if kind == "calculator" and not arg:
            tools.append(calculator_tool())
        elif kind == "time" and not arg:
            tools.append(time_tool())
        elif kind == "files":
            folder = Path(arg).expanduser()
            if not arg or not folder.is_dir():
                raise ToolError(f"{arg} is not a folder." if arg else "Name the folder the model may read: files:DIR.")
            folders.append(folder)
        elif kind == "history" and not arg:
            if search_history is None:
                raise ToolError("Searching the history needs the history; leave out --no-history.")
            tools.append(history_tool(search_history))
        elif kind == "documents":
            names = [n.strip() for n in arg.split(",") if n.strip()]
            if not names:
                raise ToolError("Name the collections the model may search: documents:NAME[,NAME].")
            collections += names
        else:
            raise ToolError(f"Unknown tool {spec!r}; choose calculator, time, files:DIR, history or documents:NAME.")
    if folders:
        tools += FileReader(folders).tools()
    if collections:
        tools.append(documents_tool(list(dict.fromkeys(collections))))
    return tools


# What `llamadesk tools list` shows: each built-in's --tool spec and what it does.
BUILTIN_HELP = (
    ("calculator", "evaluate arithmetic exactly (simpleeval, with limits on the size of numbers)"),
    ("time", "the current local date, time and time zone"),
    ("files:DIR", "read_file and list_files within DIR (and the other folders given), nothing outside"),
    ("history", "search_history: search your earlier conversations"),
    ("documents:NAME[,NAME]", "search_documents: search these document collections (llamadesk docs)"),
)
