"""Import of the JSON export format: every field checked first (the line or field at fault), then one insert."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llamadesk.core.errors import HistoryError
from llamadesk.core.history.models import (
    ROLES,
    SOURCES,
    STATUSES,
    Conversation,
    FullConversation,
    Message,
    MessageImage,
    dump_json,
)

if TYPE_CHECKING:
    from llamadesk.core.images import ImageStore, NormalizedImage


class ImportTarget(Protocol):
    """What importing needs of the history (repository.History): one all-or-nothing insert."""

    def import_conversations(self, conversations: Sequence[FullConversation]) -> list[int]: ...


FORMAT_NAME = "llamadesk-history"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 4 * 1024**3  # a sanity bound: json.loads holds the whole file in memory


class ImportFileError(HistoryError):
    """A file that cannot be imported; nothing of it was. `field` (a path such as `conversations[2].messages[5]
    .role`) or `line`/`column` (a JSON syntax error) say where the problem is."""

    def __init__(
        self, message: str, *, field: str | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.field, self.line, self.column = field, line, column


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def _rejected_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_export(text: str, source: str = "the file") -> list[FullConversation]:
    """The conversations of an export document; ImportFileError names the line or field of the first problem."""
    try:
        # NaN and Infinity are not JSON, though Python's json would read them.
        document = json.loads(text, parse_constant=_rejected_constant)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"Nothing was imported from {source}: it is not valid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg}).",
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:
        raise ImportFileError(f"Nothing was imported from {source}: it is not valid JSON ({exc}).") from exc
    except RecursionError as exc:
        raise ImportFileError(f"Nothing was imported from {source}: its JSON is nested too deeply.") from exc
    try:
        return _document(document)
    except _Invalid as exc:
        raise ImportFileError(f"Nothing was imported from {source}: {exc}.", field=exc.field) from exc


def read_export_file(path: Path) -> list[FullConversation]:
    """Reads and checks an export file (UTF-8 JSON); ImportFileError for anything wrong with it."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportFileError(f"Nothing was imported from {path}: the file is larger than 4 GiB.")
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark some editors add
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"Nothing was imported from {path}: it is not UTF-8 text (byte {exc.start}).") from exc
    except OSError as exc:
        raise ImportFileError(f"The file {path} could not be read ({exc.strerror or exc}); check its name.") from exc
    return parse_export(text, str(path))


def import_file(history: ImportTarget, path: Path) -> list[int]:
    """Imports an export file into `history` in one transaction; returns the new conversation ids."""
    return history.import_conversations(read_export_file(path))


