"""The sidebar's data: date groups, paging and counting, automatic titles, and the trash (delete with undo)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamadesk.core.errors import HistoryError
from llamadesk.core.history import DateGroup, History, auto_title, date_group, group_conversations
from llamadesk.core.history.sidebar import NEW_TITLE, TITLE_MAX_CHARS


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History(tmp_path / "history.sqlite3") as h:
        yield h


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second).timestamp()  # naive: local time, like the sidebar


# -- date groups -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "group"),
    [
        ((2026, 3, 10, 8, 59), DateGroup.TODAY),
        ((2026, 3, 10, 0, 0, 1), DateGroup.TODAY),
        ((2026, 3, 10, 23, 0), DateGroup.TODAY),  # after now (a clock set back): today, not "the future"
        ((2026, 3, 9, 23, 59), DateGroup.YESTERDAY),
        ((2026, 3, 9, 0, 0), DateGroup.YESTERDAY),
        ((2026, 3, 8, 23, 59), DateGroup.LAST_7_DAYS),
        ((2026, 3, 4, 0, 0), DateGroup.LAST_7_DAYS),
        ((2026, 3, 3, 23, 59), DateGroup.OLDER),
        ((2025, 1, 1, 12, 0), DateGroup.OLDER),
    ],
)
def test_date_group_by_calendar_day(when: tuple[int, ...], group: DateGroup) -> None:
    now = local(2026, 3, 10, 9, 0)
    assert date_group(local(*when), now=now) is group
    assert date_group(local(*when), pinned=True, now=now) is DateGroup.PINNED


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX only")
def test_date_group_across_daylight_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        # The night of 29 March 2026 has 23 hours in Berlin: 24 h before 00:30 is already the day before yesterday.
        now = local(2026, 3, 30, 0, 30)
        assert date_group(local(2026, 3, 29, 0, 15), now=now) is DateGroup.YESTERDAY
        assert date_group(local(2026, 3, 28, 23, 59), now=now) is DateGroup.LAST_7_DAYS
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_group_conversations_in_sidebar_order(history: History) -> None:
    now = local(2026, 3, 10, 12, 0)
    ages = {"pinned old": 400, "today": 0.1, "yesterday": 1, "week": 3, "old a": 30, "old b": 90}
    for title, days in ages.items():
        c = history.create_conversation(title)
        stamp = now - days * 86400
        conn = history._conn
        assert conn is not None
        conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, c.id))
        if title.startswith("pinned"):
            history.set_pinned(c.id, True)
    page = history.list_conversations()
    groups = group_conversations(page, now=now)
    assert [(g, [c.title for c in cs]) for g, cs in groups] == [
        (DateGroup.PINNED, ["pinned old"]),
        (DateGroup.TODAY, ["today"]),
        (DateGroup.YESTERDAY, ["yesterday"]),
        (DateGroup.LAST_7_DAYS, ["week"]),
        (DateGroup.OLDER, ["old a", "old b"]),
    ]
    # Page by page (the sidebar is lazy): the headings line up with the whole list's.
    paged = [group_conversations(history.list_conversations(limit=5, offset=o), now=now) for o in (0, 5)]
    assert [g for page_groups in paged for g, _ in page_groups] == [
        DateGroup.PINNED, DateGroup.TODAY, DateGroup.YESTERDAY, DateGroup.LAST_7_DAYS, DateGroup.OLDER, DateGroup.OLDER
    ]  # fmt: skip
    assert history.count_conversations() == 6
    assert group_conversations([], now=now) == []


# -- automatic titles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "reply", "title"),
    [
        ("How long do I bake a ginger cake?", "", "How long do I bake a ginger cake?"),
        ("hi! how long do I bake a ginger cake?", "", "How long do I bake a ginger cake?"),
        ("Hello", "Hi there!", "Hello"),
        ("  what   is\n\nWAL mode in SQLite?  ", "", "What is"),
        ("explain this:\n```python\nprint('x')\n```", "", "Explain this"),
        ("```\nonly code\n```", "# Reading the traceback\nThe error means...", "Reading the traceback"),
        ("See https://example.com/very/long/path please", "", "See please"),
        ("Summarise [this page](https://example.com) for me. Then translate it.", "", "Summarise this page for me"),
        ("**Bold** _question_ about `ruff`", "", "Bold question about ruff"),
        ("", "", NEW_TITLE),
        ("!!! ???", "...", NEW_TITLE),
    ],
)
def test_auto_title(user: str, reply: str, title: str) -> None:
    assert auto_title(user, reply) == title


def test_auto_title_is_short_and_cut_at_a_word() -> None:
    text = "Please compare the memory bandwidth of every consumer graphics card released since twenty nineteen"
    title = auto_title(text, "")
    assert len(title) <= TITLE_MAX_CHARS and title.endswith("…")
    assert title[:-1] == text[: len(title) - 1] and text[len(title) - 1] == " "
    assert auto_title("x" * 200, "").endswith("…") and len(auto_title("x" * 200, "")) == TITLE_MAX_CHARS


# -- the trash ---------------------------------------------------------------------------------------------------


def test_trash_restore_and_purge(history: History, tmp_path: Path) -> None:
    keep = history.create_conversation("keep")
    gone = history.create_conversation("gone")
    m = history.add_message(gone.id, "user", "still here")
    history.trash_conversation(gone.id)
    assert [c.title for c in history.list_conversations()] == ["keep"]
    assert history.count_conversations() == 1
    trashed = history.get_conversation(gone.id)  # still readable: the UI can show what undo brings back
    assert trashed.deleted_at is not None and abs(trashed.deleted_at - time.time()) < 60
    assert [c.id for c in history.list_trash()] == [gone.id]
    assert [x.content for x in history.messages(gone.id)] == ["still here"]

    history.restore_conversation(gone.id)  # undo
    assert [c.title for c in history.list_conversations()] == ["gone", "keep"]
    assert history.get_conversation(gone.id).deleted_at is None and history.list_trash() == []

    history.trash_conversation(gone.id)
    assert history.purge_trash(older_than_s=3600) == 0  # too recent
    assert history.purge_trash() == 1
    with pytest.raises(HistoryError, match="does not exist"):
        history.get_conversation(gone.id)
    with pytest.raises(HistoryError, match="does not exist"):
        history.get_message(m.id)
    assert history.get_conversation(keep.id).title == "keep"
    for call in (history.trash_conversation, history.restore_conversation):
        with pytest.raises(HistoryError, match="does not exist"):
            call(gone.id)
    assert history.check_integrity() == []


def test_trashing_twice_keeps_the_first_time(history: History) -> None:
    c = history.create_conversation()
    history.trash_conversation(c.id)
    first = history.get_conversation(c.id).deleted_at
    history.trash_conversation(c.id)
    assert history.get_conversation(c.id).deleted_at == first


def test_reply_streaming_into_a_trashed_conversation_is_kept(history: History) -> None:
    c = history.create_conversation()
    reply = history.begin_reply(c.id, flush_interval=0)
    history.trash_conversation(c.id)
    reply.append("written while in the trash")
    reply.finish()
    history.restore_conversation(c.id)
    assert [m.content for m in history.messages(c.id)] == ["written while in the trash"]


def test_opening_purges_old_trash_only(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    with History(db) as h:
        old = h.create_conversation("old trash")
        h.add_message(old.id, "user", "x")
        recent = h.create_conversation("recent trash")
        h.trash_conversation(old.id)
        h.trash_conversation(recent.id)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE conversations SET deleted_at = ? WHERE id = ?", (time.time() - 31 * 86400, old.id))
    conn.commit()
    conn.close()
    with History(db, trash_retention_s=None) as h:
        assert len(h.list_trash()) == 2  # None: keep everything
    with History(db) as h:
        assert [c.id for c in h.list_trash()] == [recent.id]
        assert h.check_integrity() == []


def test_list_pages_are_checked(history: History) -> None:
    with pytest.raises(HistoryError, match="offset"):
        history.list_conversations(limit=-1)
    with pytest.raises(HistoryError, match="offset"):
        history.list_trash(offset=-3)
