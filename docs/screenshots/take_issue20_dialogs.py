"""Screenshots for issue 20, defects 7, 8 and 9 (the status bar and the receipt's words, the model picker, the
Branches dialog) and the A/B dialog's figures, at 1280×800, of whichever LlamaDesk is importable:

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_issue20_dialogs.py after
    QT_QPA_PLATFORM=offscreen PYTHONPATH=<a checkout before the change> .venv/bin/python \
        docs/screenshots/take_issue20_dialogs.py before

"before" was taken from 453b8b2, the commit before 65574ac (the status bar figures): defects 7, 8 and 9 and the
plain words of f30227e all landed after it. The PNGs land next to this file as issue20-<scene>-1280x800-<tag>.png.
Qt's grab() offscreen draws one window at a time, so a dialog or the picker's open list is painted over the main
window where Qt puts it (a dialog centred on its parent, the list under the picker). Everything happens in a
temporary LLAMADESK_HOME with a tiny generated model that never ends a reply by itself (tests/gguf_factory.py; its
replies are random tokens that stop at the max tokens or at Stop), and, when the tests' cache holds it, the starter
model as a second entry of the picker.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from take import settle, wait_until  # the screenshot scripts' shared helpers (this folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WIDTH, HEIGHT = 1280, 800
STARTER = Path(os.environ.get("LLAMADESK_TEST_CACHE", Path.home() / ".cache" / "llamadesk" / "test-models"))
STARTER = STARTER / "models" / "SmolLM2-135M-Instruct-Q4_1.gguf"

QUESTION = "How do I sort a list of people by age in Python, oldest first?"
SHORT_REPLY = "Use `sorted(people, key=lambda p: p.age, reverse=True)`."
CODE_REPLY = """Here is a small function; Python's sort is **stable**, so people of the same age keep their order:

```python
def oldest_first(people: list[Person]) -> list[Person]:
    return sorted(people, key=lambda p: p.age, reverse=True)
```

| Input | Output |
|--------|--------|
| Ana 31, Bo 45 | Bo 45, Ana 31 |

