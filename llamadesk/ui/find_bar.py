"""Ctrl+F in the open conversation: a slim bar with "n of m", previous/next, Esc closes."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QStyle, QToolButton, QWidget

from llamadesk.core.history import History
from llamadesk.ui.search_worker import history_queries
from llamadesk.ui.workers import BackgroundQueries

DEBOUNCE_MS = 120


class FindBar(QFrame):
    """Finds the messages of one conversation's shown branch that match a query and steps through them.

    The chat view does the showing: it scrolls to `scrollToMessage(id)` and highlights `highlightChanged(query)`
    ("" clears; it is sent after every search, so the view should ignore a query it already shows). The bar counts
    the words highlighted, not the messages: `set_counter` gives it the number a message shows (without one, each
    message counts once), and `currentHitChanged(id, n)` names the one to mark as current. Matches are
    counted oldest first; a new search starts at `start_at`, else at the first match at or below the message that
    `anchor()` names (the one at the top of the view), else at the newest.
    """

    scrollToMessage = Signal(int)
    currentHitChanged = Signal(int, int)  # message id, which of its highlighted words (from 0): marked as current
    highlightChanged = Signal(str)
    searched = Signal()  # the matches of the query typed are known (found in the query thread)
    closed = Signal()

    def __init__(
        self, history: History, parent: QWidget | None = None, *, runner: BackgroundQueries | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.history = history
        self.owns_runner = runner is None  # made here: shut down with the bar (`shutdown`, or when destroyed)
        self.runner = history_queries(history) if runner is None else runner
        if self.owns_runner:
            own = self.runner
            self.destroyed.connect(lambda *_: own.shutdown())
        self.anchor: Callable[[], int | None] = lambda: None
        self.counter: Callable[[int, str], int] | None = None  # (message id, query) → words highlighted in it
        self._cid: int | None = None
        self._matches: list[int] = []
        self._hits: list[tuple[int, int]] = []  # (message id, which of its highlighted words), oldest first
        self._current = -1
        self._error = ""

        self.field = QLineEdit(self)
        self.field.setObjectName("findField")
        self.field.setPlaceholderText("Find in conversation")
        self.field.setAccessibleName("Find in conversation")
        self.field.setClearButtonEnabled(True)
        self.field.setMinimumWidth(140)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("findCount")
        self.count_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("No matches") + 8)
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        style = self.style()
        self.prev_button = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp), "Previous match", "Previous match (Shift+Enter)"
        )
        self.next_button = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown), "Next match", "Next match (Enter)"
        )
        self.close_button = self._button(None, "Close find", "Close (Esc)")
        self.close_button.setText("×")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.setSpacing(4)
        layout.addWidget(self.field, 1)
        layout.addWidget(self.count_label)
        layout.addWidget(self.prev_button)
        layout.addWidget(self.next_button)
        layout.addWidget(self.close_button)
        self.setFocusProxy(self.field)

        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.search)
        self.field.textChanged.connect(lambda _text: self._timer.start())
        self.prev_button.clicked.connect(self.previous_match)
        self.next_button.clicked.connect(self.next_match)
        self.close_button.clicked.connect(self.close_find)
        self.field.installEventFilter(self)
        self._update_label()

    def _button(self, icon: QIcon | None, name: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        if icon is not None:
            button.setIcon(icon)
        button.setAutoRaise(True)
        button.setAccessibleName(name)
        button.setToolTip(tip)
        return button

    # --- state --------------------------------------------------------------------------------------------------
    def conversation(self) -> int | None:
        return self._cid

    def matches(self) -> list[int]:
        """Ids of the matching messages, oldest first."""
        return list(self._matches)

    def hits(self) -> list[tuple[int, int]]:
        """Every word highlighted, as (message id, its place among the message's highlighted words), oldest first."""
        return list(self._hits)

    def current_index(self) -> int:
        """Position of the current hit in `hits()`, -1 when there is none."""
        return self._current

    def current_hit(self) -> tuple[int, int] | None:
        return self._hits[self._current] if self._current >= 0 else None

    def current_message(self) -> int | None:
        return self._hits[self._current][0] if self._current >= 0 else None

    def set_counter(self, counter: Callable[[int, str], int]) -> None:
        """`counter(message id, query)`: how many words the chat highlights in that message. The label then counts
        what you see highlighted (three in two messages is "1 of 3"), and a message that shows none is skipped."""
        self.counter = counter

    def query(self) -> str:
        return self.field.text().strip()

    def set_anchor(self, anchor: Callable[[], int | None]) -> None:
        """`anchor()` names the message at the top of the chat view; a new search starts at the first match there
        or below it (like a browser's find), else at the newest match."""
        self.anchor = anchor

    # --- opening and closing ------------------------------------------------------------------------------------
    def open_find(self, text: str | None = None, *, start_at: int | None = None, focus: bool = True) -> None:
        """Shows the bar and searches (Ctrl+F: the field focused, its text selected). `start_at`: the match to go to
        first, e.g. the message a search hit opened, so the bar then steps from there."""
        if text is not None:
            self.field.setText(text)
        self.show()
        if focus:
            self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.field.selectAll()
        self._timer.stop()
        self._run(keep=None, start_at=start_at)

    def close_find(self) -> None:
        """Hides the bar and clears the highlight (Esc)."""
        self._timer.stop()
        self.runner.cancel("find")
        self.hide()
        self.currentHitChanged.emit(0, -1)
        self.highlightChanged.emit("")
        self.closed.emit()

    def set_conversation(self, cid: int | None) -> None:
        """The conversation shown changed: search it afresh if the bar is open."""
        self._cid = cid
        self._matches, self._hits, self._current = [], [], -1
        if self.isVisible():
            self.search()
        else:
            self.runner.cancel("find")
            self._update_label()

    def shutdown(self) -> None:
        """Ends the query thread the bar made (a shared one is its owner's to end)."""
        if self.owns_runner:
            self.runner.shutdown()

    # --- searching ----------------------------------------------------------------------------------------------
    def search(self) -> None:
        """Finds the matches now (as you type it runs after a short pause) and goes to the first one to show."""
        self._timer.stop()
        self._run(keep=None)

    def refresh(self) -> None:
        """Searches again after the conversation changed (a reply arrived, a branch switched), staying on the
        current match if it still is one."""
        if self.isVisible():
            self._run(keep=self.current_hit())

    def _run(self, keep: tuple[int, int] | None, start_at: int | None = None) -> None:
        """Finds the matches in the query thread (a long conversation must not freeze typing), then shows them."""
        query, cid = self.query(), self._cid
        if not query or not cid:
            self.runner.cancel("find")
            self._show(query, [], "", keep, start_at)
            return
        self.runner.submit(
            "find",
            lambda h: h.search_in_conversation(cid, query, prefix=True),
            lambda found: self._show(query, found, "", keep, start_at),
            lambda sentence: self._show(query, [], sentence, keep, start_at),
        )

    def _show(
        self, query: str, found: list[int], error: str, keep: tuple[int, int] | None, start_at: int | None
    ) -> None:
        self._error = error
        try:
            self._go_to_first(query, found, keep, start_at)
        finally:
            self.searched.emit()

    def _go_to_first(
        self, query: str, found: list[int], keep: tuple[int, int] | None, start_at: int | None
    ) -> None:  # fmt: skip
        self.highlightChanged.emit(query if found else "")  # first: the chat counts what it highlights
        counts = [self.counter(mid, query) if self.counter is not None else 1 for mid in found]
        self._matches = [mid for mid, n in zip(found, counts, strict=True) if n > 0]
        self._hits = [(mid, k) for mid, n in zip(found, counts, strict=True) for k in range(n)]
        if not self._hits:
            if found:  # found in the messages' text, shown nowhere (folded reasoning): nothing stays highlighted
                self.highlightChanged.emit("")
            self._current = -1
        elif keep in self._hits:
            self._current = self._hits.index(keep)
            self.currentHitChanged.emit(*self._hits[self._current])
        elif start_at in self._matches:
            self._go(self._first_hit_of(start_at))
            return
        else:
            anchor = self.anchor()
            below = [mid for mid in self._matches if anchor is not None and mid >= anchor]
            self._go(self._first_hit_of(below[0]) if below else len(self._hits) - 1)
            return
        self._update_label()

    def _first_hit_of(self, message_id: int) -> int:
        return next(i for i, (mid, _k) in enumerate(self._hits) if mid == message_id)

    def next_match(self) -> None:
        if self._hits:
            self._go((self._current + 1) % len(self._hits))

    def previous_match(self) -> None:
        if self._hits:
            self._go((self._current - 1) % len(self._hits))

    def _go(self, i: int) -> None:
        self._current = i
        self._update_label()
        mid, k = self._hits[i]
        self.scrollToMessage.emit(mid)
        self.currentHitChanged.emit(mid, k)

    def _update_label(self) -> None:
        n = len(self._hits)
        self.count_label.setToolTip(self._error)
        if self._error:
            text = "Not searched"
        elif not self.query():
            text = ""
        elif not n:
            text = "No matches"
        else:
            text = f"{self._current + 1} of {n}"
        self.count_label.setText(text)
        self.count_label.setAccessibleName(text or "No search")
        self.prev_button.setEnabled(n > 1)
        self.next_button.setEnabled(n > 1)

    # --- keys ---------------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.field or not isinstance(event, QKeyEvent):
            return False
        if event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape:
            event.accept()  # Esc closes the bar even where the window binds it (Stop while a reply streams)
            return True
        if event.type() != QEvent.Type.KeyPress:
            return False
        key, shift = event.key(), bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if key == Qt.Key.Key_Escape:
            self.close_find()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_F3):
            if self._timer.isActive():
                self.search()  # Enter right after typing: go to the first match of what you typed
            else:
                (self.previous_match if shift else self.next_match)()
        elif key == Qt.Key.Key_Up:
            self.previous_match()
        elif key == Qt.Key.Key_Down:
            self.next_match()
        else:
            return False
        return True
