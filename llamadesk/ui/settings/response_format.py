"""The response format control of the settings panel (Text, JSON, a JSON schema pasted or loaded from a file), and
the keeper that stores it with the shown conversation (in its sampling JSON, where the session reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.errors import StructuredOutputError
from llamadesk.core.structured import FORMAT_KEY, MAX_SCHEMA_CHARS, FormatKind, ResponseFormat
from llamadesk.ui.settings.per_conversation import ConversationChoice

if TYPE_CHECKING:
    from llamadesk.core.history import History
    from llamadesk.ui.window_state import WindowState

CHECK_DELAY_MS = 300  # typing in the schema box: checked (and stored) after this much quiet
KINDS = ((FormatKind.TEXT, "Text"), (FormatKind.JSON, "JSON"), (FormatKind.SCHEMA, "JSON schema"))
HELP = ("JSON and JSON schema hold every reply to valid JSON with a llama.cpp grammar; a schema also fixes its "
        "shape (strings need maxLength, arrays maxItems, for a reply that surely ends).")  # fmt: skip


class ResponseFormatBox(QGroupBox):
    """What the replies must be. `formatChanged` (a ResponseFormat) on the user's changes only; a schema that cannot
    be used is shown as one sentence under the box, and its text is kept as typed (the reply then fails with that
    sentence rather than silently answering free text)."""

    formatChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Response format", parent)
        self.setObjectName("responseFormatBox")
        self._updating = False
        self.kind_combo = QComboBox(self)
        self.kind_combo.setObjectName("responseFormatKind")
        self.kind_combo.setAccessibleName("Response format")
        self.kind_combo.setToolTip(HELP)
        for kind, label in KINDS:
            self.kind_combo.addItem(label, kind.value)
        self.load_button = QPushButton("Load from file…", self)
        self.load_button.setObjectName("responseSchemaLoad")
        self.load_button.setToolTip("Read a JSON schema from a .json file into the box")
        self.schema_edit = QPlainTextEdit(self)
        self.schema_edit.setObjectName("responseSchema")
        self.schema_edit.setAccessibleName("JSON schema")
        self.schema_edit.setPlaceholderText('{"type": "object", "properties": {"answer": {"type": "string", '
                                            '"maxLength": 200}}, "required": ["answer"]}')  # fmt: skip
        self.schema_edit.setFixedHeight(120)
        self.schema_edit.setTabChangesFocus(True)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("responseFormatError")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: palette(highlight);")
        self.error_label.hide()
        row = QHBoxLayout()
        row.addWidget(self.kind_combo, 1)
        row.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.schema_edit)
        layout.addWidget(self.error_label)
        self._timer = QTimer(self, singleShot=True, interval=CHECK_DELAY_MS)
        self._timer.timeout.connect(self._changed)
        self.kind_combo.currentIndexChanged.connect(self._on_kind)
        self.schema_edit.textChanged.connect(self._on_text)
        self.load_button.clicked.connect(self._choose_file)
        self._show_kind()

    # --- values ----------------------------------------------------------------------------------------------
    def kind(self) -> FormatKind:
        return FormatKind(self.kind_combo.currentData())

    def response_format(self) -> ResponseFormat:
        """What the box shows; a schema as typed (checked by `error()` and again by the engine)."""
        kind = self.kind()
        if kind is FormatKind.SCHEMA:
            return ResponseFormat(FormatKind.SCHEMA, self.schema_edit.toPlainText().strip(), name="schema")
        return ResponseFormat(kind)

    def error(self) -> str:
        """The sentence shown under the box ("" when the format can be used)."""
        return self.error_label.text()

    def set_response_format(self, fmt: ResponseFormat) -> None:
        """Shows `fmt` without emitting formatChanged."""
        self._updating = True
        try:
            self.kind_combo.setCurrentIndex(max(self.kind_combo.findData(fmt.kind.value), 0))
            if fmt.kind is FormatKind.SCHEMA:
                self.schema_edit.setPlainText(fmt.schema_json)
        finally:
            self._updating = False
        self._timer.stop()
        self._show_kind()

    def load_file(self, path: Path) -> bool:
        """Reads a schema file into the box (JSON schema chosen); a file that cannot be read is one sentence."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_SCHEMA_CHARS + 1)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            self._show_error(f"{Path(path).name} could not be read ({reason}).")
            return False
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(FormatKind.SCHEMA.value))
        self.schema_edit.setPlainText(text)
        self._changed()
        return True

    # --- reactions ---------------------------------------------------------------------------------------------
    def _choose_file(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(self, "Load a JSON schema", "", "JSON schema (*.json);;All (*)")
        if path:
            self.load_file(Path(path))

    def _on_kind(self, *_: object) -> None:
        self._show_kind()
        if not self._updating:
            self._changed()

    def _on_text(self) -> None:
        if not self._updating:
            self._timer.start()

    def _changed(self) -> None:
        self._timer.stop()
        self._check()
        self.formatChanged.emit(self.response_format())

    def _show_kind(self) -> None:
        schema = self.kind() is FormatKind.SCHEMA
        self.schema_edit.setVisible(schema)
        self.load_button.setVisible(schema)
        self._check()

    def _check(self) -> None:
        fmt = self.response_format()
        if fmt.kind is not FormatKind.SCHEMA:
            self._show_error("")
            return
        if not fmt.schema_json:
            self._show_error("Paste a JSON schema or load one from a file.")
            return
        try:
            fmt.check()
        except StructuredOutputError as exc:
            self._show_error(str(exc))
        else:
            self._show_error("")

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))


class ResponseFormatKeeper(ConversationChoice):
    """Stores the box's format with the shown conversation (its sampling JSON, FORMAT_KEY) and shows the stored one
    when another conversation is shown. A format chosen while no conversation is shown goes to the next new one."""

    key, what = FORMAT_KEY, "Response format"

    def __init__(self, state: WindowState, box: ResponseFormatBox, history: History,
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(state, history, parent)
        self.box = box
        box.formatChanged.connect(self.changed)

    def encode(self, value: Any) -> Any:
        fmt: ResponseFormat = value
        return None if fmt.is_text else fmt.to_dict()

    def show(self, sampling: dict[str, Any]) -> None:
        self.box.set_response_format(ResponseFormat.from_dict(sampling.get(FORMAT_KEY)))
