"""Pure helpers for the sidebar: date groups (pinned, today, yesterday, last 7 days, older) and automatic titles."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from typing import Final

from llamadesk.core.history.models import Conversation

NEW_TITLE: Final = "New chat"
TITLE_MAX_CHARS: Final = 48


class DateGroup(enum.Enum):
    """A sidebar heading; the value is the English label (the UI may translate it)."""

    PINNED = "Pinned"
    TODAY = "Today"
    YESTERDAY = "Yesterday"
    LAST_7_DAYS = "Last 7 days"
    OLDER = "Older"


def date_group(updated_at: float, *, pinned: bool = False, now: float) -> DateGroup:
    """The heading a conversation last active at `updated_at` goes under, by calendar days in local time.

    Yesterday is the previous calendar day (not "24 to 48 hours ago"); last 7 days covers the five days before
    that, so today, yesterday and last 7 days together span seven calendar days. A time after `now` (a clock
    moved back) counts as today.
    """
    if pinned:
        return DateGroup.PINNED
    today = dt.datetime.fromtimestamp(now).date()
    day = dt.datetime.fromtimestamp(min(updated_at, now)).date()
    age_days = (today - day).days  # calendar arithmetic on dates: daylight-saving changes do not shift a day
    if age_days <= 0:
        return DateGroup.TODAY
    if age_days == 1:
        return DateGroup.YESTERDAY
    if age_days < 7:
        return DateGroup.LAST_7_DAYS
    return DateGroup.OLDER


def group_conversations(
    conversations: Iterable[Conversation], *, now: float
) -> list[tuple[DateGroup, list[Conversation]]]:
    """Consecutive conversations under their heading, in the order given (the sidebar's: pinned, then recent).

    Works on one page at a time too: a page that continues the previous one's group starts with the same heading,
    which the UI merges.
    """
    groups: list[tuple[DateGroup, list[Conversation]]] = []
    for c in conversations:
        group = date_group(c.updated_at, pinned=c.pinned, now=now)
        if groups and groups[-1][0] is group:
            groups[-1][1].append(c)
        else:
            groups.append((group, [c]))
    return groups


_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?|ftp|file)://\S+|\bwww\.\S+", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`~]+|<[^>\n]{1,80}>")
_LINE_START = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+)+")
_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))\b[\s,.!:;-]*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[\n\r]")


def _clean(text: str) -> str:
    """The first meaningful sentence of markdown text, without code, links' targets, URLs or markup."""
    text = _CODE_BLOCK.sub("\n", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    lines = [_LINE_START.sub("", line) for line in text.splitlines()]
    text = _MARKUP.sub("", "\n".join(line for line in lines if line.strip()))
    text = text.strip()
    greeting_free = _GREETING.sub("", text).strip()
    if greeting_free:  # "Hi!" alone stays a title; "Hi, how do I ..." loses the greeting
        text = greeting_free
    first = _SENTENCE_END.split(text, maxsplit=1)[0] if text else ""
    return " ".join(first.split()).strip(" .,;:-–—")


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:  # cut at a word boundary unless that would drop most of the text
        cut = cut[:space]
    return cut.rstrip(" .,;:-–—") + "…"


def auto_title(first_user_text: str, first_reply_text: str = "", *, max_chars: int = TITLE_MAX_CHARS) -> str:
    """A title from the first exchange, without asking the model: the first sentence of your first message
    (greetings, markdown, code blocks and URLs removed), else of the reply; at most `max_chars` characters,
    cut at a word; NEW_TITLE when neither holds any words."""
    for source in (first_user_text, first_reply_text):
        title = _clean(source or "")
        if any(ch.isalnum() for ch in title):
            title = _shorten(title, max_chars)
            return title[0].upper() + title[1:]
    return NEW_TITLE
