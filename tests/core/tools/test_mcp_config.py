"""mcp.json in the `mcpServers` shape of LM Studio and Claude Desktop: read, written, and imported from those apps'
files; entries that cannot work get one sentence each and the others still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamadesk.core.tools import mcp_config
from llamadesk.core.tools.mcp_config import McpConfigError, ServerConfig

LMSTUDIO = {"mcpServers": {
    "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
    "remote": {"url": "https://example.invalid/mcp", "headers": {"Authorization": "Bearer x"}},
}}  # fmt: skip
CLAUDE = {"mcpServers": {
    "files": {"command": "other"},  # a name we already have: kept as it was
    "weather": {"command": "uvx", "args": ["weather-mcp"], "env": {"API_KEY": "k"}},
    "broken": {"args": ["no command"]},
    "legacy": {"type": "sse", "url": "http://127.0.0.1:9/sse"},
}, "globalShortcut": "Ctrl+Space"}  # fmt: skip


def test_the_file_lives_in_the_config_folder(llamadesk_home: Path) -> None:
    assert mcp_config.config_path() == llamadesk_home / "config" / "mcp.json"
    assert mcp_config.load() == ([], [])  # none yet


def test_servers_are_added_saved_and_removed(llamadesk_home: Path) -> None:
    stdio = ServerConfig("calc", command="python", args=("server.py",), env={"X": "1"})
    http = ServerConfig("web", url="http://127.0.0.1:8000/mcp", headers={"A": "b"})
    mcp_config.add(stdio)
    mcp_config.add(http)
    with pytest.raises(McpConfigError, match="already"):
        mcp_config.add(stdio)
    saved = json.loads(mcp_config.config_path().read_text(encoding="utf-8"))
    assert saved == {"mcpServers": {"calc": {"command": "python", "args": ["server.py"], "env": {"X": "1"}},
                                    "web": {"url": "http://127.0.0.1:8000/mcp", "headers": {"A": "b"}}}}  # fmt: skip
    servers, problems = mcp_config.load()
    assert servers == [stdio, http] and not problems
    assert [s.transport for s in servers] == ["stdio", "http"]
    mcp_config.remove("calc")
    assert [s.name for s in mcp_config.load()[0]] == ["web"]
    with pytest.raises(McpConfigError, match="no MCP server named"):
        mcp_config.remove("calc")


def test_lm_studio_and_claude_files_are_imported(llamadesk_home: Path, tmp_path: Path) -> None:
    apps = mcp_config.other_apps_files(tmp_path)
    assert apps["lmstudio"] == tmp_path / ".lmstudio" / "mcp.json"
    assert apps["claude"].name == "claude_desktop_config.json"
    for key, data in (("lmstudio", LMSTUDIO), ("claude", CLAUDE)):
        apps[key].parent.mkdir(parents=True, exist_ok=True)
        apps[key].write_text(json.dumps(data), encoding="utf-8")
    added, problems = mcp_config.import_file(apps["lmstudio"])
    assert added == ["files", "remote"] and problems == []
    added, problems = mcp_config.import_file(apps["claude"])
    assert added == ["weather"]
    assert len(problems) == 3 and all(p.endswith(".") and "\n" not in p for p in problems)
    assert any("broken" in p and "neither a command nor" in p for p in problems)
    assert any("legacy" in p and "SSE" in p for p in problems)
    assert any("files" in p and "already" in p for p in problems)
    servers = {s.name: s for s in mcp_config.load()[0]}
    assert servers["files"].command == "npx" and servers["weather"].env == {"API_KEY": "k"}
    assert servers["remote"].headers == {"Authorization": "Bearer x"}


@pytest.mark.parametrize(
    ("text", "phrase"),
    [("{not json", "not valid JSON"), ("[1, 2]", 'no "mcpServers"'), ('{"mcpServers": 3}', 'no "mcpServers"')],
)
def test_a_file_that_cannot_be_read_is_one_sentence(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(McpConfigError, match=phrase):
        mcp_config.load(path)
    with pytest.raises(McpConfigError, match="no MCP configuration"):
        mcp_config.import_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("name", "entry", "phrase"),
    [("a/b", {"command": "x"}, "not usable"), ("x", {"command": "x", "args": "one"}, "args"),
     ("x", {"command": "x", "env": {"K": 1}}, "env"), ("x", {"url": "ftp://h"}, "neither"),
     ("x", {"url": "http://h", "headers": {"K": 2}}, "headers"), ("x", [], "not described by an object")],
)  # fmt: skip
def test_bad_entries(name: str, entry: object, phrase: str) -> None:
    with pytest.raises(McpConfigError, match=phrase):
        ServerConfig.from_json(name, entry)
