"""The child of test_gui_kill: the real window, offscreen, streaming a reply until it kills itself at a known state.

Prints one JSON line per event: {"kind": "reply", "id": …} once the reply is asked for, {"kind": "tokens",
"t": <monotonic>, "text": …} for every batch of text the window receives (after the window has handled it), and
{"kind": "kill", "t": …} right before it sends itself SIGKILL.

The kill state: the reply's first text is on disk, and LLAMADESK_KILL_AFTER_CHARS more characters have left the
engine since. It is checked in the engine's thread as each batch leaves it, before that thread makes the next token,
so the reply cannot end before the kill however fast the machine is (the reply may make 4,000 tokens; the kill comes
at most a few hundred tokens after its second batch).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import QApplication

from llamadesk.core.history import History
from llamadesk.core.history.streaming import DEFAULT_FLUSH_INTERVAL_S
from llamadesk.paths import get_paths
from llamadesk.ui.main_window import MainWindow

WAIT_S = 60.0  # a bound, never reached in a passing run: no hang


STDOUT = threading.Lock()  # the GUI thread and the engine's thread both print: one whole line at a time


def out(kind: str, *, then_die: bool = False, **data: object) -> None:
    """One JSON line, written in one piece: print() writes the text and its line break apart, so two threads printing
    at once could join two events on one line. `then_die` kills the process while it still holds the line, so no
    other thread can be half-way through one."""
    line = json.dumps({"kind": kind, "t": time.monotonic(), **data}) + "\n"
    with STDOUT:
        sys.stdout.write(line)
        sys.stdout.flush()
        if then_die:
            os.kill(os.getpid(), signal.SIGKILL)


class KillGate:
    """Runs in the engine's thread for every batch it sends (a direct connection), before it makes the next token."""

    def __init__(self, db: str, after_chars: int) -> None:
        self.db, self.after_chars = db, after_chars
        self.reply_id: int | None = None  # set by the GUI thread once the reply's row exists
        self.batches = 0
        self.on_disk = threading.Event()  # set by the GUI thread once the reply's first text is on disk
        self.sent = 0  # characters sent since then

    def check_disk(self) -> None:
        """GUI thread, after the window handled a batch: is the reply's text on disk yet?"""
        if self.reply_id is None or self.on_disk.is_set():
            return
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT length(content) FROM messages WHERE id = ?", (self.reply_id,)).fetchone()
        finally:
            conn.close()
        if row and row[0]:
            self.on_disk.set()

    def __call__(self, _request: int, text: str) -> None:
        self.batches += 1
        if self.batches == 1:
            # The window writes a reply when text arrives a flush interval after the reply began (before this batch
            # was made). Holding the engine that long makes the next batch's arrival write it, however fast the
            # machine: not a guess at a duration, the window's own rule.
            time.sleep(DEFAULT_FLUSH_INTERVAL_S)
            return
        if self.batches == 2:  # its arrival writes the reply: wait for that before making more
            if not self.on_disk.wait(WAIT_S):
                out("failed", then_die=True, message=f"the reply was not on disk {WAIT_S:.0f} s after its second batch")
            return
        self.sent += len(text)
        if self.sent >= self.after_chars:
            out("kill", then_die=True)


class Printer(QObject):
    def __init__(self, gate: KillGate) -> None:
        super().__init__()
        self.gate = gate

    @Slot(int, str)
    def tokens(self, request: int, text: str) -> None:
        out("tokens", text=text, request=request)
        self.gate.check_disk()


def main() -> int:
    app = QApplication(sys.argv[:1])
    paths = get_paths().ensure()
    history = History(paths.history_db)
    window = MainWindow(paths, history)
    window.show()
    gate = KillGate(str(paths.history_db), int(os.environ["LLAMADESK_KILL_AFTER_CHARS"]))
    printer = Printer(gate)  # a receiver in the GUI thread: it prints after the window has handled the same batch
    window.host.worker.tokens.connect(printer.tokens)
    window.host.worker.tokens.connect(gate, Qt.ConnectionType.DirectConnection)
    window.picker.loadFailed.connect(lambda message: (out("failed", message=message), app.exit(3)))

    def start() -> None:
        if window.model_info is None:
            QTimer.singleShot(20, start)
            return
        window.panel.rows["max_tokens"].spin.setValue(4000)
        window.new_chat()
        window.send("Tell me a very long story")
        row = window.chat_model.row(window.chat_model.rowCount() - 1)
        gate.reply_id = row.message_id
        out("reply", id=row.message_id, conversation=window.current_cid, request=window.session.active_request)

    QTimer.singleShot(0, start)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