# -- checking -------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(field, f"must be an object, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "an array"}
    if value is None:
        return "null"
    return names.get(type(value), "an object")


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(field, f"must be a string, not {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON's \ud800 escapes can spell half a surrogate pair, which no database text can hold.
        raise _Invalid(field, f"holds an invalid character at position {exc.start}") from exc
    return value


def _time(value: Any, field: str) -> float:
    if not (_is_int(value) or isinstance(value, float)):
        raise _Invalid(field, f"must be a number of seconds since 1970, not {_kind(value)}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise _Invalid(field, "is too large")
    return seconds


def _json_object(value: Any, field: str, *, nullable: bool) -> dict[str, Any] | None:
    if value is None and nullable:
        return None
    obj = _object(value, field)
    try:
        dump_json(obj).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Invalid(field, "holds an invalid character") from exc
    except (ValueError, RecursionError) as exc:
        raise _Invalid(field, "cannot be stored as JSON") from exc
    return obj


def _choice(value: Any, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        options = ", ".join(f'"{c}"' for c in choices)
        raise _Invalid(field, f"must be one of {options}, not {json.dumps(value, ensure_ascii=False)[:40]}")
    return str(value)


def _require(obj: dict[str, Any], key: str, field: str) -> Any:
    if key not in obj:
        raise _Invalid(f"{field}.{key}", "is missing")
    return obj[key]


def _document(document: Any) -> list[FullConversation]:
    top = _object(document, "the document")
    if top.get("format") != FORMAT_NAME:
        raise _Invalid("format", f'must be "{FORMAT_NAME}": this is not a LlamaDesk history export')
    version = _require(top, "version", "document")
    if not _is_int(version) or version < 1:
        raise _Invalid("version", "must be a whole number from 1")
    if version > FORMAT_VERSION:
        raise _Invalid("version", f"is {version}: the file comes from a newer LlamaDesk; update LlamaDesk to import it")
    conversations = _require(top, "conversations", "document")
    if not isinstance(conversations, list):
        raise _Invalid("conversations", f"must be an array, not {_kind(conversations)}")
    return [_conversation(c, f"conversations[{i}]") for i, c in enumerate(conversations)]


def _conversation(value: Any, field: str) -> FullConversation:
    obj = _object(value, field)
    raw_messages = _require(obj, "messages", field)
    if not isinstance(raw_messages, list):
        raise _Invalid(f"{field}.messages", f"must be an array, not {_kind(raw_messages)}")
    messages: list[Message] = []
    ids: set[int] = set()
    for i, item in enumerate(raw_messages):
        message = _message(item, f"{field}.messages[{i}]", ids)
        ids.add(message.id)
        messages.append(message)
    leaf = obj.get("leaf_message_id", messages[-1].id if messages else None)
    if leaf is not None and (not _is_int(leaf) or leaf not in ids):
        raise _Invalid(f"{field}.leaf_message_id", "must be null or the id of one of its messages")
    cid = obj.get("id", 0)
    if not _is_int(cid):
        raise _Invalid(f"{field}.id", f"must be a whole number, not {_kind(cid)}")
    model = obj.get("model")
    pinned = obj.get("pinned", False)
    if not isinstance(pinned, bool):
        raise _Invalid(f"{field}.pinned", f"must be true or false, not {_kind(pinned)}")
    source = _choice(obj.get("source", "app"), f"{field}.source", SOURCES)  # files before schema v3 have none
    conversation = Conversation(
        id=cid,
        title=_text(_require(obj, "title", field), f"{field}.title"),
        created_at=_time(_require(obj, "created_at", field), f"{field}.created_at"),
        updated_at=_time(_require(obj, "updated_at", field), f"{field}.updated_at"),
        model=None if model is None else _text(model, f"{field}.model"),
        system_prompt=_text(obj.get("system_prompt", ""), f"{field}.system_prompt"),
        sampling=_json_object(obj.get("sampling", {}), f"{field}.sampling", nullable=False) or {},
        pinned=pinned,
        leaf_message_id=leaf,
        source=source,
    )
    return FullConversation(conversation, messages)


def _message(value: Any, field: str, earlier_ids: set[int]) -> Message:
    obj = _object(value, field)
    mid = _require(obj, "id", field)
    if not _is_int(mid):
        raise _Invalid(f"{field}.id", f"must be a whole number, not {_kind(mid)}")
    if mid in earlier_ids:
        raise _Invalid(f"{field}.id", f"{mid} is used by an earlier message of this conversation")
    parent = _require(obj, "parent_id", field)
    # Parents before children is what makes the messages a tree (no cycles) and lets them be inserted in order.
    if parent is not None and (not _is_int(parent) or parent not in earlier_ids):
        raise _Invalid(f"{field}.parent_id", "must be null or the id of an earlier message of this conversation")
    status = _choice(obj.get("status", "complete"), f"{field}.status", STATUSES)
    finish_reason = obj.get("finish_reason")
    return Message(
        id=mid,
        conversation_id=0,
        parent_id=parent,
        role=_choice(_require(obj, "role", field), f"{field}.role", ROLES),
        content=_text(_require(obj, "content", field), f"{field}.content"),
        created_at=_time(_require(obj, "created_at", field), f"{field}.created_at"),
        # A reply exported while it streamed is, as far as the file goes, an interrupted one.
        status="interrupted" if status == "streaming" else status,
        finish_reason=None if finish_reason is None else _text(finish_reason, f"{field}.finish_reason"),
        receipt=_json_object(obj.get("receipt"), f"{field}.receipt", nullable=True),
        images=_images(obj.get("images", []), f"{field}.images"),
    )


def _images(value: Any, field: str) -> tuple[MessageImage, ...]:
    """A message's images as the export writes them ({sha256, mime, width, height, data: base64}), each read
    and normalized like an attached file: the picture is what counts, so its hash, type and size are those of
    the stored bytes, whatever the file claims. Bytes already in the stored form (what an export of LlamaDesk
    writes) are kept as they are, so a JPEG is not encoded again: export → import → export keeps every byte."""
    from llamadesk.core.images import ImageError, read_image

    if not isinstance(value, list):
        raise _Invalid(field, f"must be an array, not {_kind(value)}")
    images: list[MessageImage] = []
    for k, item in enumerate(value):
        obj = _object(item, f"{field}[{k}]")
        data = _text(_require(obj, "data", f"{field}[{k}]"), f"{field}[{k}].data")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _Invalid(f"{field}[{k}].data", "must be the image's bytes in base64") from exc
        try:
            image = read_image(raw, name="the image")
        except ImageError as exc:
            problem = f"is not an image LlamaDesk can read ({str(exc).rstrip('.')})"
            raise _Invalid(f"{field}[{k}].data", problem) from exc
        if _already_normalized(raw, image):
            sha = hashlib.sha256(raw).hexdigest()
            images.append(MessageImage(sha, image.mime, image.width, image.height, data=raw))
        else:
            images.append(MessageImage(image.sha256, image.mime, image.width, image.height, data=image.data))
    return tuple(images)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}  # all that core/images.py writes


def _already_normalized(raw: bytes, image: NormalizedImage) -> bool:
    """Whether `raw` is an image as the ImageStore keeps it: PNG or JPEG, RGB, the size it would be stored at,
    and nothing but pixels (no EXIF, GPS, ICC, comments, text chunks or bytes after the end). Hand-written
    because Pillow skips chunks and trailing bytes it does not know without saying so; anything unusual fails
    the check and the picture is normalized again instead, which is always safe."""
    from PIL import Image

    if image.notes or (image.original_width, image.original_height) != (image.width, image.height):
        return False
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.mode != "RGB" or opened.size != (image.width, image.height):
                return False
            if opened.format == "JPEG" and image.mime == "image/jpeg":
                # Only the JFIF header segment, no comment, nothing after the end-of-image marker.
                apps = getattr(opened, "applist", [])
                return (
                    all(m == "APP0" and d.startswith(b"JFIF\0") for m, d in apps)
                    and "comment" not in opened.info
                    and raw.endswith(b"\xff\xd9")
                )
            if opened.format != "PNG" or image.mime != "image/png":
                return False
    except (OSError, ValueError, SyntaxError):
        return False
    if not raw.startswith(_PNG_SIGNATURE):
        return False
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[offset : offset + 4])
        kind = raw[offset + 4 : offset + 8]
        if kind not in _PNG_CHUNKS:
            return False
        offset += 12 + length
        if kind == b"IEND":
            return offset == len(raw)
    return False


def store_images(conversations: Sequence[FullConversation], store: ImageStore) -> list[FullConversation]:
    """Puts the images read from a file into `store` (before the insert: a stored image nothing refers to is
    collected later, a reference to an image not stored would be a hole) and drops their bytes."""
    from llamadesk.core.images import NormalizedImage

    out: list[FullConversation] = []
    for full in conversations:
        if not any(m.images for m in full.messages):
            out.append(full)
            continue
        messages = []
        for m in full.messages:
            kept = []
            for i in m.images:
                if i.data is not None:
                    store.put(NormalizedImage(i.data, i.sha256, i.mime, i.width, i.height, "", i.width, i.height))
                kept.append(MessageImage(i.sha256, i.mime, i.width, i.height))
            messages.append(replace(m, images=tuple(kept)) if kept else m)
        out.append(FullConversation(full.conversation, messages))
    return out


def insert_images(db: sqlite3.Connection, message_id: int, images: Iterable[MessageImage]) -> None:
    """The rows of a message's images (schema v4), in order; the caller holds the write transaction."""
    db.executemany(
        "INSERT INTO message_images (message_id, position, sha256, mime, width, height) VALUES (?, ?, ?, ?, ?, ?)",
        ((message_id, k, i.sha256, i.mime, i.width, i.height) for k, i in enumerate(images)),
    )


# -- inserting ------------------------------------------------------------------------------------------------


def insert_conversations(db: sqlite3.Connection, conversations: Sequence[FullConversation]) -> list[int]:
    """Inserts checked conversations with fresh ids; the caller holds the write transaction."""
    # Ids are handed out here rather than by SQLite so that messages can go in with executemany: in file order,
    # parents first, each new id above every existing one, so a reply keeps a larger id than its parent.
    next_cid = int(db.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()[0]) + 1
    next_mid = int(db.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]) + 1
    new_ids: list[int] = []
    for full in conversations:
        c = full.conversation
        cid = next_cid
        next_cid += 1
        remap = {m.id: next_mid + i for i, m in enumerate(full.messages)}
        next_mid += len(full.messages)
        db.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at, model, system_prompt, sampling_json,"
            " pinned, leaf_message_id, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cid,
                c.title,
                c.created_at,
                c.updated_at,
                c.model,
                c.system_prompt,
                dump_json(c.sampling),
                int(c.pinned),
                None if c.leaf_message_id is None else remap[c.leaf_message_id],
                c.source,
            ),
        )
        db.executemany(
            "INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at, status,"
            " finish_reason, receipt_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    remap[m.id],
                    cid,
                    None if m.parent_id is None else remap[m.parent_id],
                    m.role,
                    m.content,
                    m.created_at,
                    m.status,
                    m.finish_reason,
                    None if m.receipt is None else dump_json(m.receipt),
                )
                for m in full.messages
            ),
        )
        for m in full.messages:
            if m.images:
                insert_images(db, remap[m.id], m.images)
        new_ids.append(cid)
    return new_ids
