"""MCP servers the user added, in `mcp.json` of the `mcpServers` shape LM Studio and Claude Desktop use:

    {"mcpServers": {"files": {"command": "npx", "args": ["-y", "…"], "env": {"KEY": "…"}},
                    "remote": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "…"}}}}

A server with `command` runs over stdio as a child process; one with `url` is reached over streamable HTTP. The file
lives in the config folder (paths.get_paths()); LM Studio's and Claude Desktop's files can be imported into it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.paths import get_paths

CONFIG_NAME = "mcp.json"
MAX_CONFIG_BYTES = 1024 * 1024
_NAME = re.compile(r"[\w.\- ]{1,64}")


class McpConfigError(LlamaDeskError):
    """An mcp.json that cannot be read or a server entry that cannot work."""


@dataclass(frozen=True)
class ServerConfig:
    """One server: stdio (`command`, `args`, `env`, `cwd`) or streamable HTTP (`url`, `headers`)."""

    name: str
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    disabled: bool = False

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    def describe(self) -> str:
        return " ".join([self.command, *self.args]) if self.command else self.url

    def to_json(self) -> dict[str, Any]:
        if self.command:
            out: dict[str, Any] = {"command": self.command, "args": list(self.args)}
            if self.env:
                out["env"] = dict(self.env)
            if self.cwd:
                out["cwd"] = self.cwd
        else:
            out = {"url": self.url}
            if self.headers:
                out["headers"] = dict(self.headers)
        if self.disabled:
            out["disabled"] = True
        return out

    @classmethod
    def from_json(cls, name: str, entry: Any) -> ServerConfig:
        """One entry of `mcpServers`; McpConfigError with one sentence when it cannot work."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise McpConfigError(f"The MCP server name {str(name)[:40]!r} is not usable; use letters, digits, - _ .")
        if not isinstance(entry, Mapping):
            raise McpConfigError(f"The MCP server {name!r} is not described by an object.")
        kind = str(entry.get("type", entry.get("transport", ""))).lower()
        if kind == "sse":
            raise McpConfigError(f"The MCP server {name!r} uses the old SSE transport; LlamaDesk speaks stdio and "
                                 "streamable HTTP.")  # fmt: skip
        disabled = bool(entry.get("disabled", False))
        command, url = entry.get("command"), entry.get("url", entry.get("serverUrl"))
        if isinstance(command, str) and command.strip():
            args = entry.get("args", [])
            env = entry.get("env", {})
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise McpConfigError(f"The MCP server {name!r} has args that are not a list of strings.")
            if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
                raise McpConfigError(f"The MCP server {name!r} has env values that are not strings.")
            cwd = entry.get("cwd")
            return cls(name, command=command, args=tuple(args), env={str(k): v for k, v in env.items()},
                       cwd=cwd if isinstance(cwd, str) and cwd else None, disabled=disabled)  # fmt: skip
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            headers = entry.get("headers", {})
            if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
                raise McpConfigError(f"The MCP server {name!r} has headers that are not strings.")
            return cls(name, url=url, headers={str(k): v for k, v in headers.items()}, disabled=disabled)
        raise McpConfigError(f"The MCP server {name!r} has neither a command nor an http(s) url.")


def config_path() -> Path:
    return get_paths().config / CONFIG_NAME


def parse(text: str, where: str) -> tuple[list[ServerConfig], list[str]]:
    """The servers of an mcp.json text, and one sentence per entry that cannot work (the others still load)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise McpConfigError(f"{where} is not valid JSON ({exc.msg} on line {exc.lineno}).") from None
    servers = data.get("mcpServers", {}) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f'{where} has no "mcpServers" object.')
    found: list[ServerConfig] = []
    problems: list[str] = []
    for name, entry in servers.items():
        try:
            found.append(ServerConfig.from_json(name, entry))
        except McpConfigError as exc:
            problems.append(str(exc))
    return found, problems


def read_file(path: Path) -> tuple[list[ServerConfig], list[str]]:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise McpConfigError(f"{path} is too large to be an MCP configuration.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from None
    return parse(text, str(path))


def load(path: Path | None = None) -> tuple[list[ServerConfig], list[str]]:
    """The servers the user added (none when there is no mcp.json yet)."""
    return read_file(path or config_path())


def save(servers: list[ServerConfig], path: Path | None = None) -> None:
    """Writes mcp.json whole (a temporary file renamed over it: a crash leaves the old or the new)."""
    path = path or config_path()
    data = {"mcpServers": {s.name: s.to_json() for s in servers}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise McpConfigError(f"{path} cannot be written ({exc.strerror}).") from None


def add(server: ServerConfig, path: Path | None = None, *, replace: bool = False) -> None:
    servers, _problems = load(path)
    if any(s.name == server.name for s in servers) and not replace:
        raise McpConfigError(f"There is already an MCP server named {server.name!r}.")
    save([s for s in servers if s.name != server.name] + [server], path)


def remove(name: str, path: Path | None = None) -> None:
    servers, _problems = load(path)
    if not any(s.name == name for s in servers):
        raise McpConfigError(f"There is no MCP server named {name!r}.")
    save([s for s in servers if s.name != name], path)


def other_apps_files(home: Path | None = None) -> dict[str, Path]:
    """Where LM Studio and Claude Desktop keep their MCP configuration on this system."""
    home = home or Path.home()
    if sys.platform == "darwin":
        claude = home / "Library" / "Application Support" / "Claude"
    elif sys.platform == "win32":
        claude = Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "Claude"
    else:
        claude = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config")) / "Claude"
    return {"lmstudio": home / ".lmstudio" / "mcp.json", "claude": claude / "claude_desktop_config.json"}


def import_file(source: Path, path: Path | None = None) -> tuple[list[str], list[str]]:
    """Adds the servers of another app's file to ours: the names added, and one sentence per server left out
    (a name we already have is kept as it is)."""
    if not source.is_file():
        raise McpConfigError(f"There is no MCP configuration at {source}.")
    theirs, problems = read_file(source)
    ours, _ = load(path)
    have = {s.name for s in ours}
    added = [s for s in theirs if s.name not in have]
    problems += [f"The MCP server {s.name!r} is already configured; kept as it was." for s in theirs if s.name in have]
    if added:
        save(ours + added, path)
    return [s.name for s in added], problems
