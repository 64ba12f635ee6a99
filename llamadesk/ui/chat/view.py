"""The message list: only rows near the screen are laid out, follows a stream unless you scrolled up, links inert."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QPoint, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QContextMenuEvent,
    QCursor,
    QHelpEvent,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHeaderView,
    QMenu,
    QTableView,
    QToolButton,
    QToolTip,
    QWidget,
)

from llamadesk.core.markdown import parse_copy_href, warm_up
from llamadesk.core.token_probs import TokenProb
from llamadesk.ui.chat.delegate import PAD_V, ROW_GAP, MessageDelegate
from llamadesk.ui.chat.highlight import query_spans, text_spans
from llamadesk.ui.chat.menu import message_menu
from llamadesk.ui.chat.message_actions import MessageActions
from llamadesk.ui.chat.model import ChatRow, KeyRole, MessageListModel, RowRole, reasoning_view
from llamadesk.ui.chat.token_hover import TokenLookup, record_at, tooltip_text

FOLLOW_SLACK_PX = 24  # this close to the bottom counts as "at the bottom"
MEASURE_MARGIN_ROWS = 3  # rows above and below the screen laid out exactly, so a small scroll shows no jump
REESTIMATE_DELAY_MS = 150  # after a width change, the guesses of far-away rows are redone once it settles
WARM_UP_DELAY_MS = 200
ESTIMATE_SAMPLE = 200  # rows whose estimated heights give the height of rows never laid out
JUMP_STRIP_PAD = 4  # above and below "↓ Latest" in its strip

Index = QModelIndex | QPersistentModelIndex


class ChatView(MessageActions, QTableView):
    """Shows a MessageListModel with MessageDelegate. Row heights live in the (hidden) vertical header: rows far
    from the screen keep a cheap estimate; rows on screen get their exact height, keeping what you read in place."""

    actionRequested = Signal(str, int)  # action (prev, next, edit, regenerate, continue, receipt, branches), id
    linkOpened = Signal(str)

    def __init__(self, model: MessageListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setAccessibleName("Conversation")
        self.setAccessibleDescription("Messages; the context menu key offers copy, alternatives and receipts.")
        self._chat_model = model
        self.setModel(model)
        self.delegate = MessageDelegate(self)
        self.delegate.on_stale = self._schedule_stale
        self.setItemDelegate(self.delegate)
        header = self.verticalHeader()
        header.hide()
        header.setMinimumSectionSize(1)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.horizontalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTabKeyNavigation(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # No selection: the style would fill the whole row; the current message is outlined by the delegate.
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(True)
        self.verticalScrollBar().setSingleStep(24)
        self.placeholder = "Load a model, then type a message below."
        self.menu: QMenu | None = None
        self.token_records: Callable[[int], Sequence[TokenProb]] | None = None  # message id → its token records
        self._token_lookup = TokenLookup()
        self._follow = True
        self._measuring = False
        self._width = 0
        self._stale_timer = QTimer(self, singleShot=True)
        self._stale_timer.timeout.connect(self._measure_visible)
        self._estimate_timer = QTimer(self, singleShot=True, interval=REESTIMATE_DELAY_MS)
        self._estimate_timer.timeout.connect(self._estimate_all)
        self.jump_button = QToolButton(self)
        self.jump_button.setObjectName("jumpToLatest")
        self.jump_button.setText("↓ Latest")
        self.jump_button.setToolTip("Jump to the latest message")
        self.jump_button.setAccessibleName("Jump to the latest message")
        self.jump_button.hide()
        self.jump_button.clicked.connect(self.follow)
        bar = self.verticalScrollBar()
        bar.actionTriggered.connect(self._on_user_scroll)
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        model.dataChanged.connect(self._on_data_changed)
        model.rowsInserted.connect(self._on_rows_inserted)
        model.rowsRemoved.connect(lambda *_: self._update_active())
        model.modelReset.connect(self._on_reset)
        QTimer.singleShot(WARM_UP_DELAY_MS, self, warm_up)  # once the window is up, before the first reply

    # --- following the stream ---------------------------------------------------------------------------------
    def is_following(self) -> bool:
        return self._follow

    def scroll_to_message(self, message_id: int) -> None:
        """Shows one message (a search hit, a find-bar match) in the middle of the view and stops following."""
        row = self._chat_model.find(message_id)
        if row < 0:
            return
        self._follow = False
        self._measure_row(row, max(self.rowAt(0), 0))  # its real height first: far rows only have a guess
        index = self._chat_model.index(row, 0)
        self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.setCurrentIndex(index)
        self._update_jump_button()

    def hit_count(self, message_id: int, query: str) -> int:
        """How many words `query` highlights in a message as shown (the find bar counts these, not messages)."""
        row = self._chat_model.row_of(message_id)
        return 0 if row is None else len(text_spans(self.delegate.plain_text(row), query.strip()))

    def show_hit(self, message_id: int, n: int) -> None:
        """Marks the `n`th highlighted word of a message as the current hit (n < 0: none) and brings it into view:
        in a long message, centring the message could leave the word off screen."""
        if self.delegate.set_current_hit(message_id, n):
            self.viewport().update()
        i = self._chat_model.find(message_id)
        row = self._chat_model.row_of(message_id)
        if n < 0 or i < 0 or row is None:
            return
        doc = self.delegate.document(row, self.delegate.text_width(self.delegate.row_width()))[0]
        spans = query_spans(doc, self.delegate.highlight_query)
        if n >= len(spans):
            return
        cursor = QTextCursor(doc)
        cursor.setPosition(spans[n][0])
        block = cursor.block()
        line = block.layout().lineForTextPosition(cursor.positionInBlock())
        top = doc.documentLayout().blockBoundingRect(block).top() + (line.y() if line.isValid() else 0)
        rect = self.visualRect(self._chat_model.index(i, 0))
        y = rect.top() + ROW_GAP + PAD_V + int(top)
        if not 0 <= y <= self.viewport().height() - 2 * self.fontMetrics().lineSpacing():
            self._follow = False
            bar = self.verticalScrollBar()
            bar.setValue(bar.value() + y - self.viewport().height() // 2)
            self._update_jump_button()

    def set_highlight(self, query: str) -> None:
        """Highlights the words `query` matches in every message shown (the find bar, a search hit); "" clears."""
        if self.delegate.set_highlight(query):
            self.viewport().update()

    def follow(self) -> None:
        """Sticks to the bottom again (after you send a message, or switch conversation)."""
        self._follow = True
        self.scrollToBottom()
        self._update_jump_button()

    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - FOLLOW_SLACK_PX

    def _on_user_scroll(self, _action: int) -> None:
        # Decided here, before the value changes: a relayout that runs inside that change (the streaming row
        # grew) must already see that you scrolled away, or it would pull you back to the bottom.
        bar = self.verticalScrollBar()
        self._follow = bar.sliderPosition() >= bar.maximum() - FOLLOW_SLACK_PX

    def _on_scrolled(self, _value: int) -> None:
        if self._at_bottom():
            self._follow = True  # back at the bottom, by any means
        self._measure_visible()
        self._update_jump_button()
        if self.delegate.hover_id is not None:
            self._hover_under_cursor()

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(maximum)
        self._update_jump_button()

    def _update_jump_button(self) -> None:
        """The jump button ("↓ Latest") sits in a strip of its own under the messages while you read above the end:
        floating over them it covered the footer of the last one in sight (its ‹ 1/2 › arrows, its actions)."""
        show = not self._follow and not self._at_bottom() and self._chat_model.rowCount() > 0
        hint = self.jump_button.sizeHint()
        strip = hint.height() + 2 * JUMP_STRIP_PAD if show else 0
        if self.viewportMargins().bottom() != strip:
            self.setViewportMargins(0, 0, 0, strip)  # may scroll: this runs again from the range change
        if show:
            self.jump_button.resize(hint)
            self.jump_button.move(self.viewport().geometry().right() - hint.width() - 12,
                                  self.viewport().geometry().bottom() + 1 + JUMP_STRIP_PAD)  # fmt: skip
            self.jump_button.raise_()
        self.jump_button.setVisible(show)

    # --- row heights ---------------------------------------------------------------------------------------
    def _on_reset(self) -> None:
        self.delegate.hover_id = None  # another conversation: nothing is under the mouse until it moves
        self.delegate.clear_cache()
        self._estimate_all()
        self._update_active()
        self._follow = True
        self.scrollToBottom()
        self._update_jump_button()

    def _estimate_all(self) -> None:
        """Every row not laid out yet gets the average height of a sample (one call, whatever the count);
        rows on screen are then laid out for real, and the others as they come into view."""
        count = self._chat_model.rowCount()
        self._width = self.delegate.row_width()
        if count:
            sample = [self._chat_model.row(i) for i in range(0, count, max(1, count // ESTIMATE_SAMPLE))]
            heights = self.delegate.estimate_heights(sample, self._width, self.font())
            self.verticalHeader().setDefaultSectionSize(max(1, round(sum(heights) / len(heights))))
        self._measure_visible()

    def _estimate_rows(self, first: int, last: int) -> None:
        header = self.verticalHeader()
        self._width = self.delegate.row_width()
        rows = [self._chat_model.row(i) for i in range(first, last + 1)]
        for i, height in enumerate(self.delegate.estimate_heights(rows, self._width, self.font()), start=first):
            if header.sectionSize(i) != height:
                header.resizeSection(i, height)

    def _measure_visible(self) -> None:
        """Lays out the rows on screen (and a few around) exactly; keeps the first visible row where it was."""
        if self._measuring or self._chat_model.rowCount() == 0:
            return
        self._measuring = True
        try:
            count = self._chat_model.rowCount()
            first = self.rowAt(0)
            first = 0 if first < 0 else first
            last = self.rowAt(self.viewport().height() - 1)
            last = count - 1 if last < 0 else last
            lo, hi = max(0, first - MEASURE_MARGIN_ROWS), min(count - 1, last + MEASURE_MARGIN_ROWS)
            for i in range(lo, hi + 1):
                self._measure_row(i, first)
        finally:
            self._measuring = False
        if self._follow:
            self.scrollToBottom()

    def _measure_row(self, i: int, anchor: int) -> None:
        header = self.verticalHeader()
        height, _fresh = self.delegate.row_height(self._chat_model.index(i, 0))
        old = header.sectionSize(i)
        if height == old:
            return
        header.resizeSection(i, height)
        if i < anchor and not self._follow:
            scroll = self.verticalScrollBar()
            scroll.setValue(scroll.value() + height - old)

    def _schedule_stale(self, wait_s: float) -> None:
        if not self._stale_timer.isActive():
            self._stale_timer.start(max(1, math.ceil(wait_s * 1000)))

    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: object = None) -> None:
        """Lays out again only changed rows on (or near) the screen; others wait until they come into view."""
        if isinstance(roles, list) and roles and KeyRole not in roles:
            self.viewport().update()  # a change of looks only (left out of the prompt): no new layout
            return
        first = max(self.rowAt(0), 0)
        last = self.rowAt(self.viewport().height() - 1)
        last = self._chat_model.rowCount() - 1 if last < 0 else last
        lo = max(top_left.row(), first - MEASURE_MARGIN_ROWS)
        hi = min(bottom_right.row(), last + MEASURE_MARGIN_ROWS)
        for i in range(lo, hi + 1):
            self._measure_row(i, first)
        self._update_active()
        if self._follow:
            self.scrollToBottom()

    def _on_rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._estimate_rows(first, last)
        self._update_active()
        self._measure_visible()
        if self._follow:
            self.scrollToBottom()

    def _update_active(self) -> None:
        """The last reply shows its actions without hovering (Regenerate, Receipt, Continue are at hand)."""
        count = self._chat_model.rowCount()
        last = self._chat_model.row(count - 1) if count else None
        self.delegate.active_ids = {last.message_id} if last is not None and last.role == "assistant" else set()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.delegate.row_width() != self._width and self._chat_model.rowCount():
            self._width = self.delegate.row_width()
            self._measure_visible()
            self._estimate_timer.start()
        self._update_jump_button()

    def refresh_layout(self) -> None:
        """After a font or theme change: every document is laid out again."""
        self.delegate.clear_cache()
        self._estimate_all()
        self.viewport().update()

    # --- mouse --------------------------------------------------------------------------------------------
    def _hit(self, pos: QPoint) -> tuple[QModelIndex, tuple[str, str] | None]:
        index = self.indexAt(pos)
        if not index.isValid():
            return index, None
        return index, self.delegate.hit(index, self.visualRect(index), QPointF(pos))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index, hit = self._hit(event.position().toPoint())
        row = index.data(RowRole) if index.isValid() else None
        hover = row.message_id if isinstance(row, ChatRow) else None
        self._set_hover(hover)
        shape = Qt.CursorShape.PointingHandCursor if hit else Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(shape)
        if hit and hit[0] == "link" and parse_copy_href(hit[1]) is None:
            QToolTip.showText(event.globalPosition().toPoint(), hit[1], self)  # the address, before any click
        if event.buttons() == Qt.MouseButton.NoButton:
            return
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._set_hover(None)
        super().leaveEvent(event)

    def _set_hover(self, message_id: int | None) -> None:
        if message_id != self.delegate.hover_id:
            self.delegate.hover_id = message_id
            self.viewport().update()

    def _hover_under_cursor(self) -> None:
        """After a scroll or a new list the message under a still mouse is another one (or none)."""
        pos = self.viewport().mapFromGlobal(QCursor.pos())
        index = self.indexAt(pos) if self.viewport().rect().contains(pos) and self.viewport().underMouse() else None
        row = index.data(RowRole) if index is not None and index.isValid() else None
        self._set_hover(row.message_id if isinstance(row, ChatRow) else None)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.delegate.focus_visible = False  # a click makes a message current without outlining it
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            index, hit = self._hit(event.position().toPoint())
            if hit is not None:
                self.setCurrentIndex(index)
                self.activate(index, *hit)
                event.accept()
                return
        super().mouseReleaseEvent(event)

    # --- keyboard and menu ----------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        if not self.delegate.focus_visible:
            self.delegate.focus_visible = True  # moving by keyboard: the current message is outlined
            self.viewport().update()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_PageUp, Qt.Key.Key_Home):
            self._follow = False  # the move below re-enables following if it ends at the bottom
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_row(self.currentIndex())
            event.accept()
            return
        menu_key = key == Qt.Key.Key_Menu or (key == Qt.Key.Key_F10 and mods == Qt.KeyboardModifier.ShiftModifier)
        if menu_key and self.currentIndex().isValid():
            self.open_menu(self.currentIndex(), self.visualRect(self.currentIndex()).center(), None)
            event.accept()
            return
        if mods == Qt.KeyboardModifier.AltModifier and key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            current = self.currentIndex()
            row = current.data(RowRole)
            if isinstance(row, ChatRow):
                self.actionRequested.emit("prev" if key == Qt.Key.Key_Left else "next", row.message_id)
                if current.row() < self._chat_model.rowCount():  # the same place, now the other alternative
                    self.setCurrentIndex(self._chat_model.index(current.row(), 0))
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        if event.reason() == QContextMenuEvent.Reason.Keyboard:
            index = self.currentIndex()
            pos, hit = (self.visualRect(index).center() if index.isValid() else QPoint(20, 20)), None
        else:
            pos = event.pos()
            index, hit = self._hit(pos)
        if index.isValid():
            self.open_menu(index, pos, hit)
        event.accept()

    def open_menu(self, index: Index, pos: QPoint, hit: tuple[str, str] | None) -> None:
        if self.menu is not None:
            self.menu.close()
            self.menu.deleteLater()
        self.menu = self.menu_for(index, hit)
        self.show_menu(self.menu, self.viewport().mapToGlobal(pos))

    def show_menu(self, menu: QMenu, global_pos: QPoint) -> None:
        menu.popup(global_pos)  # not exec(): no nested event loop while the stream goes on

    def menu_for(self, index: Index, hit: tuple[str, str] | None = None) -> QMenu:
        """Everything a message offers, reachable by keyboard (the Menu key or Shift+F10 on the current row)."""
        return message_menu(self, index, hit)

    # --- empty state ------------------------------------------------------------------------------------------
    def set_placeholder(self, text: str) -> None:
        if text != self.placeholder:
            self.placeholder = text
            self.viewport().update()

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._chat_model.rowCount() == 0 and self.placeholder:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            rect = self.viewport().rect().adjusted(24, 24, -24, -24)
            painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.placeholder)
            painter.end()

    # --- token probabilities on hover -------------------------------------------------------------------------
    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:  # the mouse left the messages (to the scroll bar, "↓ Latest", away)
            self._set_hover(None)
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            tip = self.token_tooltip(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
                return True
        return super().viewportEvent(event)

    def token_tooltip(self, pos: QPoint) -> str | None:
        """"token 'foo' 62.1% · alternatives: …" for the reply token under `pos`, when its probabilities were kept."""
        if self.token_records is None:
            return None
        index = self.indexAt(pos)
        if not index.isValid():
            return None
        found = self.delegate.text_position(index, self.visualRect(index), QPointF(pos))
        if found is None:
            return None
        row, rendered, position = found
        records = self.token_records(row.message_id)
        if not records:
            return None
        view = reasoning_view(row)
        if view is None:
            return self._token_lookup.tooltip(row.message_id, row.content, rendered, position, records)
        shown, answer_shown, answer_start = view  # the bubble shows a line (and maybe the reasoning) before the answer
        offset = self._token_lookup.source_offset(row.message_id, shown, rendered, position)
        if offset < answer_shown:
            return None
        record = record_at(records, offset - answer_shown + answer_start)
        return tooltip_text(record) if record is not None else None
