"""Screenshots for issue 20, defects 2, 6 and 10 (narrow windows, a reply in another chat, find and polish):

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_issue20_layout.py after
    QT_QPA_PLATFORM=offscreen PYTHONPATH=<a checkout before the change> .venv/bin/python \
        docs/screenshots/take_issue20_layout.py before

The window is grabbed at 1280×800, 800×600 and 560×400 where size matters, into
issue20-layout-<scene>-<size>-<tag>.png next to this file. Everything happens in a temporary LLAMADESK_HOME with a
tiny generated model that never ends a reply by itself (tests/gguf_factory.py), so a reply is still running while
another chat is shown; its text is random tokens.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from take import settle, wait_until  # the screenshot scripts' shared helpers (this folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SIZES = ((1280, 800), (800, 600), (560, 400))

SQL = (
    "SELECT orders.id, orders.created_at, customers.name, customers.email, SUM(lines.quantity * lines.price) AS total "
    "FROM orders JOIN customers ON customers.id = orders.customer_id JOIN lines ON lines.order_id = orders.id "
    "GROUP BY orders.id ORDER BY total DESC;"
)  # one long line each, as models write them: the bubble must hold them
PYTHON = (
    "totals = sorted(((order.id, sum(line.quantity * line.price for line in order.lines)) for order in orders), "
    "key=lambda pair: pair[1], reverse=True)"
)
CODE_REPLY = (
    "Here is the query, with every column spelled out so the planner can use the covering index:\n\n"
    f"```sql\n{SQL}\n```\n\nAnd the same in Python:\n\n```python\n{PYTHON}\n```\n"
)


def main(argv: list[str]) -> int:
    tag = argv[0] if argv else "after"
    home = Path(tempfile.mkdtemp(prefix="llamadesk-shots20-"))
    os.environ["LLAMADESK_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "tests"))
    from gguf_factory import END_OF_TURN, edit_output_rows, write_tiny_llama
    from PySide6.QtWidgets import QApplication

    from llamadesk.core.history import History
    from llamadesk.core.settings import AppSettings, save_settings
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow

    paths = get_paths(home).ensure()
    save_settings(paths.settings_file, AppSettings(n_threads=1))
    tiny = write_tiny_llama(home / "tiny-chatml.gguf")
    edit_output_rows(tiny, paths.models / "tiny-chat.gguf", zero=END_OF_TURN)
    app = QApplication.instance() or QApplication(["llamadesk-screenshots"])
    history = History(paths.history_db)
    turnips = history.create_conversation("Turnips").id
    history.add_message(turnips, "user", "Turnips or parsnips? I like turnips.")
    history.add_message(turnips, "assistant", "Roast the turnips with a little honey; parsnips the same way.")
    code = history.create_conversation("Order totals").id
    question = history.add_message(code, "user", "Which orders brought in the most?")
    history.add_message(code, "assistant", "An earlier answer.", parent_id=question.id)
    history.add_message(code, "assistant", CODE_REPLY, parent_id=question.id)  # ‹ 2/2 ›

    window = MainWindow(paths, history)
    window.show()
    wait_until(lambda: window.model_info is not None)

    def save(widget: object, name: str) -> None:
        settle()
        path = HERE / f"issue20-layout-{name}-{tag}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        print(f"wrote {path}")

    def size(width: int, height: int) -> None:
        for _ in range(4):  # a window with its panels open may refuse to be narrower than they are: ask again
            window.resize(width, height)
            settle(0.3)

    window.select_conversation(code)
    for width, height in SIZES:
        size(width, height)
        window.chat_view.follow()
        save(window, f"chat-code-{width}x{height}")

    size(1280, 800)  # the search panel opened beside the chat (it clipped the code and "Regene…")
    window.navigation.show_search()
    window.navigation.search_panel.set_query("orders")
    wait_until(lambda: window.navigation.search_panel.model.rowCount() > 0)
    save(window, "search-1280x800")
    window.navigation.close_search()

    window.select_conversation(turnips)  # the find bar: three words highlighted, the current one marked
    window.navigation.find_bar.open_find("turnips")
    settle(1.0)
    save(window, "find-1280x800")
    window.navigation.find_bar.close_find()

    window.panel.rows["max_tokens"].spin.setValue(4000)  # a reply runs in one chat while another is shown
    window.new_chat()
    window.send("Write a long story about a llama")
    wait_until(lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > 40)
    window.new_chat()  # Ctrl+N during the reply
    window.composer.edit.setPlainText("And a haiku about turnips, please.")
    save(window, "busy-new-chat-1280x800")
    window.composer._submit()  # Enter
    save(window, "busy-queued-1280x800")
    for _ in range(2):  # the running reply, then the queued one it started
        window.stop_generation()
        wait_until(lambda: not window.is_generating)
        settle(0.5)

    size(800, 600)  # the A/B dialog on a smaller window
    window.select_conversation(turnips)
    dialog = window.chat.show_compare()
    if dialog is not None:
        settle(0.5)
        print(f"compare dialog {dialog.width()}×{dialog.height()} on a {window.width()}×{window.height()} window")
        save(dialog, "compare-on-800x600")
        dialog.close()
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
