"""The response format control (ui/settings/response_format.py) as a user works it, and JSON replies in the real
window: the panel's format reaches the engine through the session, every reply parses and validates, each
conversation keeps its own format, a schema that cannot be used is one sentence under the box."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import openai
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.structured import FORMAT_KEY, FormatKind
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.settings.response_format import ResponseFormatBox

REPLY_TIMEOUT_MS = 60_000
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "pattern": "^[A-Za-z ]{1,16}$"},
        "stars": {"enum": [1, 2, 3, 4, 5]},
        "good": {"type": "boolean"},
    },
    "required": ["title", "stars", "good"],
}


def choose(box: ResponseFormatBox, kind: FormatKind) -> None:
    box.kind_combo.setCurrentIndex(box.kind_combo.findData(kind.value))


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    window.composer.edit.setFocus()
    qtbot.keyClicks(window.composer.edit, text)
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def test_the_box_says_what_is_wrong_in_one_sentence(qtbot: QtBot, tmp_path: Path) -> None:
    box = ResponseFormatBox()
    qtbot.addWidget(box)
    box.show()
    assert box.kind() is FormatKind.TEXT and box.schema_edit.isHidden() and box.error() == ""
    with qtbot.waitSignal(box.formatChanged) as changed:
        choose(box, FormatKind.JSON)
    assert changed.args[0].kind is FormatKind.JSON and box.schema_edit.isHidden()
    with qtbot.waitSignal(box.formatChanged):
        choose(box, FormatKind.SCHEMA)
    assert box.schema_edit.isVisible() and box.load_button.isVisible()
    assert box.error() == "Paste a JSON schema or load one from a file."
    for bad, words in (('{"type": "string", "maxLength": 100000000}', "maxLength"), ("{nope", "not valid JSON"),
                       (json.dumps({"enum": list(range(10_000))}), "10,000"),
                       ('{"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}', "recursive")):  # fmt: skip
        with qtbot.waitSignal(box.formatChanged, timeout=10_000):
            box.schema_edit.setPlainText(bad)  # typing: checked after a pause
        assert words in box.error() and box.error().endswith(".") and "\n" not in box.error()
        assert box.error_label.isVisible()
    with qtbot.waitSignal(box.formatChanged, timeout=10_000) as changed:
        box.schema_edit.setPlainText(json.dumps(SCHEMA))
    assert box.error() == "" and not box.error_label.isVisible()
    assert changed.args[0].schema == SCHEMA
    # a file: read into the box; one that cannot be read is a sentence, and the box keeps what it had
    schema_file = tmp_path / "review.json"
    schema_file.write_text(json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}}), "utf-8")
    choose(box, FormatKind.TEXT)
    assert box.load_file(schema_file)
    assert box.kind() is FormatKind.SCHEMA and '"ok"' in box.schema_edit.toPlainText() and box.error() == ""
    assert not box.load_file(tmp_path / "missing.json")
    assert "missing.json could not be read" in box.error() and '"ok"' in box.schema_edit.toPlainText()


def test_json_schema_replies_in_the_window(window: MainWindow, history: History, qtbot: QtBot) -> None:
    box = window.panel.response_format
    assert box.isVisible()  # in the panel, after the system prompt
    window.panel.rows["max_tokens"].spin.setValue(300)
    choose(box, FormatKind.SCHEMA)
    box.schema_edit.setPlainText(json.dumps(SCHEMA))
    qtbot.waitUntil(lambda: box.error() == "" and box.response_format().schema_json != "", timeout=10_000)
    for text in ("Review the film.", "And another one."):
        send(qtbot, window, text)
    cid = window.current_cid
    assert cid is not None
    replies = [m for m in history.messages(cid) if m.role == "assistant"]
    assert len(replies) == 2
    for reply in replies:
        assert reply.status == "complete", reply.receipt
        jsonschema.validate(json.loads(reply.content), SCHEMA)  # a random-weight model: only the grammar did this
        assert (reply.receipt or {})["response_format"]["type"] == "json_schema"
        assert window.chat_model.rowCount() == 4
    assert history.get_conversation(cid).sampling[FORMAT_KEY]["type"] == "json_schema"

    # a new conversation starts from text again only if chosen; its own format stays its own
    window.new_chat()
    choose(box, FormatKind.TEXT)
    send(qtbot, window, "hello")
    other = window.current_cid
    assert other != cid and FORMAT_KEY not in history.get_conversation(other).sampling  # type: ignore[arg-type]
    free = history.messages(other)[-1]  # type: ignore[arg-type]
    assert "response_format" not in (free.receipt or {})
    window.select_conversation(cid)
    assert box.kind() is FormatKind.SCHEMA and json.loads(box.schema_edit.toPlainText()) == SCHEMA
    window.select_conversation(other)
    assert box.kind() is FormatKind.TEXT


def test_a_cut_off_reply_and_an_unusable_schema_are_sentences(
    window: MainWindow, history: History, qtbot: QtBot
) -> None:
    box = window.panel.response_format
    choose(box, FormatKind.SCHEMA)
    box.schema_edit.setPlainText(json.dumps(SCHEMA))
    qtbot.waitUntil(lambda: box.error() == "", timeout=10_000)
    window.panel.rows["max_tokens"].spin.setValue(3)
    notices: list[str] = []
    window.session.notice.connect(lambda text, _ms: notices.append(text))
    send(qtbot, window, "Review it.")
    cid = window.current_cid
    assert cid is not None
    reply = history.messages(cid)[-1]
    assert reply.finish_reason == "length"
    assert any(n.startswith("The JSON reply was cut off at the max tokens limit (3 tokens)") for n in notices)

    # a schema that cannot be used: the box says why, and a reply asked for anyway fails with that sentence
    window.panel.rows["max_tokens"].spin.setValue(32)
    with qtbot.waitSignal(box.formatChanged, timeout=10_000):
        box.schema_edit.setPlainText('{"type": "string", "maxLength": 1000000000}')
    assert "maxLength" in box.error()
    send(qtbot, window, "Again.")
    failed = history.messages(cid)[-1]
    assert failed.status == "error" and "maxLength" in json.dumps(failed.receipt or {}) + failed.content
    assert any("maxLength" in n for n in notices)
    assert window.isVisible()


@pytest.mark.usefixtures("memory_keyring")
def test_the_windows_own_server_takes_response_format(window: MainWindow, qtbot: QtBot) -> None:
    """The app's server on the window's EngineHost (ui/server_bridge.py) passes the request's schema to the engine;
    the panel's own format (text here) does not leak into it."""
    from tests.ui.test_server_bridge import in_thread, turn_on

    client = openai.OpenAI(base_url=turn_on(window), api_key="gui-key", max_retries=0, timeout=60)
    wire = {"type": "json_schema", "json_schema": {"name": "review", "schema": SCHEMA}}
    for stream in (False, True):

        def ask(stream: bool = stream) -> str:
            made = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "Review."}],
                                                  max_tokens=300, seed=7, stream=stream,
                                                  response_format=wire)  # type: ignore[call-overload]  # fmt: skip
            if not stream:
                return made.choices[0].message.content or ""
            return "".join(c.choices[0].delta.content or "" for c in made if c.choices)

        jsonschema.validate(json.loads(in_thread(qtbot, ask)), SCHEMA)
    plain = in_thread(qtbot, lambda: client.chat.completions.create(
        model="x", messages=[{"role": "user", "content": "hi"}], max_tokens=6, seed=1))  # fmt: skip
    assert plain.choices[0].message.content is not None