See [the sorting HOWTO](https://docs.python.org/3/howto/sorting.html).
"""
FOLLOW_UP = "And youngest first?"
FOLLOW_UP_EDITED = "Can I sort by name when the ages are equal?"
FOLLOW_REPLY = "Drop `reverse=True`:\n\n```python\nsorted(people, key=lambda p: p.age)\n```"
EDITED_REPLY = "### Two keys\n\n> Sort by a tuple.\n\n```python\nsorted(people, key=lambda p: (-p.age, p.name))\n```"


def models_folder(models: Path) -> None:
    """The tiny chat model (F32, as gguf_factory writes it) and the starter, each with the sidecar a download from
    the catalog writes: a name without the quantization code, the licence and the source."""
    sys.path.insert(0, str(ROOT / "tests"))
    from gguf_factory import END_OF_TURN, edit_output_rows, write_tiny_llama

    tiny = write_tiny_llama(models.parent / "tiny.gguf", name="Tiny test llama")
    edit_output_rows(tiny, models / "tiny-chat-F32.gguf", zero=END_OF_TURN)  # never ends a reply by itself
    sidecar = {"display_name": "Tiny test llama", "license": "MIT", "source": "tests/gguf_factory.py"}
    (models / "tiny-chat-F32.gguf.llamadesk.json").write_text(json.dumps(sidecar), encoding="utf-8")
    if STARTER.is_file():
        shutil.copy(STARTER, models / STARTER.name)
        sidecar = {"display_name": "SmolLM2 135M Instruct", "license": "Apache-2.0", "source": "the starter model"}
        (models / f"{STARTER.name}.llamadesk.json").write_text(json.dumps(sidecar), encoding="utf-8")


def main(argv: list[str]) -> int:
    tag = argv[0] if argv else "after"
    home = Path(tempfile.mkdtemp(prefix="llamadesk-shots20d-"))
    os.environ["LLAMADESK_HOME"] = str(home)

    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QPainter, QPixmap
    from PySide6.QtWidgets import QApplication, QWidget

    import llamadesk
    from llamadesk.core.history import History
    from llamadesk.core.settings import AppSettings, save_settings
    from llamadesk.paths import get_paths
    from llamadesk.ui.main_window import MainWindow

    print(f"LlamaDesk from {Path(llamadesk.__file__).parent}")
    paths = get_paths(home).ensure()
    save_settings(paths.settings_file, AppSettings(n_threads=1))
    models_folder(paths.models)
    app = QApplication.instance() or QApplication(["llamadesk-screenshots"])
    history = History(paths.history_db)
    sort = history.create_conversation("Sort people by age").id  # two alternatives, then two branches
    question = history.add_message(sort, "user", QUESTION)
    history.add_message(sort, "assistant", SHORT_REPLY, parent_id=question.id)
    answer = history.add_message(sort, "assistant", CODE_REPLY, parent_id=question.id)
    edited = history.add_message(sort, "user", FOLLOW_UP_EDITED, parent_id=answer.id)
    history.add_message(sort, "assistant", EDITED_REPLY, parent_id=edited.id)
    follow = history.add_message(sort, "user", FOLLOW_UP, parent_id=answer.id)
    history.add_message(sort, "assistant", FOLLOW_REPLY, parent_id=follow.id)

    window = MainWindow(paths, history)
    window.resize(WIDTH, HEIGHT)
    window.show()
    wait_until(lambda: window.model_info is not None)
    tiny = next(m for m in window.picker.models() if m.path.name == "tiny-chat-F32.gguf")
    if window.model_info.path.name != tiny.path.name:  # the window loaded the first entry, the starter
        window.picker.load(tiny)
        wait_until(lambda: window.model_info is not None and window.model_info.path.name == tiny.path.name)
    settle(1.0)
    window.resize(WIDTH, HEIGHT)
    window.statusBar().clearMessage()  # "Loaded … in 0.1 s": the same in both, and gone after a few seconds

    def save(scene: str, *over: QWidget) -> None:
        """The main window with `over` painted on it: a top-level (a dialog, the list) where it is on the screen;
        a dialog offscreen has no place, so it goes where Qt centres it, on its parent."""
        settle()
        shot = QPixmap(window.grab())
        painter = QPainter(shot)
        for widget in over:
            image = widget.grab()
            if (
                widget.isWindow()
                and widget.parentWidget() is not None
                and not widget.inherits("QComboBoxPrivateContainer")
            ):
                at = QPoint((window.width() - widget.width()) // 2, (window.height() - widget.height()) // 2)
            else:
                at = window.mapFromGlobal(widget.mapToGlobal(QPoint(0, 0)))
            painter.drawPixmap(at, image)
        painter.end()
        path = HERE / f"issue20-{scene}-{WIDTH}x{HEIGHT}-{tag}.png"
        shot.save(str(path))
        print(f"wrote {path}")

    # Defect 8: the picker's open list (name · quantization · size, "Get more models…"), Refresh, no Load when loaded
    picker = window.picker
    if hasattr(picker, "refresh"):
        picker.refresh()
    settle(1.0)
    picker.combo.showPopup()
    settle(0.5)
    popup = picker.combo.view().window()
    save("model-picker-open", popup)
    picker.combo.hidePopup()
    print("picker entries:", [picker.combo.itemText(i) for i in range(picker.combo.count())])
    print("Load shown while the model is loaded:", picker.load_button.isVisible())

    # Defect 9: the Branches dialog on a reply with code, a table, a heading, a quote and a link
    window.select_conversation(sort)
    settle(0.5)
    dialog = window.chat.show_branches()
    if dialog is not None:
        save("branches", dialog)
        dialog.close()

    # The A/B dialog's figures: "first token after N ms" (was "TTFT N ms")
    window.panel.rows["max_tokens"].spin.setValue(24)
    compare = window.chat.show_compare()
    if compare is not None:
        compare.run()
        wait_until(lambda: not compare.running)
        save("compare", compare)
        compare.close()

    # Defect 7: the status bar while a reply streams (a finished reply's figures before it), in a new empty chat
    window.new_chat()
    window.send("Write a two-line poem about a llama.")
    wait_until(lambda: not window.is_generating)
    window.panel.rows["max_tokens"].spin.setValue(4000)
    window.send("Now a long story about the llama, please.")
    wait_until(lambda: len(window.chat_model.row(window.chat_model.rowCount() - 1).content) > 60)
    save("statusbar-streaming")
    window.stop_generation()
    wait_until(lambda: not window.is_generating)
    settle(0.5)
    story = getattr(getattr(window, "state", None), "current_cid", None)
    window.new_chat()
    save("statusbar-new-chat")

    # Defect 7's rest: the receipt of the stopped reply ("How it ended", "When the chat outgrows the context")
    if story is not None:
        window.select_conversation(story)
        settle(0.5)
    receipt = window.chat.show_receipt(window.chat_model.row(window.chat_model.rowCount() - 1).message_id)
    if receipt is not None:
        tree = receipt.tree
        for i in range(tree.topLevelItemCount()):
            head = tree.topLevelItem(i)
            if head is not None and head.text(0) == "Sampling":
                head.setExpanded(False)  # the Reply and Prompt sections in sight, under the model
        save("receipt", receipt)
        receipt.close()
    window.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
