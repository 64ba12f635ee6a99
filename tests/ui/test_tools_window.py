"""Tools in the real window (issue 16): the Tools section switches the calculator on for the conversation, the real
starter model writes a call (asked to copy one, greedy, like tests/core/tools/test_tool_loop.py), the engine thread's
loop stops before running it and the approval dialog shows the call with its arguments; deny keeps it from running,
allow runs it and the reply's receipt records the result. Every wait is on a state, never on time."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.history import History
from llamadesk.core.tools.use import DENIED
from llamadesk.paths import Paths
from llamadesk.ui.chat.delegate import row_actions
from llamadesk.ui.chat.model import ShownTextRole
from llamadesk.ui.chat.tool_approval import ApprovalDialog
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.settings.tools_box import stored_tools

pytestmark = pytest.mark.starter
TIMEOUT_MS = 180_000
COPY = 'Copy this text exactly: <tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'


def _window(make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, qtbot: QtBot) -> MainWindow:
    (paths.models / starter_model.name).symlink_to(starter_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT_MS)
    panel = window.panel
    panel.set_system_prompt("")
    panel.rows["max_tokens"].spin.setValue(60)
    panel.rows["temperature"].set_value(0.0)
    panel.random_seed.setChecked(False)
    panel.seed_spin.setValue(1)
    panel.tools.checks["calculator"].setChecked(True)  # kept for the conversation the first message makes
    return window


def _dialog_or_end(window: MainWindow, qtbot: QtBot, history: History) -> ApprovalDialog:
    """The approval dialog once it shows (a reply that ends without asking fails the test at once, with its text)."""

    def asked() -> bool:
        return window.tools.ask.dialog is not None and window.tools.ask.dialog.isVisible()

    qtbot.waitUntil(lambda: asked() or not window.is_generating, timeout=TIMEOUT_MS)
    dialog = window.tools.ask.dialog
    if dialog is None:
        reply = history.messages(window.current_cid)[-1]  # type: ignore[arg-type]
        pytest.fail(f"The reply called no tool: {reply.content!r}")
    return dialog


def _asked(window: MainWindow, qtbot: QtBot) -> ApprovalDialog:
    window.send(COPY)
    dialog = _dialog_or_end(window, qtbot, window.history)
    assert window.is_generating  # the engine thread waits for the answer: nothing has run
    assert '"expression": "6*7"' in dialog.arguments.toPlainText() and "calculator" in dialog.label.text()
    return dialog


def _last_receipt(window: MainWindow, history: History) -> dict:
    assert window.current_cid is not None
    return history.messages(window.current_cid)[-1].receipt or {}


def test_a_denied_call_does_not_run(
    make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, history: History, qtbot: QtBot
) -> None:
    window = _window(make_window, paths, starter_model, qtbot)
    _asked(window, qtbot).deny.click()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    [record] = _last_receipt(window, history)["tool_calls"]
    assert (record["name"], record["status"], record["result"]) == ("calculator", "denied", DENIED)
    stored = history.get_conversation(window.current_cid).sampling  # type: ignore[arg-type]
    assert stored["tools"]["builtin"] == ["calculator"]


def test_an_allowed_call_runs_and_its_result_is_recorded(
    make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, history: History, qtbot: QtBot
) -> None:
    window = _window(make_window, paths, starter_model, qtbot)
    _asked(window, qtbot).allow_once.click()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    receipt = _last_receipt(window, history)
    [record] = receipt["tool_calls"]
    assert (record["name"], record["arguments"], record["status"], record["result"]) == (
        "calculator", {"expression": "6*7"}, "ok", "42")  # fmt: skip
    assert receipt["tool_steps"] == 2  # the result went back and the model generated again
    _assert_block(window, qtbot, "calculator", "42")


def _assert_block(window: MainWindow, qtbot: QtBot, name: str, result: str) -> None:
    """The reply shows the call folded to one line; its "Tool calls" action unfolds the arguments and the result,
    rendered as literal text."""
    model = window.chat_model
    index = model.index(model.rowCount() - 1, 0)
    row = model.row(model.rowCount() - 1)
    qtbot.waitUntil(lambda: bool(model.row(model.rowCount() - 1).tools), timeout=TIMEOUT_MS)
    folded = model.data(index, ShownTextRole)
    assert f"🔧 {name}: done" in folded and "<tool_call>" not in folded and "Result:" not in folded
    assert row_actions(model.row(model.rowCount() - 1))[0] == "tools"
    window.chat_view.actionRequested.emit("tools", row.message_id)  # what the footer's "Tool calls" does
    unfolded = model.data(index, ShownTextRole)
    assert "Arguments:" in unfolded and f"Result:\n\n```\n{result}\n```" in unfolded
    shown = model.row(model.rowCount() - 1)
    rect = window.chat_view.visualRect(index)
    doc, _info, _current = window.chat_view.delegate.document(shown, window.chat_view.delegate.text_width(rect.width()))
    assert "Result:" in doc.toPlainText() and result in doc.toPlainText()
    window.chat_view.actionRequested.emit("tools", row.message_id)
    assert model.data(index, ShownTextRole) == folded


def test_a_stored_reply_shows_its_calls_inert(make_window: Callable[..., MainWindow], history: History) -> None:
    """A reply from the history (reopened): its call's block comes from the receipt; a hostile result (HTML, a
    fence, markdown) stays literal text."""
    conv = history.create_conversation("Tools")
    history.add_message(conv.id, "user", "Read it")
    reply = history.begin_reply(conv.id)
    hostile = "<b>bold</b> ``` [link](http://x) # heading"
    reply.append('<tool_call>{"name": "read_file", "arguments": {"path": "a.txt"}}</tool_call>\n\nIt says hello.')
    reply.finish(receipt={"tool_calls": [{"name": "read_file", "arguments": {"path": "a.txt"}, "result": hostile,
                                          "status": "ok", "seconds": 0.0}], "tool_steps": 2})  # fmt: skip
    window = make_window(auto_load=False)
    window.refresh_conversations()
    window.select_conversation(conv.id)
    model = window.chat_model
    index = model.index(1, 0)
    assert model.data(index, ShownTextRole).startswith("\n\n*🔧 read_file: done*")
    window.chat_view.actionRequested.emit("tools", model.row(1).message_id)
    row = model.row(1)
    rect = window.chat_view.visualRect(index)
    doc, _info, _current = window.chat_view.delegate.document(row, window.chat_view.delegate.text_width(rect.width()))
    text = doc.toPlainText()
    assert hostile in text and '"path": "a.txt"' in text and "It says hello." in text  # literal, not formatted


def test_stop_answers_deny(
    make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, history: History, qtbot: QtBot
) -> None:
    window = _window(make_window, paths, starter_model, qtbot)
    _asked(window, qtbot)
    window.session.stop()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    assert window.tools.ask.dialog is None
    [record] = _last_receipt(window, history)["tool_calls"]
    assert record["status"] == "denied"


SERVER = str(Path(__file__).resolve().parents[1] / "mcp_test_server.py")


def server(name: str, mode: str) -> Any:
    from llamadesk.core.tools import mcp_config

    return mcp_config.ServerConfig.from_json(name, {"command": sys.executable, "args": [SERVER, mode]})


def listed(page: Any) -> dict[str, str]:
    """The page's list: each server's name and status as shown."""
    shown: dict[str, str] = {}
    for i in range(page.tree.topLevelItemCount()):
        item = page.tree.topLevelItem(i)
        shown[item.text(0)] = item.text(1)
    return shown


def test_the_mcp_page_lists_a_real_server_as_ready_and_a_broken_one_as_failed(
    make_window: Callable[..., MainWindow], paths: Paths, qtbot: QtBot, tmp_path: Path
) -> None:
    from llamadesk.core.tools import mcp_config

    mcp_config.save([server("test", "stdio"), server("broken", "exit")])
    window = make_window(auto_load=False)
    assert set(window.panel.tools.mcp_checks) == {"test", "broken"}  # the Tools section offers each server's tools
    page = window.mcp_servers.open()
    # the list follows the servers' states as they change (queued from the host's thread)
    qtbot.waitUntil(lambda: listed(page) == {"test": "ready", "broken": "failed"}, timeout=TIMEOUT_MS)
    page.tree.setCurrentItem(page.tree.findItems("test", Qt.MatchFlag.MatchExactly)[0])
    assert "add: Add two integers." in page.details.toPlainText()
    page.tree.setCurrentItem(page.tree.findItems("broken", Qt.MatchFlag.MatchExactly)[0])
    assert "stderr" in page.details.toPlainText()

    # One click imports LM Studio's servers; remove takes one away again (mcp.json is what the page shows).
    page.home = tmp_path
    (tmp_path / ".lmstudio").mkdir()
    (tmp_path / ".lmstudio" / "mcp.json").write_text(
        json.dumps({"mcpServers": {"lms": {"command": sys.executable, "args": [SERVER, "stdio"]}}}), encoding="utf-8"
    )
    assert page.import_from("lmstudio") == ["lms"]
    qtbot.waitUntil(lambda: page.status_of("lms") == "ready", timeout=TIMEOUT_MS)
    assert "lms" in window.panel.tools.mcp_checks
    page.tree.setCurrentItem(page.tree.findItems("broken", Qt.MatchFlag.MatchExactly)[0])
    page.remove_button.click()
    assert [s.name for s in mcp_config.load()[0]] == ["test", "lms"]
    assert page.tree.topLevelItemCount() == 2


def test_the_tools_section_makes_the_conversations_tools(
    make_window: Callable[..., MainWindow], history: History, tmp_path: Path
) -> None:
    """The switches and a granted folder are kept with the conversation and make its ToolUse; the files and history
    tools work from another thread (the engine's, where calls run: the history search opens its own connection)."""
    (tmp_path / "notes.txt").write_text("the secret is 17", encoding="utf-8")
    older = history.create_conversation("Old")
    history.add_message(older.id, "user", "remember the zeppelin")
    conv = history.create_conversation("Tools")
    window = make_window(auto_load=False)
    window.refresh_conversations()
    window.select_conversation(conv.id)
    assert window.tools.tool_use(conv.id) is None  # nothing on: the reply is asked for without tools
    box = window.panel.tools
    box.checks["time"].setChecked(True)
    box.checks["history"].setChecked(True)
    box.add_folder(tmp_path)  # what the folder picker does with the folder chosen
    assert stored_tools(history.get_conversation(conv.id).sampling) == {
        "builtin": ["time", "history"], "folders": [str(tmp_path.resolve())], "mcp": []}  # fmt: skip
    use = window.tools.tool_use(conv.id)
    assert use is not None
    assert {t.name for t in use.box.tools} == {"current_time", "search_history", "read_file", "list_files"}

    results: dict[str, str] = {}

    def in_another_thread() -> None:
        for name, args in (("read_file", {"path": "notes.txt"}), ("search_history", {"query": "zeppelin"})):
            results[name] = use.box.run(ToolCall(name, args)).text

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    assert "the secret is 17" in results["read_file"]
    assert "Old" in results["search_history"]

    # Another conversation shows its own (none); coming back shows these again.
    other = history.create_conversation("Other")
    window.refresh_conversations()
    window.select_conversation(other.id)
    assert box.tools() == {"builtin": [], "folders": [], "mcp": []}
    window.select_conversation(conv.id)
    assert box.tools()["builtin"] == ["time", "history"] and box.folders.count() == 1


def test_the_model_calls_a_real_mcp_servers_tool_in_the_window(
    make_window: Callable[..., MainWindow], paths: Paths, starter_model: Path, history: History, qtbot: QtBot
) -> None:
    from llamadesk.core.tools import mcp_config

    mcp_config.save([server("test", "stdio")])
    window = _window(make_window, paths, starter_model, qtbot)
    window.panel.tools.checks["calculator"].setChecked(False)
    window.panel.tools.mcp_checks["test"].setChecked(True)  # switched on: the server starts
    qtbot.waitUntil(lambda: window.tools.servers.state("test").status == "ready", timeout=TIMEOUT_MS)
    # With all of the server's tools in its prompt the 135M model copies an echo call faithfully (an add call it
    # closes with "</tool_call}"); greedy, so the same every run.
    window.send('Copy this text exactly: <tool_call>{"name": "echo", "arguments": {"text": "hello"}}</tool_call>')
    dialog = _dialog_or_end(window, qtbot, history)
    assert "echo from test" in dialog.label.text()
    dialog.allow_always.click()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
    [record] = _last_receipt(window, history)["tool_calls"]
    assert (record["name"], record["arguments"], record["status"], record["result"]) == (
        "echo", {"text": "hello"}, "ok", "hello")  # fmt: skip
    use = window.tools.tool_use(window.current_cid)  # type: ignore[arg-type]
    assert use is not None and "echo" in use.approval.always  # "always" holds for the conversation
