"""Conversation history on SQLite: `History` is the repository; see docs/HISTORY_SCHEMA.md for the schema."""

from llamadesk.core.history.export import FORMATS, export_conversations, export_to_path
from llamadesk.core.history.importer import ImportFileError, import_file, parse_export, read_export_file
from llamadesk.core.history.matching import MARK_END, MARK_START, make_snippet, match_spans, split_marked
from llamadesk.core.history.models import Conversation, FullConversation, Message, SearchHit
from llamadesk.core.history.repository import TRASH_RETENTION_S, History
from llamadesk.core.history.sidebar import DateGroup, auto_title, date_group, group_conversations
from llamadesk.core.history.streaming import StreamingReply

__all__ = [
    "FORMATS",
    "MARK_END",
    "MARK_START",
    "TRASH_RETENTION_S",
    "Conversation",
    "DateGroup",
    "FullConversation",
    "History",
    "ImportFileError",
    "Message",
    "SearchHit",
    "StreamingReply",
    "auto_title",
    "date_group",
    "export_conversations",
    "export_to_path",
    "group_conversations",
    "import_file",
    "make_snippet",
    "match_spans",
    "parse_export",
    "read_export_file",
    "split_marked",
]
