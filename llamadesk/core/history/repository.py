"""The `History` repository: conversations, branching messages, the trash, search and import on one connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from llamadesk.core.errors import HistoryError
from llamadesk.core.history import importer, search
from llamadesk.core.history.importer import insert_images
from llamadesk.core.history.models import (
    CONVERSATION_COLUMNS,
    IMAGE_COLUMNS,
    MESSAGE_COLUMNS,
    ROLES,
    STATUSES,
    UNSET,
    Conversation,
    FullConversation,
    Message,
    MessageImage,
    SearchHit,
    _Unset,
    conversation_from_row,
    dump_json,
    load_json,
    message_from_row,
)
from llamadesk.core.history.store import Store
from llamadesk.core.history.streaming import DEFAULT_FLUSH_INTERVAL_S, StreamingReply
from llamadesk.core.images import IMAGES_FOLDER, ImageStore

#: How long a conversation stays in the trash before opening the history deletes it for good.
TRASH_RETENTION_S: Final = 30 * 24 * 3600.0

# Walks parent_id from the leaf up to the root in one query. The depth bound only guards against a cycle
# written by hand into the file; the app always points a message at an older one.
_BRANCH_CTE = """
WITH RECURSIVE branch(id, depth) AS (
    SELECT leaf_message_id, 0 FROM conversations WHERE id = ? AND leaf_message_id IS NOT NULL
    UNION ALL
    SELECT m.parent_id, b.depth + 1 FROM messages AS m JOIN branch AS b ON m.id = b.id
    WHERE m.parent_id IS NOT NULL AND b.depth < 1000000
)
"""
_BRANCH_SQL = f"""{_BRANCH_CTE}
SELECT {", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))}
FROM branch AS b JOIN messages AS m ON m.id = b.id
ORDER BY b.depth DESC
"""
_BRANCH_IDS_SQL = f"{_BRANCH_CTE} SELECT id FROM branch ORDER BY depth"

# From a message down to a leaf, taking the newest reply at each step (the last regeneration or edit).
_NEWEST_LEAF_SQL = """
WITH RECURSIVE down(id, depth) AS (
    SELECT ?, 0
    UNION ALL
    SELECT (SELECT max(m.id) FROM messages AS m WHERE m.parent_id = d.id), d.depth + 1 FROM down AS d
    WHERE d.id IS NOT NULL AND d.depth < 1000000
)
SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
"""

# The images of a conversation's messages: by messages_by_conversation, then message_images' primary key.
_IMAGES_OF_CONVERSATION_SQL = f"""
SELECT i.message_id, {", ".join("i." + c.strip() for c in IMAGE_COLUMNS.split(","))}
FROM messages AS m JOIN message_images AS i ON i.message_id = m.id
WHERE m.conversation_id = ? ORDER BY i.message_id, i.position
"""

_LIVE_ORDER = "WHERE deleted_at IS NULL ORDER BY pinned DESC, updated_at DESC, id DESC"


def _no_conversation(cid: int) -> HistoryError:
    return HistoryError(f"Conversation {cid} does not exist.")


def _no_message(mid: int) -> HistoryError:
    return HistoryError(f"Message {mid} does not exist.")


def _check_page(limit: int | None, offset: int) -> None:
    if (limit is not None and limit < 0) or offset < 0:
        raise HistoryError(f"A page of the history needs a limit and an offset of 0 or more, not {limit}/{offset}.")


class History(Store):
    """The history database: open one per thread; every write is one transaction."""

    def __init__(self, db_path: Path, *, trash_retention_s: float | None = TRASH_RETENTION_S) -> None:
        """Opens or creates the database and migrates it; marks replies left 'streaming' by a crash 'interrupted'
        and deletes conversations in the trash for longer than `trash_retention_s` (None: keep them)."""
        super().__init__(db_path)
        #: the images messages refer to, beside the database (`images/` in the data folder, where the chat stores
        #: them); a history in memory has none of its own, so it never collects garbage (see `collect_images`)
        self.images = ImageStore(None if self._in_memory else self.path.parent / IMAGES_FOLDER)
        try:
            # Nothing is streaming when a process opens the file, except in a second process while the first
            # streams: its next flush writes 'streaming' back, so that case heals itself. Read first (an indexed
            # look-up), so a plain open takes no write lock.
            if self._read("SELECT 1 FROM messages WHERE status = 'streaming' LIMIT 1"):
                with self.write() as db:
                    db.execute("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
            if trash_retention_s is not None:
                cutoff = time.time() - trash_retention_s
                if self._read("SELECT 1 FROM conversations WHERE deleted_at < ? LIMIT 1", (cutoff,)):
                    self.purge_trash(older_than_s=trash_retention_s)
        except BaseException:
            self.close()
            raise

    @property
    def _in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    @staticmethod
    def _leaf(db: sqlite3.Connection, cid: int) -> int | None:
        row = db.execute("SELECT leaf_message_id FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise _no_conversation(cid)
        leaf: int | None = row[0]
        return leaf

    @staticmethod
    def _check_member(db: sqlite3.Connection, cid: int, mid: int) -> None:
        row = db.execute("SELECT conversation_id FROM messages WHERE id = ?", (mid,)).fetchone()
        if row is None:
            raise _no_message(mid)
        if row[0] != cid:
            raise HistoryError(f"Message {mid} belongs to another conversation than {cid}.")

    # -- conversations ----------------------------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "New chat",
        *,
        model: str | None = None,
        system_prompt: str = "",
        sampling: Mapping[str, Any] | None = None,
        source: str = "app",
    ) -> Conversation:
        """`source`: "app", or "server" for a request to LlamaDesk's server (shown as a label in the sidebar)."""
        now = time.time()
        with self.write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, created_at, updated_at, model, system_prompt, sampling_json, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, now, now, model, system_prompt, dump_json(sampling or {}), source),
            )
        cid = cur.lastrowid
        assert cid is not None  # an INSERT always sets it
        return self.get_conversation(cid)

    def list_conversations(self, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """The sidebar: pinned first, then the most recently active; `limit`/`offset` page through them.

        Conversations in the trash are not listed (`list_trash`). `sidebar.group_conversations` adds the headings.
        """
        _check_page(limit, offset)
        rows = self._read(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations {_LIVE_ORDER} LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [conversation_from_row(r) for r in rows]

    def count_conversations(self) -> int:
        """How many conversations the sidebar lists (the trash not included): the length of its scroll range."""
        return int(self._read("SELECT count(*) FROM conversations WHERE deleted_at IS NULL")[0][0])

    def get_conversation(self, cid: int) -> Conversation:
        """The conversation, also when it is in the trash (then `deleted_at` is set)."""
        rows = self._read(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (cid,))
        if not rows:
            raise _no_conversation(cid)
        return conversation_from_row(rows[0])

    def _update(self, cid: int, assignments: str, params: tuple[Any, ...]) -> None:
        with self.write() as db:
            if db.execute(f"UPDATE conversations SET {assignments} WHERE id = ?", (*params, cid)).rowcount == 0:
                raise _no_conversation(cid)

    def rename_conversation(self, cid: int, title: str) -> None:
        self._update(cid, "title = ?", (title,))

    def set_pinned(self, cid: int, pinned: bool) -> None:
        self._update(cid, "pinned = ?", (int(pinned),))

    def update_conversation(
        self,
        cid: int,
        *,
        model: str | _Unset | None = UNSET,
        system_prompt: str | _Unset = UNSET,
        sampling: Mapping[str, Any] | _Unset = UNSET,
    ) -> Conversation:
        """Changes only the settings given; returns the conversation as stored."""
        changes: dict[str, Any] = {}
        if model is not UNSET:
            changes["model"] = model
        if not isinstance(system_prompt, _Unset):
            changes["system_prompt"] = system_prompt
        if not isinstance(sampling, _Unset):
            changes["sampling_json"] = dump_json(sampling)
        if changes:
            # Column names come from the fixed keys above, never from the caller.
            self._update(cid, ", ".join(f"{k} = ?" for k in changes), tuple(changes.values()))
        return self.get_conversation(cid)

    # -- the trash --------------------------------------------------------------------------------------

    def trash_conversation(self, cid: int) -> None:
        """Moves the conversation to the trash: gone from the sidebar and search, whole until purged (undo:
        `restore_conversation`). A reply still streaming into it keeps being saved."""
        self._update(cid, "deleted_at = coalesce(deleted_at, ?)", (time.time(),))

    def restore_conversation(self, cid: int) -> None:
        """Takes the conversation out of the trash, back where it was in the sidebar."""
        self._update(cid, "deleted_at = NULL", ())

    def list_trash(self, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """Conversations in the trash, most recently trashed first."""
        _check_page(limit, offset)
        rows = self._read(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE deleted_at IS NOT NULL"
            " ORDER BY deleted_at DESC, id DESC LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [conversation_from_row(r) for r in rows]

    def purge_trash(self, *, older_than_s: float = 0.0, now: float | None = None) -> int:
        """Deletes for good the conversations trashed more than `older_than_s` ago; returns how many."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self.write() as db:
            purged = int(db.execute("DELETE FROM conversations WHERE deleted_at <= ?", (cutoff,)).rowcount)
        if purged:
            self.collect_images()
        return purged

    def delete_conversation(self, cid: int) -> None:
        """Deletes the conversation for good (trashed or not) and, by ON DELETE CASCADE, all its messages."""
        with self.write() as db:
            if db.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount == 0:
                raise _no_conversation(cid)
        self.collect_images()

    # -- images -----------------------------------------------------------------------------------------

    def referenced_images(self) -> set[str]:
        """The hashes of every image a message still refers to (conversations in the trash included)."""
        return {r[0] for r in self._read("SELECT DISTINCT sha256 FROM message_images")}

    def collect_images(self, *, grace_s: float = 3600.0) -> tuple[int, int]:
        """Deletes the stored images no message refers to any more; returns (files, bytes) freed.

        Called after a conversation is deleted for good. Images stored within `grace_s` stay (a message may be
        about to refer to them: see ImageStore.collect_garbage). A history in memory frees nothing: the images
        in the data folder belong to the history on disk."""
        if self._in_memory:
            return 0, 0
        return self.images.collect_garbage(self.referenced_images(), grace_s=grace_s)

    # -- messages ---------------------------------------------------------------------------------------

    def add_message(
        self,
        cid: int,
        role: str,
        content: str,
        *,
        parent_id: int | _Unset | None = UNSET,
        status: str = "complete",
        finish_reason: str | None = None,
        receipt: Mapping[str, Any] | None = None,
        images: Sequence[MessageImage] = (),
    ) -> Message:
        """Adds a message under `parent_id` (default: the current leaf, None: a new root) and makes it the leaf.

        `images`: the images attached to it, already in `self.images` (ImageStore.add), in order."""
        if role not in ROLES:
            raise HistoryError(f"Unknown message role {role!r}; use one of {', '.join(ROLES)}.")
        if status not in STATUSES:
            raise HistoryError(f"Unknown message status {status!r}; use one of {', '.join(STATUSES)}.")
        now = time.time()
        receipt_json = None if receipt is None else dump_json(receipt)
        with self.write() as db:
            leaf = self._leaf(db, cid)
            parent = leaf if isinstance(parent_id, _Unset) else parent_id
            if parent is not None:
                self._check_member(db, cid, parent)
            cur = db.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, created_at, status,"
                " finish_reason, receipt_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, parent, role, content, now, status, finish_reason, receipt_json),
            )
            mid = cur.lastrowid
            assert mid is not None  # an INSERT always sets it
            insert_images(db, mid, images)
            db.execute("UPDATE conversations SET leaf_message_id = ?, updated_at = ? WHERE id = ?", (mid, now, cid))
        kept = tuple(MessageImage(i.sha256, i.mime, i.width, i.height) for i in images)
        return Message(
            mid, cid, parent, role, content, now, status, finish_reason, load_json(receipt_json, "receipt"), kept
        )

    def messages(self, cid: int) -> list[Message]:
        """The branch the user is looking at, root first: the leaf and its ancestors."""
        with self.snapshot():
            rows = self._read(_BRANCH_SQL, (cid,))
            if not rows:
                self.get_conversation(cid)  # an empty branch is fine; an unknown conversation is an error
            return self._with_images(cid, [message_from_row(r) for r in rows])

    def all_messages(self, cid: int) -> list[Message]:
        """Every message of every branch, oldest first, so each parent comes before its replies."""
        with self.snapshot():
            rows = self._read(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id", (cid,))
            if not rows:
                self.get_conversation(cid)
            return self._with_images(cid, [message_from_row(r) for r in rows])

    def full_conversation(self, cid: int) -> FullConversation:
        """The conversation and all its messages, read from one snapshot (what an export writes)."""
        with self.snapshot():
            return FullConversation(self.get_conversation(cid), self.all_messages(cid))

    def get_message(self, mid: int) -> Message:
        with self.snapshot():
            rows = self._read(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (mid,))
            if not rows:
                raise _no_message(mid)
            images = self._read(f"SELECT {IMAGE_COLUMNS} FROM message_images WHERE message_id = ? ORDER BY position",
                                (mid,))  # fmt: skip
        message = message_from_row(rows[0])
        return replace(message, images=tuple(MessageImage(*r) for r in images)) if images else message

    def _with_images(self, cid: int, messages: list[Message]) -> list[Message]:
        """`messages` of conversation `cid` with their images (one indexed read for the whole conversation)."""
        by_message: dict[int, list[MessageImage]] = {}
        for mid, *image in self._read(_IMAGES_OF_CONVERSATION_SQL, (cid,)):
            by_message.setdefault(mid, []).append(MessageImage(*image))
        if not by_message:
            return messages
        return [replace(m, images=tuple(by_message[m.id])) if m.id in by_message else m for m in messages]

    def children(self, cid: int, parent_id: int | None) -> list[Message]:
        """The replies to `parent_id` (None: the roots), oldest first: the alternatives at one branch point."""
        rows = self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
            (cid, parent_id),
        )
        if not rows:
            self.get_conversation(cid)
        return self._with_images(cid, [message_from_row(r) for r in rows])

    def set_leaf(self, cid: int, message_id: int | None) -> None:
        """Switches the branch shown: `message_id` becomes the leaf (None: an empty conversation view)."""
        with self.write() as db:
            self._leaf(db, cid)
            if message_id is not None:
                self._check_member(db, cid, message_id)
            db.execute("UPDATE conversations SET leaf_message_id = ? WHERE id = ?", (message_id, cid))

    def leaf_for(self, mid: int) -> int:
        """The leaf to show so that message `mid` is on screen (e.g. a search hit): the conversation's current
        leaf when `mid` is on the branch shown, else the newest leaf below `mid`. Pass it to `set_leaf`."""
        cid = self.get_message(mid).conversation_id
        shown = self._branch_ids(cid)
        if mid in shown:
            return shown[0]  # the branch is read from the leaf up
        return int(self._read(_NEWEST_LEAF_SQL, (mid,))[0][0])

    def _branch_ids(self, cid: int) -> list[int]:
        """Ids of the branch shown, leaf first: no message text is read."""
        return [int(r[0]) for r in self._read(_BRANCH_IDS_SQL, (cid,))]

    def begin_reply(
        self, cid: int, *, parent_id: int | _Unset | None = UNSET, flush_interval: float = DEFAULT_FLUSH_INTERVAL_S
    ) -> StreamingReply:
        """Adds an empty assistant message with status 'streaming' as the new leaf, to be filled as tokens come."""
        message = self.add_message(cid, "assistant", "", parent_id=parent_id, status="streaming")
        return StreamingReply(self, message, flush_interval)

    # -- search -----------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str = "recent",
        titles: bool = True,
        prefix: bool = False,
    ) -> list[SearchHit]:
        """Full-text search of live conversations: title hits first (unless `titles` is False), then messages.

        Every word must match, as a whole word, case and accents ignored; "double quotes" make a phrase; `word*`
        matches word beginnings, and with `prefix` (search as you type) so does the last word unless a space
        follows it. Any text is a valid query: one with no letter or digit finds nothing.
        `order`: "recent" (newest message first; fast however common the words) or "relevance" (BM25 over the
        newest `search.RELEVANCE_CANDIDATES` matches). `offset`/`limit` page lazily through the results.
        """
        _check_page(limit, offset)
        if order not in search.ORDERS:
            raise HistoryError(f"Unknown search order {order!r}; use one of {', '.join(search.ORDERS)}.")
        return self._query(
            lambda db: search.search(db, query, limit=limit, offset=offset, order=order, titles=titles, prefix=prefix)
        )

    def search_in_conversation(
        self, cid: int, query: str, *, branch_only: bool = True, prefix: bool = False
    ) -> list[int]:
        """Ids of the messages of conversation `cid` that match `query` (the rules of `search`), oldest first:
        on the branch shown only (Ctrl+F in the open conversation), or on every branch."""
        found = self._query(lambda db: search.search_in_conversation(db, cid, query, prefix=prefix))
        if not found:
            self.get_conversation(cid)
            return []
        if not branch_only:
            return found
        shown = set(self._branch_ids(cid))
        return [mid for mid in found if mid in shown]

    # -- import and checks ------------------------------------------------------------------------------

    def import_conversations(self, conversations: Sequence[FullConversation]) -> list[int]:
        """Adds the conversations with new ids, parents and leaves remapped, in ONE transaction: all or nothing.

        The ids inside `conversations` only link messages to each other. Returns the new conversation ids.
        Images read from a file (`MessageImage.data`) are checked and stored in `self.images` first, each under
        the hash of its normalized bytes (an untrusted file's picture goes through the same reading as an attached
        one); an image that cannot be read refuses the import before anything is written.
        """
        conversations = importer.store_images(conversations, self.images)
        with self.write() as db:
            return importer.insert_conversations(db, conversations)


__all__ = ["TRASH_RETENTION_S", "History", "StreamingReply"]
