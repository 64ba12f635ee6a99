"""Conversation history on SQLite: `History` is the repository; see docs/HISTORY_SCHEMA.md for the schema."""

from llamadesk.core.history.repository import Conversation, History, Message, StreamingReply

__all__ = ["Conversation", "History", "Message", "StreamingReply"]
