"""The toolbar's model picker on the real window: it ends with "Get more models…" (the model manager), offers Load
only when loading would change something, says Refresh, and shows what is loaded without cutting it at 1280×800."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar
from pytestqt.qtbot import QtBot

from llamadesk.core.library import SIDECAR_SUFFIX
from llamadesk.ui.main_window import MainWindow

from .conftest import LOAD_TIMEOUT_MS

GET_MORE = "Get more models…"


def loaded_window(make_window: Callable[..., MainWindow], qtbot: QtBot) -> MainWindow:
    window = make_window()
    qtbot.waitUntil(lambda: window.model_info is not None and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    return window


def test_the_list_ends_with_get_more_models_which_opens_the_model_manager(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    window = loaded_window(make_window, qtbot)
    combo = window.picker.combo
    assert combo.itemText(combo.count() - 1) == GET_MORE
    loaded = combo.currentText()

    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_End)  # the keyboard's way to the last entry: the combo emits activated
    manager = window.navigation.model_manager
    assert manager is not None
    qtbot.waitUntil(manager.isVisible)
    assert combo.currentText() == loaded  # the list goes back to what is loaded; nothing else loads
    assert not window.is_loading and window.picker.current_choice() is not None
    manager.close()


def test_get_more_models_is_offered_when_there_are_no_models(
    make_window: Callable[..., MainWindow], qtbot: QtBot
) -> None:
    window = make_window(auto_load=False)  # an empty models folder
    combo = window.picker.combo
    assert combo.isEnabled() and combo.itemText(combo.count() - 1) == GET_MORE
    assert window.picker.current_choice() is None and not window.picker.load_button.isVisible()


def test_load_shows_only_when_loading_would_change_something(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    shutil.copy(models_dir / "tiny-chatml.gguf", models_dir / "zz-other.gguf")
    window = loaded_window(make_window, qtbot)
    picker = window.picker
    assert picker.current_choice() == picker.loaded_choice or picker.current_model() is picker.loaded_model
    assert not picker.load_button.isVisible()  # the chosen entry is loaded, with this context length

    names = [m.path.name for m in picker.models()]
    other = next(n for n in names if n != window.model_info.file_name)  # type: ignore[union-attr]
    picker.combo.setCurrentIndex(names.index(other))
    assert picker.load_button.isVisible() and picker.load_button.isEnabled()
    picker.select_path(window.model_info.path)  # type: ignore[union-attr]
    assert not picker.load_button.isVisible()

    spin = window.panel.n_ctx_spin
    spin.setValue(spin.value() // 2)  # another context length: Load reloads with it
    assert picker.load_button.isVisible()
    assert str(spin.value()) in picker.load_button.toolTip()
    qtbot.mouseClick(picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_loading and window.model_info is not None
                    and window.model_info.n_ctx == spin.value(), timeout=LOAD_TIMEOUT_MS)  # fmt: skip
    assert not picker.load_button.isVisible()


def test_refresh_says_what_it_does(make_window: Callable[..., MainWindow], qtbot: QtBot) -> None:
    window = make_window(auto_load=False)
    button = window.picker.refresh_button
    assert button.text() == "Refresh"
    assert "new model files" in button.toolTip() and "endpoint" in button.toolTip()


def test_what_is_loaded_is_not_cut_at_1280_by_800(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot, tmp_path: Path
) -> None:
    window = loaded_window(make_window, qtbot)
    window.resize(1280, 800)
    picker, label = window.picker, window.picker.info_label
    info = window.model_info
    assert info is not None
    long_named = dataclasses.replace(  # a name, license and source as long as a Hub download's
        picker.loaded_model, name="SmolLM2-1.7B-Instruct-abliterated", license="Apache-2.0",
        source="Hugging Face bartowski/SmolLM2-1.7B-Instruct-GGUF",
    )  # fmt: skip
    picker.set_loaded(long_named, info)
    full = label.full_text()
    qtbot.waitUntil(lambda: label.text() == full)  # laid out at this width: nothing elided
    assert label.fontMetrics().horizontalAdvance(full) <= label.width()
    assert full in label.toolTip()
    toolbar = window.findChild(QToolBar, "modelToolbar")
    assert toolbar is not None and picker.geometry().right() <= toolbar.width()
    toolbar.grab().save(str(Path("/tmp/picker") / "toolbar.png"))

    picker.set_loaded(dataclasses.replace(long_named, name="A model with a very long name " * 10), info)
    qtbot.waitUntil(lambda: label.text().endswith("…"))  # too long for any toolbar: elided, told in full
    assert label.full_text() in label.toolTip()


def test_the_mouse_wheel_over_the_list_chooses_nothing(
    make_window: Callable[..., MainWindow], models_dir: Path, tmp_path: Path, qtbot: QtBot
) -> None:
    """Choosing an entry loads a model: a wheel passing over the picker must not load each one it passes."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    shutil.copy(next(models_dir.glob("*.gguf")), models_dir / "second-copy.gguf")
    window = loaded_window(make_window, qtbot)
    window.picker.refresh()
    combo = window.picker.combo
    before, loads = combo.currentIndex(), []
    window.picker.aboutToLoad.connect(loads.append)
    for delta in (-120, -120, 120):
        centre = QPointF(combo.rect().center())
        wheel = QWheelEvent(centre, QPointF(combo.mapToGlobal(combo.rect().center())), QPoint(0, 0), QPoint(0, delta),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)  # fmt: skip
        QApplication.sendEvent(combo, wheel)
    assert combo.currentIndex() == before and loads == []
    assert window.navigation.model_manager is None or not window.navigation.model_manager.isVisible()


def test_each_entry_says_name_quantization_and_size(
    make_window: Callable[..., MainWindow], models_dir: Path, qtbot: QtBot
) -> None:
    shutil.copy(models_dir / "tiny-chatml.gguf", models_dir / "Tiny-Chat-Q4_K_M.gguf")
    shutil.copy(models_dir / "tiny-chatml.gguf", models_dir / "tiny-named-Q8_0.gguf")
    (models_dir / f"tiny-named-Q8_0.gguf{SIDECAR_SUFFIX}").write_text('{"display_name": "Tiny Named"}')
    window = make_window(auto_load=False)
    combo = window.picker.combo
    labels = [combo.itemText(i) for i in range(combo.count())]
    quantized = next(label for label in labels if label.startswith("Tiny-Chat"))
    assert quantized.count("Q4_K_M") == 1  # said once: the name already holds it
    named = next(label for label in labels if label.startswith("Tiny Named"))
    assert named.startswith("Tiny Named · Q8_0 · ")  # a catalog's name does not say it: the picker does
    plain = next(label for label in labels if label.startswith("tiny-chatml"))
    assert "unknown" not in plain and plain.split(" · ")[-1].endswith("B")  # a name with no code: name · size
