"""Search every conversation as you type: highlighted snippets, newest first or by relevance, lazy results."""

from __future__ import annotations

import datetime as dt
import html
import time
from collections import OrderedDict
from collections.abc import Callable

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAbstractTextDocumentLayout, QFont, QFontMetrics, QKeyEvent, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.history import History, SearchHit
from llamadesk.ui.search_worker import (
    ROLE_LABELS,
    HitRole,
    SearchResultsModel,
    SnippetHtmlRole,
    history_queries,
    plain_snippet,
    snippet_html,
)
from llamadesk.ui.workers import BackgroundQueries

__all__ = [
    "DEBOUNCE_MS",
    "HitRole",
    "SearchHitDelegate",
    "SearchPanel",
    "SearchResultsModel",
    "SnippetHtmlRole",
    "format_when",
    "plain_snippet",
    "snippet_html",
]

Index = QModelIndex | QPersistentModelIndex

DEBOUNCE_MS = 150
MAX_DEBOUNCE_MS = 600
SNIPPET_LINES = 2


def format_when(ts: float, now: float) -> str:
    """When a hit was written: the time today, day and month this year, else day, month and year."""
    when, today = dt.datetime.fromtimestamp(ts), dt.datetime.fromtimestamp(now)
    if when.date() == today.date():
        return when.strftime("%H:%M")
    return f"{when.day} {when.strftime('%b')}" + ("" if when.year == today.year else f" {when.year}")


class SearchHitDelegate(QStyledItemDelegate):
    """Title and date on the first line, "You: …snippet…" with the matches highlighted on the next two."""

    PAD = 6

    def __init__(self, parent: QObject | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.clock = clock
        self._docs: OrderedDict[tuple[int, int | None, int, str], QTextDocument] = OrderedDict()

    def clear_cache(self) -> None:
        self._docs.clear()

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        line = QFontMetrics(option.font).lineSpacing()
        return QSize(0, 2 * self.PAD + 2 + line * (1 + SNIPPET_LINES))

    def _document(self, hit: SearchHit, option: QStyleOptionViewItem, width: int) -> QTextDocument:
        key = (hit.conversation_id, hit.message_id, width, hit.snippet)
        doc = self._docs.get(key)
        if doc is None:
            doc = QTextDocument()
            doc.setDocumentMargin(0)
            doc.setDefaultFont(option.font)
            doc.setTextWidth(width)
            who = ROLE_LABELS.get(hit.role or "", "Title")
            doc.setHtml(f"<span>{html.escape(who)}:</span> {snippet_html(hit.snippet)}")
            self._docs[key] = doc
            while len(self._docs) > 128:
                self._docs.popitem(last=False)
        return doc

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        hit: SearchHit | None = index.data(HitRole)
        if hit is None:
            return
        style = option.widget.style() if option.widget is not None else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette: QPalette = option.palette
        text_color = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        dim = text_color if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        rect = option.rect.adjusted(self.PAD + 2, self.PAD, -self.PAD - 2, -self.PAD)
        line = QFontMetrics(option.font).lineSpacing()
        painter.save()
        small = QFont(option.font)
        small.setPointSizeF(small.pointSizeF() * 0.9)
        when = format_when(hit.created_at, self.clock())
        when_w = QFontMetrics(small).horizontalAdvance(when) + 8
        painter.setFont(small)
        painter.setPen(dim)
        painter.drawText(QRect(rect.left(), rect.top(), rect.width(), line), int(Qt.AlignmentFlag.AlignRight), when)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text_color)
        title = QFontMetrics(bold).elidedText(hit.title, Qt.TextElideMode.ElideRight, rect.width() - when_w)
        painter.drawText(QRect(rect.left(), rect.top(), rect.width() - when_w, line), 0, title)
        doc = self._document(hit, option, rect.width())
        painter.translate(rect.left(), rect.top() + line + 2)
        clip = QRect(0, 0, rect.width(), line * SNIPPET_LINES)
        painter.setClipRect(clip)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette.setColor(QPalette.ColorRole.Text, text_color)
        ctx.clip = QRectF(clip)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()


class _Keys(QObject):
    """Routes the panel's keys: arrows between field and list, Enter opens, Esc closes."""

    def __init__(self, panel: SearchPanel) -> None:
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not isinstance(event, QKeyEvent):
            return False
        if event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape:
            event.accept()  # Esc is ours here, even where the window binds it (Stop while a reply streams)
            return True
        if event.type() != QEvent.Type.KeyPress:
            return False
        p, key = self.panel, event.key()
        if key == Qt.Key.Key_Escape:
            p.closeRequested.emit()
            return True
        if watched is p.field and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            p.open_when_searched()
            return True
        if watched is p.field and key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown) and p.model.rowCount():
            p.results.setFocus()
            if not p.results.currentIndex().isValid():
                p.results.setCurrentIndex(p.model.index(0, 0))
            return True
        if watched is p.results and key == Qt.Key.Key_Up and p.results.currentIndex().row() <= 0:
            p.field.setFocus()
            return True
        return False


