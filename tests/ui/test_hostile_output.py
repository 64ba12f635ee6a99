"""Hostile model output in the real window: inert HTML, nothing fetched, escapes and bidi controls neutralised,
a 1 MB line laid out quickly, invalid UTF-8 from the engine shown as U+FFFD."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from gguf_factory import FIRST_BYTE_TOKEN, edit_output_rows
from PySide6.QtGui import QTextDocument, QTextFormat
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.core.markdown import LONG_RUN, break_long_runs, inert_text
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.workers import live_query_runners
from tests.ui.conftest import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


ONE_MB = 1_000_000
LAYOUT_BOUND_S = 10.0  # measured ~0.5 s (was 64 s before long words got break opportunities): cannot flake


class Counter(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def trap() -> Iterator[str]:
    """A web server on 127.0.0.1 that records every request: the reply's pictures and styles point at it."""
    Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def show_reply(window: MainWindow, history: History, text: str) -> int:
    conv = history.create_conversation("Hostile")
    history.add_message(conv.id, "user", "say something nasty")
    history.add_message(conv.id, "assistant", text, finish_reason="stop")
    window.refresh_conversations()
    window.select_conversation(conv.id)
    return conv.id


def shown_document(window: MainWindow, row: int = 1) -> QTextDocument:
    delegate = window.chat_view.delegate
    return delegate.document(window.chat_model.row(row), delegate.text_width(delegate.row_width()))[0]


def image_or_anchor_targets(doc: QTextDocument) -> list[str]:
    """Every image name and link target in the document, as Qt would load or open them."""
    found = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                found.append("image:" + fmt.toImageFormat().name())
            if fmt.isAnchor():
                found.append("link:" + fmt.anchorHref())
            if fmt.hasProperty(QTextFormat.Property.BackgroundImageUrl):
                found.append("background:" + str(fmt.property(QTextFormat.Property.BackgroundImageUrl)))
            it += 1
        block = block.next()
    return found


def test_html_scripts_images_and_file_links_are_inert_and_nothing_is_fetched(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot, trap: str
) -> None:
    reply = (
        f'<img src="{trap}/img.png"> <script>fetch("{trap}/script")</script>\n\n'
        f'<iframe src="{trap}/frame"></iframe> <link rel="stylesheet" href="{trap}/style.css">\n\n'
        f"<style>p {{ background: url({trap}/bg.png) }}</style>\n\n"
        f'<p style="background-image: url({trap}/inline.png)">styled</p>\n\n'
        f'![picture]({trap}/md.png) [passwd](file:///etc/passwd) <a href="file:///etc/passwd">local</a>\n\n'
        '<a href="javascript:alert(1)">js</a> <svg onload="alert(1)"></svg> <object data="x.swf"></object>\n'
    )
    window = make_window(auto_load=False)
    show_reply(window, history, reply)
    doc = shown_document(window)
    window.chat_view.viewport().grab()  # painted for real: any resource would be asked for now
    text = doc.toPlainText()
    assert "<script>" in text and "<img" in text and "<iframe" in text  # shown as the text it is
    assert image_or_anchor_targets(doc) == [f"link:{trap}/md.png"]  # the picture is a link you may click, no more
    assert "[image: picture]" in text and "file:///etc/passwd" in text
    qtbot.wait(50)  # a request, had one started, would reach the server thread by now; none may
    assert Counter.hits == []


def test_terminal_escapes_are_removed_and_other_controls_shown(
    make_window: Callable[..., MainWindow], history: History
) -> None:
    reply = "\x1b[1;31mred alert\x1b[0m done \x1b]0;owned title\x07 bell\x07 nul\x00 del\x7f c1\x85 tab\there"
    window = make_window(auto_load=False)
    show_reply(window, history, reply)
    text = shown_document(window).toPlainText()
    assert "red alert done bell␇ nul␀ del␡ c1\ufffd tab here" in text  # (HTML folds runs of spaces and tabs)
    assert not any(ch in text for ch in "\x1b\x00\x07\x7f\x85")
    assert window.chat_model.row(1).content == reply  # the history keeps what the model wrote


def test_bidi_overrides_are_shown_and_cannot_reorder_the_text(
    make_window: Callable[..., MainWindow], history: History
) -> None:
    # "Trojan Source": the override would make the line read as one thing and be another.
    reply = 'if access_level != "user\u202e \u2066// Check if admin\u2069 \u2066":\n\n\u202dabc\u202c'
    window = make_window(auto_load=False)
    show_reply(window, history, reply)
    text = shown_document(window).toPlainText()
    assert not any("\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069" for ch in text)
    assert '"user[RLO] [LRI]// Check if admin[PDI] [LRI]":' in text and "[LRO]abc[PDF]" in text


@pytest.mark.parametrize("line", ["x" * ONE_MB, "word " * (ONE_MB // 5)], ids=["one-word", "many-words"])
def test_a_one_megabyte_line_is_laid_out_without_freezing(
    make_window: Callable[..., MainWindow], history: History, qtbot: QtBot, line: str
) -> None:
    window = make_window(auto_load=False)
    started = time.perf_counter()
    show_reply(window, history, line)
    doc = shown_document(window)
    window.chat_view.viewport().grab()
    elapsed = time.perf_counter() - started
    assert elapsed < LAYOUT_BOUND_S, f"showing a 1 MB line took {elapsed:.1f} s"
    assert doc.toPlainText().replace("\u200b", "").strip() == line.strip()
    ticks: list[int] = []  # the event loop is free again: a timer fires
    qtbot.waitUntil(lambda: bool(ticks.append(1)) or len(ticks) > 1, timeout=2000)


def test_long_runs_get_break_opportunities_only_where_needed() -> None:
    assert break_long_runs("short words stay") == "short words stay"
    broken = break_long_runs("a " + "y" * (LONG_RUN + 10) + " b")
    assert broken.replace("\u200b", "") == "a " + "y" * (LONG_RUN + 10) + " b" and "\u200b" in broken
    assert inert_text("plain\ttext\nwith é and 🦙") == "plain\ttext\nwith é and 🦙"  # untouched


@pytest.fixture(scope="session")
def invalid_utf8_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model made to emit only the bytes 0x80 and 0x81: continuation bytes with no lead, never UTF-8.

    Every output row is zeroed but those two byte tokens', which get a row and its negative: one of them always
    has the largest logit by far."""
    dst = tmp_path_factory.mktemp("invalid-utf8") / "tiny-invalid-utf8.gguf"
    rows = {FIRST_BYTE_TOKEN + 0x80: 1.0, FIRST_BYTE_TOKEN + 0x81: -1.0}
    return edit_output_rows(tiny_model, dst, zero="all", rows=rows, seed=7)


def test_invalid_utf8_from_the_engine_shows_as_replacement_characters(
    make_window: Callable[..., MainWindow], paths: Paths, history: History, invalid_utf8_model: Path, qtbot: QtBot
) -> None:
    shutil.copy(invalid_utf8_model, paths.models / invalid_utf8_model.name)
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    window.panel.rows["max_tokens"].spin.setValue(12)
    window.send("hello")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    row = window.chat_model.row(window.chat_model.rowCount() - 1)
    assert row.role == "assistant" and row.status == "complete"
    assert row.content and set(row.content) == {"\ufffd"}  # each lone byte became U+FFFD, nothing else
    assert row.content.encode("utf-8")  # a proper string: no surrogates
    assert history.get_message(row.message_id).content == row.content
    assert "\ufffd" in shown_document(window, window.chat_model.rowCount() - 1).toPlainText()
