"""The real window over the real llama.cpp engine and SQLite history: load, send, stream, stop, switch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gguf_factory import write_tiny_llama
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from llamadesk.core.documents.embeddings import POOLING_MEAN, POOLING_RANK
from llamadesk.core.history import History
from llamadesk.core.library import describe
from llamadesk.core.settings import load_settings
from llamadesk.paths import Paths
from llamadesk.ui.chat.model import FooterRole, ShownTextRole
from llamadesk.ui.main_window import MainWindow

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 60_000


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    edit = window.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)


def last_row_text(window: MainWindow) -> str:
    model = window.chat_model
    return model.row(model.rowCount() - 1).content if model.rowCount() else ""


def on_first_text(window: MainWindow, action: Callable[[], None]) -> None:
    """Runs `action` in the GUI thread as soon as the streaming row first shows text."""

    def changed(*_: object) -> None:
        window.chat_model.dataChanged.disconnect(changed)
        action()

    window.chat_model.dataChanged.connect(changed)


def wait_idle(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def test_send_is_disabled_until_a_model_is_loaded(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    window = make_window()
    assert window.model_info is None
    assert not window.composer.send_button.isEnabled()
    assert window.composer.edit.isEnabled() and not window.composer.edit.isReadOnly()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.composer.send_button.isEnabled()
    assert "tiny-chatml" in window.picker.info_label.full_text()


def test_reply_streams_into_the_view_and_the_history(window: MainWindow, history: History, qtbot: QtBot) -> None:
    send(qtbot, window, "hello model")
    assert window.is_generating
    assert not window.composer.send_button.isEnabled()
    assert window.composer.stop_button.isEnabled()
    assert window.composer.text() == ""
    wait_idle(qtbot, window)

    rows = window.chat_model.rows()
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[0].content == "hello model"
    assert rows[1].content and rows[1].status == "complete"
    assert "token" in window.chat_model.data(window.chat_model.index(1, 0), FooterRole)

    cid = window.current_cid
    assert cid is not None
    stored = history.messages(cid)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1].content == rows[1].content
    assert stored[1].receipt and stored[1].receipt["generated_tokens"] <= 64
    assert history.get_conversation(cid).title == "Model"  # titles leave the greeting out (core.conversation)
    assert window.speed_label.text().endswith("tokens/s")
    assert window.ttft_label.text().startswith("first word after")
    assert window.context_label.text().endswith(f"/ {window.model_info.n_ctx} tokens")  # type: ignore[union-attr]


def test_escape_stops_the_reply_and_keeps_it(endless_window: MainWindow, history: History, qtbot: QtBot) -> None:
    window = endless_window
    edit = window.composer.edit

    on_first_text(window, lambda: qtbot.keyClick(edit, Qt.Key.Key_Escape))
    send(qtbot, window, "tell me a long story")
    wait_idle(qtbot, window)

    reply = window.chat_model.rows()[-1]
    assert reply.status == "cancelled"
    assert reply.finish_reason == "cancelled"
    stored = history.messages(window.current_cid)[-1]  # type: ignore[arg-type]
    assert stored.status == "cancelled" and stored.finish_reason == "cancelled"
    assert stored.content == reply.content and stored.content
    assert stored.receipt is not None and stored.receipt["generated_tokens"] < 4000
    assert window.composer.send_button.isEnabled()


def test_stop_button_ends_the_reply(endless_window: MainWindow, history: History, qtbot: QtBot) -> None:
    window = endless_window

    on_first_text(window, lambda: qtbot.mouseClick(window.composer.stop_button, Qt.MouseButton.LeftButton))
    send(qtbot, window, "count to a thousand")
    wait_idle(qtbot, window)
    assert history.messages(window.current_cid)[-1].status == "cancelled"  # type: ignore[arg-type]


def test_switching_conversation_while_streaming_keeps_the_reply_in_its_own(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    other = history.create_conversation("Other chat")
    other_item = history.add_message(other.id, "user", "an older question")
    window.refresh_conversations()
    switched: list[int] = []

    def switch_away() -> None:
        switched.append(window.current_cid or 0)
        window.sidebar.select(other.id)

    on_first_text(window, switch_away)
    send(qtbot, window, "first conversation")
    qtbot.waitUntil(lambda: bool(switched), timeout=REPLY_TIMEOUT_MS)
    first = switched[0]
    assert window.is_generating
    assert window.current_cid == other.id
    assert [r.message_id for r in window.chat_model.rows()] == [other_item.id]  # the selected conversation

    window.sidebar.select(first)  # back: the reply shows live, with all its text so far
    live = window.chat_model.rows()[-1]
    assert live.status == "streaming" and live.content
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Escape)
    wait_idle(qtbot, window)

    stored = history.messages(first)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].status == "cancelled" and stored[1].content
    assert [m.id for m in history.messages(other.id)] == [other_item.id]
    assert window.chat_model.rows()[-1].content == stored[1].content
    window.sidebar.select(other.id)
    window.sidebar.select(first)
    assert window.chat_model.rows()[-1].content == stored[1].content


def test_new_rename_and_delete_conversation(window: MainWindow, history: History, dialogs: Any, qtbot: QtBot) -> None:
    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    conversations = history.list_conversations()
    assert len(conversations) == 1 and window.current_cid == conversations[0].id
    assert window.sidebar.list.count() == 1
    send(qtbot, window, "hi")
    wait_idle(qtbot, window)
    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    assert window.sidebar.list.count() == 2
    newest = window.current_cid
    assert newest is not None and window.chat_model.rowCount() == 0

    window.sidebar.list.setFocus()
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_F2)
    editor = window.sidebar.list.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Renamed chat")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: history.get_conversation(newest).title == "Renamed chat")
    assert window.sidebar.item_for(newest).text() == "Renamed chat"  # type: ignore[union-attr]
    assert window.windowTitle() == "Renamed chat — LlamaDesk"

    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Delete)  # no question: it goes to the trash, with Undo
    remaining = history.list_conversations()
    assert [c.title for c in remaining] == ["Hi"] and not dialogs.questions
    assert window.current_cid == remaining[0].id
    assert window.sidebar.list.count() == 1
    qtbot.waitUntil(window.sidebar.undo_bar.isVisible)
    window.sidebar.undo_delete()
    qtbot.waitUntil(lambda: len(history.list_conversations()) == 2)
    assert window.sidebar.list.count() == 2
    window.sidebar.select(remaining[0].id)
    assert window.chat_model.rows()[0].content == "hi"


def test_a_broken_model_file_warns_and_the_window_keeps_working(
    window: MainWindow, paths: Paths, dialogs: Any, qtbot: QtBot
) -> None:
    (paths.models / "x.gguf").write_bytes(b"not a gguf")
    qtbot.mouseClick(window.picker.refresh_button, Qt.MouseButton.LeftButton)
    names = [m.path.name for m in window.picker.models()]
    window.picker.combo.setCurrentIndex(names.index("x.gguf"))
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(dialogs.warnings) and not window.is_loading, timeout=LOAD_TIMEOUT_MS)

    title, sentence = dialogs.warnings[0]
    assert title == "Model not loaded"
    assert "x.gguf" in sentence and sentence.rstrip().endswith(".") and "Traceback" not in sentence
    assert window.isVisible()

    window.picker.combo.setCurrentIndex(names.index("tiny-chatml.gguf"))
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_info is not None and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    send(qtbot, window, "still there?")
    wait_idle(qtbot, window)
    assert window.chat_model.rows()[-1].status == "complete"


def test_a_failed_reply_is_shown_inline_and_saved(window: MainWindow, history: History, qtbot: QtBot) -> None:
    window.panel.set_n_ctx(256)
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_loading and window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    assert window.model_info.n_ctx == 256  # type: ignore[union-attr]

    window.composer.edit.setPlainText("hello world " * 200)  # far more than 256 tokens
    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)

    reply = window.chat_model.rows()[-1]
    assert reply.status == "error" and "context" in reply.error
    index = window.chat_model.index(1, 0)
    assert window.chat_model.data(index, FooterRole) == "error"
    assert reply.error in window.chat_model.data(index, ShownTextRole)  # the sentence shows in the bubble
    stored = history.messages(window.current_cid)  # type: ignore[arg-type]
    assert stored[0].content.startswith("hello world") and stored[1].status == "error"
    assert "context" in window.statusBar().currentMessage()


def test_sampling_and_system_prompt_belong_to_the_conversation(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    first = history.create_conversation("First", system_prompt="Be brief.", sampling={"temperature": 0.3})
    second = history.create_conversation("Second", system_prompt="", sampling={"temperature": 1.2})
    window.refresh_conversations()
    window.sidebar.select(first.id)
    assert window.panel.system_prompt() == "Be brief."
    assert window.panel.params().temperature == 0.3

    window.panel.rows["temperature"].set_value(0.5)
    window.panel.system_prompt_edit.setPlainText("Be very brief.")
    window.sidebar.select(second.id)  # saves the first conversation's pending changes
    assert window.panel.params().temperature == 1.2 and window.panel.system_prompt() == ""
    stored = history.get_conversation(first.id)
    assert stored.sampling["temperature"] == 0.5 and stored.system_prompt == "Be very brief."

    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    new = history.get_conversation(window.current_cid)  # type: ignore[arg-type]
    assert new.sampling["temperature"] == 1.2  # a new chat takes the panel's current values


def test_settings_are_saved_on_close(
    make_window: Callable[..., MainWindow], models_dir: Path, paths: Paths, qtbot: QtBot
) -> None:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.panel.set_n_ctx(1024)
    window.panel.n_ctx_spin.setValue(2048)
    window.panel.rows["top_k"].spin.setValue(17)
    window.panel.system_prompt_edit.setPlainText("You are terse.")
    window.close()
    saved = load_settings(paths.settings_file)
    assert saved.n_ctx == 2048
    assert saved.sampling["top_k"] == 17
    assert saved.system_prompt == "You are terse."
    assert saved.last_model == str(models_dir / "tiny-chatml.gguf")


def test_close_while_streaming_stops_and_saves_the_reply(
    endless_window: MainWindow, history: History, qtbot: QtBot
) -> None:
    window = endless_window
    send(qtbot, window, "go on and on")
    cid = window.current_cid
    qtbot.waitUntil(lambda: bool(last_row_text(window)), timeout=REPLY_TIMEOUT_MS)
    window.close()
    assert not window.host.thread_running
    stored = history.messages(cid)[-1]  # type: ignore[arg-type]
    assert stored.status in ("cancelled", "complete")
    assert stored.content


def test_the_picker_does_not_offer_embedding_models_for_chat(
    make_window: Callable[..., MainWindow], models_dir: Path, dialogs: Any, qtbot: QtBot
) -> None:
    write_tiny_llama(models_dir / "tiny-embed.gguf", pooling=POOLING_MEAN)  # declares mean pooling: embedding only
    write_tiny_llama(models_dir / "tiny-rerank.gguf", pooling=POOLING_RANK)
    window = make_window(auto_load=False)
    picker = window.picker

    def listed() -> list[str]:
        return [m.path.name for m in picker.models()]

    qtbot.waitUntil(lambda: listed() == ["tiny-chatml.gguf"])  # their headers are read in the background
    entries = [picker.combo.itemText(i).split(" · ")[0] for i in range(picker.combo.count())]
    assert [e for e in entries if e] == ["tiny-chatml", "Get more models…"]  # "" is the separator
    picker.refresh()  # known now: never listed again
    assert listed() == ["tiny-chatml.gguf"]

    picker.load(picker.models()[0])
    qtbot.waitUntil(lambda: window.model_info is not None and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    picker.load(describe(models_dir / "tiny-embed.gguf"))  # as a dropped file would ask
    qtbot.waitUntil(lambda: bool(dialogs.warnings))
    title, sentence = dialogs.warnings[-1]
    assert title == "Model not loaded"
    assert "tiny-embed" in sentence and "embedding model" in sentence and "Search by meaning" in sentence
    assert sentence.endswith(".") and "\n" not in sentence and not window.is_loading
    assert window.model_info is not None and window.model_info.path.name == "tiny-chatml.gguf"
