"""The child of test_gui_kill: the real window, offscreen, streaming an endless reply until it is killed.

Prints one JSON line per event: {"kind": "reply", "id": …} once the reply is asked for, then {"kind": "tokens",
"t": <monotonic>, "text": …} for every batch of text the window receives (after the window has handled it).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from llamadesk.core.history import History
from llamadesk.paths import get_paths
from llamadesk.ui.main_window import MainWindow


def out(kind: str, **data: object) -> None:
    print(json.dumps({"kind": kind, "t": time.monotonic(), **data}), flush=True)


class Printer(QObject):
    @Slot(int, str)
    def tokens(self, request: int, text: str) -> None:
        out("tokens", text=text, request=request)


def main() -> int:
    app = QApplication(sys.argv[:1])
    paths = get_paths().ensure()
    history = History(paths.history_db)
    window = MainWindow(paths, history)
    window.show()
    printer = Printer()  # a receiver in the GUI thread: it prints after the window has handled the same batch
    window.host.worker.tokens.connect(printer.tokens)
    window.picker.loadFailed.connect(lambda message: (out("failed", message=message), app.exit(3)))

    def start() -> None:
        if window.model_info is None:
            QTimer.singleShot(20, start)
            return
        window.panel.rows["max_tokens"].spin.setValue(4000)
        window.new_chat()
        window.send("Tell me a very long story")
        row = window.chat_model.row(window.chat_model.rowCount() - 1)
        out("reply", id=row.message_id, conversation=window.current_cid, request=window.session.active_request)

    QTimer.singleShot(0, start)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
