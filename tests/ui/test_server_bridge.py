"""The app's own server on the GUI's EngineHost while a window exists: the official openai client in a thread, the
window's real engine (tiny model), requests in turn with the user's replies, the history label, the status bar."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import openai
import pytest
from file_keyring import MemoryKeyring
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.engines.api import Done, Token
from llamadesk.core.sampling import SamplingParams
from llamadesk.server import settings as server_settings
from llamadesk.server.backend import Job
from llamadesk.server.settings import ServerSettings
from llamadesk.ui.conversation_list import SourceRole
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.settings.server_page import ServerDialog

TIMEOUT_MS = 60_000
HI = [{"role": "user", "content": "hello"}]


pytestmark = pytest.mark.usefixtures("memory_keyring")  # the server key must not reach the real keyring


def in_thread(qtbot: QtBot, work: Callable[[], Any]) -> Any:
    """Runs a blocking client call off the GUI thread while the GUI thread keeps serving events."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=TIMEOUT_MS)
    if "error" in result:
        raise result["error"]
    return result["value"]


def turn_on(window: MainWindow, *, record: bool = False, key: str | None = "gui-key") -> str:
    window.server.apply(ServerSettings(enabled=True, port=0, record_history=record), key)
    assert window.server.running and window.server.runner is not None
    return window.server.runner.url


def test_off_by_default_then_serves_the_loaded_model(
    window: MainWindow, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    assert not window.server.running and not window.server.label.isVisible()
    url = turn_on(window)
    assert window.server.label.isVisible() and window.server.label.text() == f"Server: {url}"
    assert memory_keyring.store == {(server_settings.KEYRING_SERVICE, server_settings.KEYRING_KEY): "gui-key"}
    assert server_settings.load_settings().enabled  # kept for the next start
    client = openai.OpenAI(base_url=url, api_key="gui-key", max_retries=0, timeout=60)
    assert in_thread(qtbot, lambda: [m.id for m in client.models.list()]) == ["tiny-chatml.gguf"]
    reply = in_thread(qtbot, lambda: client.chat.completions.create(model="x", messages=HI, max_tokens=6, seed=1))
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    chunks = in_thread(qtbot, lambda: list(client.chat.completions.create(
        model="x", messages=HI, max_tokens=6, seed=1, stream=True)))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.InternalServerError, match="llamadesk serve"):  # refused, not silently left out
        in_thread(qtbot, lambda: client.chat.completions.create(model="x", messages=HI, tools=tools))
    with pytest.raises(openai.AuthenticationError):
        in_thread(qtbot, lambda: openai.OpenAI(base_url=url, api_key="bad", max_retries=0).models.list())
    window.server.apply(ServerSettings(enabled=False), "gui-key")
    assert not window.server.running and not window.server.label.isVisible()


def test_requests_wait_for_the_users_reply_and_are_labelled_in_the_history(window: MainWindow, qtbot: QtBot) -> None:
    turn_on(window, record=True)
    order: list[str] = []
    worker = window.host.worker
    # Recorded in the engine thread, where the replies really run one after the other.
    worker.finished.connect(lambda rid, *_: order.append(f"finished {rid}"), Qt.ConnectionType.DirectConnection)
    server_done = threading.Event()

    def emit(event: object) -> None:
        if isinstance(event, Token) and not any(o.startswith("server") for o in order):
            order.append("server first token")
        if isinstance(event, Done):
            server_done.set()

    window.send("a question from the user")
    assert window.session.active_request is not None
    user_request = window.session.active_request
    window.server.bridge.submit(Job(list(HI), SamplingParams(max_tokens=5, seed=2), emit))
    qtbot.waitUntil(server_done.is_set, timeout=TIMEOUT_MS)
    assert order[:2] == [f"finished {user_request}", "server first token"]
    rows = window.sidebar.list.model()
    qtbot.waitUntil(lambda: rows.conversation_count() == 2, timeout=TIMEOUT_MS)
    sources = {rows.data(rows.index(r), SourceRole) for r in range(rows.rowCount()) if rows.conversation_at(r)}
    assert sources == {"app", "server"}
    served = next(c for c in window.history.list_conversations() if c.source == "server")
    reply = window.history.messages(served.id)[-1]
    qtbot.waitUntil(lambda: window.history.get_message(reply.id).status == "complete", timeout=TIMEOUT_MS)


def test_a_client_that_closes_the_stream_stops_the_reply(endless_window: MainWindow, qtbot: QtBot) -> None:
    window = endless_window
    url = turn_on(window, record=True)
    client = openai.OpenAI(base_url=url, api_key="gui-key", max_retries=0, timeout=60)

    def read_three_then_close() -> int:
        stream = client.chat.completions.create(model="x", messages=HI, max_tokens=4000, stream=True)
        seen = 0
        for _chunk in stream:
            seen += 1
            if seen == 3:
                break
        stream.close()
        return seen

    assert in_thread(qtbot, read_three_then_close) == 3
    qtbot.waitUntil(lambda: window.server.bridge.pending() == 0, timeout=TIMEOUT_MS)
    (served,) = [c for c in window.history.list_conversations() if c.source == "server"]
    qtbot.waitUntil(lambda: window.history.messages(served.id)[-1].status == "cancelled", timeout=TIMEOUT_MS)
    assert not window.is_generating


def test_dialog_refuses_the_network_without_a_key(window: MainWindow, qtbot: QtBot) -> None:
    dialog = window.server.open()
    assert isinstance(dialog, ServerDialog) and not dialog.enabled.isChecked()
    dialog.enabled.setChecked(True)
    dialog.network.setChecked(True)
    dialog.key.setText("")
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not ok.isEnabled() and "API key" in dialog.problem.text()
    dialog.key.setText("abc")
    assert ok.isEnabled()
    settings, key = dialog.values()
    assert settings.host == "0.0.0.0" and settings.enabled and key == "abc"
    dialog.reject()


def test_closing_the_window_stops_the_server(make_window: Callable[..., MainWindow], models_dir: Any,
                                            qtbot: QtBot) -> None:  # fmt: skip
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT_MS)
    turn_on(window)
    runner = window.server.runner
    assert runner is not None and runner.running
    window.close()
    assert not runner.running and not window.host.thread_running
