"""Every tool call is shown before it runs, with its arguments: allow once, always for this tool, or deny.

The engine thread runs the reply's tool loop (core/tools/loop.py) and calls `WindowAsk` there; it shows the
question on the GUI thread (a queued signal) and waits on a threading.Event for the answer. Stop answers deny (the
request's cancel event), and so does closing the dialog. The arguments are shown as plain text: inert, like replies.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from llamadesk.core.conversation.tool_calls import ToolCall
from llamadesk.core.markdown import inert_text
from llamadesk.core.tools.approval import Decision
from llamadesk.core.tools.spec import Tool

CANCEL_POLL_S = 0.05  # the engine thread waits for the answer or the reply's Stop: threading has no wait-for-either
SHOWN_ARGUMENTS = 20_000  # characters of the arguments shown (the rest is cut with a note)


@dataclass
class Question:
    """One call waiting for the user's answer."""

    call: ToolCall
    tool: Tool
    decision: Decision = Decision.DENY
    answered: threading.Event = field(default_factory=threading.Event)

    def answer(self, decision: Decision) -> None:
        if not self.answered.is_set():
            self.decision = decision
            self.answered.set()


def arguments_text(arguments: object) -> str:
    text = json.dumps(arguments, ensure_ascii=False, indent=2)
    if len(text) > SHOWN_ARGUMENTS:
        text = text[:SHOWN_ARGUMENTS] + "\n[…]"
    return inert_text(text)


class ApprovalDialog(QDialog):
    """The question for one call; the window stays usable (open(), not exec()), and Stop still works."""

    def __init__(self, question: Question, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.question = question
        self.setObjectName("toolApproval")
        self.setWindowTitle("Run a tool?")
        where = "" if question.tool.source == "builtin" else f" from {question.tool.source.removeprefix('mcp:')}"
        self.label = QLabel(inert_text(f"The model asks to run the tool {question.call.name}{where} with:"), self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.arguments = QPlainTextEdit(arguments_text(question.call.arguments), self)
        self.arguments.setObjectName("toolApprovalArguments")
        self.arguments.setAccessibleName("The call's arguments")
        self.arguments.setReadOnly(True)
        self.allow_once = QPushButton("Allow once", self)
        self.allow_always = QPushButton(f"Always allow {question.call.name}", self)
        self.deny = QPushButton("Deny", self)
        self.allow_once.setObjectName("toolAllowOnce")
        self.allow_always.setObjectName("toolAllowAlways")
        self.deny.setObjectName("toolDeny")
        self.deny.setDefault(True)  # Enter on a call you have not read runs nothing
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.allow_once, self.allow_always, self.deny):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.arguments)
        layout.addLayout(buttons)
        self.allow_once.clicked.connect(lambda: self._answer(Decision.ALLOW_ONCE))
        self.allow_always.clicked.connect(lambda: self._answer(Decision.ALLOW_ALWAYS))
        self.deny.clicked.connect(lambda: self._answer(Decision.DENY))
        self.finished.connect(lambda _r: question.answer(Decision.DENY))  # closed without a button: deny

    def _answer(self, decision: Decision) -> None:
        self.question.answer(decision)
        self.accept()


class WindowAsk(QObject):
    """The window's Approval.ask: called in the engine thread, answered on the GUI thread."""

    takes_cancel = True  # core/tools/loop.for_request gives it the request's cancel event
    asked = Signal(object)  # a Question (queued to the GUI thread)
    _ended = Signal(object)

    def __init__(self, parent_widget: QWidget | None = None) -> None:
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.dialog: ApprovalDialog | None = None
        self.asked.connect(self._show)
        self._ended.connect(self._close)

    def __call__(self, call: ToolCall, tool: Tool, cancel: threading.Event | None = None) -> Decision:
        question = Question(call, tool)
        self.asked.emit(question)
        while not question.answered.wait(CANCEL_POLL_S):
            if cancel is not None and cancel.is_set():
                question.answer(Decision.DENY)
        self._ended.emit(question)
        return question.decision

    def _show(self, question: Question) -> None:
        if question.answered.is_set():
            return  # Stop came first
        self.dialog = ApprovalDialog(question, self.parent_widget)
        self.dialog.open()

    def _close(self, question: Question) -> None:
        dialog = self.dialog
        if dialog is not None and dialog.question is question:
            self.dialog = None
            if dialog.isVisible():
                dialog.reject()
            dialog.deleteLater()
