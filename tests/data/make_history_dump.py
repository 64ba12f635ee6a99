"""Writes tests/data/history_v{LATEST}.sql: the previous dump upgraded by the current code, plus what the new schema
adds.

Run once when a schema version is added (`.venv/bin/python tests/data/make_history_dump.py`), check the diff, commit;
never regenerate an existing dump. sqlite3's iterdump() cannot be used: it writes FTS5 virtual tables as plain
INSERTs before the tables exist. This dump writes ordinary tables and their rows, then the virtual tables with
a 'rebuild' of their index, then indexes and triggers (last, so loading the rows fires none).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent.parent))

from llamadesk.core.history import History  # noqa: E402
from llamadesk.core.history.migrations import LATEST_VERSION  # noqa: E402
from llamadesk.core.history.models import MessageImage  # noqa: E402


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, bytes):
        return "X'" + value.hex().upper() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def dump(conn: sqlite3.Connection, version: int, header: str) -> str:
    schema = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    virtual = [name for kind, name, sql in schema if kind == "table" and sql.upper().startswith("CREATE VIRTUAL")]
    shadow = tuple(f"{v}_" for v in virtual)  # FTS5's own tables, rebuilt from the data instead
    out = [header, f"PRAGMA user_version={version};", "BEGIN TRANSACTION;"]
    for kind, name, sql in schema:
        if kind != "table" or name in virtual or name.startswith(shadow):
            continue
        out.append(sql + ";")
        for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
            out.append(f'INSERT INTO "{name}" VALUES({",".join(literal(v) for v in row)});')
    for name in virtual:
        out.append(next(sql for _, n, sql in schema if n == name) + ";")
        out.append(f"INSERT INTO {name} ({name}) VALUES ('rebuild');")
    for kind in ("index", "trigger"):
        out += [sql + ";" for k, _, sql in schema if k == kind]
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.sqlite3"
        conn = sqlite3.connect(db)
        # The previous dump (v3: the v1 rows, a conversation in the trash, a reply left streaming, a server
        # request), upgraded.
        conn.executescript((DATA / f"history_v{LATEST_VERSION - 1}.sql").read_text(encoding="utf-8"))
        conn.close()
        with History(db, trash_retention_s=None) as h:
            # v4 adds message_images: a question about two images (by hash; the files are not part of a dump).
            served = h.create_conversation("What is in this picture?", model="tiny-vision.gguf")
            pictures = [
                MessageImage(hashlib.sha256(name).hexdigest(), "image/png", 64, 48) for name in (b"cat", b"dog")
            ]
            asked = h.add_message(served.id, "user", "What is in these pictures?", images=pictures)
            h.add_message(served.id, "assistant", "A cat and a dog.", parent_id=asked.id)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute(
            "UPDATE conversations SET created_at = 1767225800.0, updated_at = 1767225810.0 WHERE id = ?", (served.id,)
        )
        conn.execute("UPDATE messages SET created_at = 1767225805.0 WHERE conversation_id = ?", (served.id,))
        conn.execute("COMMIT")
        header = (
            f"-- LlamaDesk history, schema v{LATEST_VERSION}. Frozen: made by the v{LATEST_VERSION} code with "
            "tests/data/make_history_dump.py, never edit by hand.\n"
            "-- Loaded by tests/core/test_history.py::test_migrates_dump to check every later migration."
        )
        text = dump(conn, LATEST_VERSION, header)
        conn.close()
    target = DATA / f"history_v{LATEST_VERSION}.sql"
    if target.exists():
        sys.exit(f"{target} exists; dumps are frozen once committed")
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
