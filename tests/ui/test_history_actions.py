"""Help → Open log folder, and a conversation title suggested by the loaded model (real llama.cpp, tiny model)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pytestqt.qtbot import QtBot

from llamadesk.core.history import History
from llamadesk.paths import Paths
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.title_suggester import MAX_TITLE_CHARS, clean_title, title_prompt
from llamadesk.ui.workers import live_query_runners
from tests.ui.conftest import REPLY_TIMEOUT_MS, Dialogs, FileUrls, help_action, run_menu_action


@pytest.fixture(autouse=True)
def no_query_thread_left() -> Iterator[None]:
    yield
    assert live_query_runners() == [], "a query thread is still running after the test"


pytestmark = pytest.mark.qt_log_ignore("This plugin does not support.*")  # offscreen popups


def test_open_log_folder_hands_the_folder_to_the_desktop(
    make_window: Callable[..., MainWindow], paths: Paths, file_urls: FileUrls, qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)
    help_action(window, "Open log folder").trigger()  # type: ignore[attr-defined]
    assert [u.toLocalFile() for u in file_urls.urls] == [str(paths.logs)]
    assert paths.logs.is_dir()


def chat(history: History) -> int:
    conv = history.create_conversation("How do I boil an egg for break…")
    history.add_message(conv.id, "user", "How do I boil an egg for breakfast?")
    history.add_message(conv.id, "assistant", "Put it in boiling water for seven minutes.", finish_reason="stop")
    return conv.id


def test_without_a_model_the_title_suggestion_says_one_sentence(
    make_window: Callable[..., MainWindow], history: History, dialogs: Dialogs
) -> None:
    cid = chat(history)
    window = make_window(auto_load=False)
    window.refresh_conversations()
    run_menu_action(window.sidebar, cid, "Suggest title with the model")
    assert dialogs.warnings == [("No title suggested", "Load a model first; it writes the title.")]
    assert history.get_conversation(cid).title == "How do I boil an egg for break…"


def test_the_model_suggests_a_title_and_the_conversation_is_renamed(
    window: MainWindow, history: History, qtbot: QtBot, dialogs: Dialogs
) -> None:
    cid = chat(history)
    window.refresh_conversations()
    titles = window.navigation.history_actions.titles
    answers: list[str] = []
    window.host.worker.tokens.connect(lambda rid, text: answers.append(text) if rid == titles.request else None)
    with qtbot.waitSignal(titles.ended, timeout=REPLY_TIMEOUT_MS):
        run_menu_action(window.sidebar, cid, "Suggest title with the model")
        assert titles.is_running and window.sidebar.suggesting_title
    expected = clean_title("".join(answers))
    if expected:  # the tiny model's random weights write some words: they become the title
        assert dialogs.warnings == []
        assert history.get_conversation(cid).title == expected and len(expected) <= MAX_TITLE_CHARS
        assert window.windowTitle() == f"{expected} — LlamaDesk"
        assert window.sidebar.item_for(cid).title == expected  # type: ignore[union-attr]
    else:  # ...or only spaces and marks: one sentence, the title stays
        assert dialogs.warnings == [("No title suggested", "The model gave no usable title; the old one stays.")]
    assert not window.sidebar.suggesting_title


def test_a_title_suggestion_can_be_stopped(
    endless_window: MainWindow, history: History, qtbot: QtBot, dialogs: Dialogs
) -> None:
    window = endless_window
    cid = chat(history)
    window.refresh_conversations()
    titles = window.navigation.history_actions.titles
    with qtbot.waitSignal(titles.ended, timeout=REPLY_TIMEOUT_MS):
        run_menu_action(window.sidebar, cid, "Suggest title with the model")
        offered = run_menu_action(window.sidebar, cid, "Stop suggesting the title")
        assert "Suggest title with the model" not in offered
    assert history.get_conversation(cid).title == "How do I boil an egg for break…"
    assert dialogs.warnings == [] and not titles.is_running


def test_no_title_while_a_reply_streams(endless_window: MainWindow, history: History, dialogs: Dialogs) -> None:
    window = endless_window
    cid = chat(history)
    window.refresh_conversations()
    window.select_conversation(cid)
    window.send("Tell me more")
    assert window.is_generating
    run_menu_action(window.sidebar, cid, "Suggest title with the model")
    assert dialogs.warnings == [("No title suggested", "Wait for the reply to end, then ask for a title.")]
    window.stop_generation()


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ('Title: "Boiling Eggs."\nMore text', "Boiling Eggs"),
        ("\n\n  **Egg timing**  ", "Egg timing"),
        ("", ""),
        ("\x1b[31mRed\x1b[0m \u202eeggs\u202c\x05", "Red eggs"),
        ("x" * 100, "x" * (MAX_TITLE_CHARS - 1) + "…"),
    ],
)
def test_clean_title(answer: str, title: str) -> None:
    assert clean_title(answer) == title


def test_the_prompt_holds_the_first_exchange_only_briefly() -> None:
    messages = title_prompt("q" * 5000, "a")
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert "Reply with the title only" in messages[0]["content"] and len(messages[0]["content"]) < 2000