class SearchPanel(QWidget):
    """A search field, an order toggle and the results; Enter or a double click asks to open the hit."""

    openRequested = Signal(int, object, str)  # (conversation id, message id or None for a title hit, query)
    closeRequested = Signal()  # Esc

    def __init__(
        self,
        history: History,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
        runner: BackgroundQueries | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("searchPanel")
        self.owns_runner = runner is None  # made here: shut down with the panel (`shutdown`, or when destroyed)
        self.runner = history_queries(history) if runner is None else runner
        if self.owns_runner:
            own = self.runner
            self.destroyed.connect(lambda *_: own.shutdown())
        self.debounce_ms = DEBOUNCE_MS
        self.field = QLineEdit(self)
        self.field.setObjectName("searchField")
        self.field.setPlaceholderText("Search all conversations")
        self.field.setAccessibleName("Search conversations")
        self.field.setClearButtonEnabled(True)
        self.newest_button = QToolButton(self)
        self.newest_button.setText("Newest")
        self.newest_button.setAccessibleName("Newest first")
        self.newest_button.setToolTip("Newest messages first")
        self.relevance_button = QToolButton(self)
        self.relevance_button.setText("Relevance")
        self.relevance_button.setAccessibleName("Most relevant first")
        self.relevance_button.setToolTip("Best matches first")
        self.order_group = QButtonGroup(self)
        for button in (self.newest_button, self.relevance_button):
            button.setCheckable(True)
            button.setAutoRaise(True)
            self.order_group.addButton(button)
        self.newest_button.setChecked(True)
        self.status = QLabel(self)
        self.status.setObjectName("searchStatus")
        self.status.setWordWrap(True)
        self.status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.model = SearchResultsModel(self.runner, self)
        self.results = QListView(self)
        self.results.setObjectName("searchResults")
        self.results.setAccessibleName("Search results")
        self.results.setModel(self.model)
        self.delegate = SearchHitDelegate(self.results, clock=clock)
        self.results.setItemDelegate(self.delegate)
        self.results.setUniformItemSizes(True)
        self.results.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        orders = QHBoxLayout()
        orders.setSpacing(2)
        orders.addWidget(QLabel("Sort:", self))
        orders.addWidget(self.newest_button)
        orders.addWidget(self.relevance_button)
        orders.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(self.field)
        layout.addLayout(orders)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        self.setFocusProxy(self.field)

        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.run_now)
        self.field.textChanged.connect(self._on_text_changed)
        self.order_group.buttonToggled.connect(self._on_order_toggled)
        # One click opens the hit, as in every search list (activated alone needed a double click on most desktops);
        # Enter too. A double click's second press finds the hit already open.
        self.results.clicked.connect(self.open_index)
        self.results.activated.connect(self._activated)
        self.model.failed.connect(self._show_error)
        self.model.searched.connect(self._on_searched)
        self._keys = _Keys(self)
        self.field.installEventFilter(self._keys)
        self.results.installEventFilter(self._keys)
        self._show_status()

    # --- queries ----------------------------------------------------------------------------------------------------
    def query(self) -> str:
        return self.field.text().strip()

    def order(self) -> str:
        return "relevance" if self.relevance_button.isChecked() else "recent"

    def set_order(self, order: str) -> None:
        (self.relevance_button if order == "relevance" else self.newest_button).setChecked(True)

    def set_query(self, text: str) -> None:
        """Puts `text` in the field and searches at once."""
        self.field.setText(text)
        self.run_now()

    def focus_search(self) -> None:
        """For Ctrl+Shift+F: the field gets the focus with its text selected, so typing starts a new search."""
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()

    def _on_order_toggled(self, _button: QToolButton, checked: bool) -> None:
        if checked:
            self.run_now()

    def _on_text_changed(self, _text: str) -> None:
        self._timer.start(self.debounce_ms)

    def run_now(self) -> None:
        """Runs the pending search (or the current one again) in the query thread; `model.searched` follows."""
        self._timer.stop()
        self.model.set_query(self.query(), self.order())

    def shutdown(self) -> None:
        """Ends the query thread the panel made (a shared one is its owner's to end)."""
        if self.owns_runner:
            self.runner.shutdown()

    def _on_searched(self) -> None:
        self.delegate.clear_cache()
        # A slow query (very common words) means the next one may be slow too: wait for a longer pause in typing,
        # so the query thread is not kept busy with words already typed over.
        self.debounce_ms = max(DEBOUNCE_MS, min(MAX_DEBOUNCE_MS, round(2 * self.model.last_ms)))
        if self.model.rowCount():
            self.results.setCurrentIndex(self.model.index(0, 0))
            self.results.scrollToTop()
        self._show_status()

    refresh = run_now

    def _show_status(self) -> None:
        query = self.model.query
        if not query:
            text = "Type to search the titles and messages of all your conversations."
        elif not self.model.rowCount():
            text = f"Nothing found for “{query}”."
        else:
            text = ""
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def _show_error(self, sentence: str) -> None:
        self.status.setText(sentence)
        self.status.setVisible(True)

    # --- opening ----------------------------------------------------------------------------------------------------
    def open_when_searched(self) -> None:
        """Enter in the field: opens the selected hit (the first one) of what is typed, once it is searched."""
        stale = self._timer.isActive() or self.model.query != self.query()
        if stale or self.runner.busy("search"):
            self.model.searched.connect(self._open_first, Qt.ConnectionType.SingleShotConnection)
            if stale:
                self.run_now()
            return
        self._open_first()

    def _open_first(self) -> None:
        current = self.results.currentIndex()
        self.open_index(current if current.isValid() else self.model.index(0, 0))

    def _activated(self, index: Index) -> None:
        if QApplication.mouseButtons() == Qt.MouseButton.NoButton:  # Enter (a click already opened it)
            self.open_index(index)

    def open_index(self, index: Index) -> None:
        hit: SearchHit | None = index.data(HitRole) if index.isValid() else None
        if hit is not None:
            self.openRequested.emit(hit.conversation_id, hit.message_id, self.model.query)
