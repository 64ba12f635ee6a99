"""The status bar's figures: the shown conversation's last reply (speed, wait for the first word) and the context
meter (tokens used / length)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from llamadesk.core.conversation.plan import POLICY_LABELS, OverflowPolicy
from llamadesk.core.engines.api import GenerationStats

WARN_SHARE = 0.9


class ContextMeter(QWidget):
    """A small bar and "1,234 / 4,096 tokens"; red when full, with what the overflow policy will do."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("contextMeter")
        self.bar = QProgressBar(self)
        self.bar.setObjectName("contextBar")
        self.bar.setAccessibleName("Context used")
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(90, 10)
        self.label = QLabel(self)
        self.label.setObjectName("contextLabel")
        self.label.setAccessibleName("Context used")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 0)
        layout.setSpacing(6)
        layout.addWidget(self.bar)
        layout.addWidget(self.label)
        self.used = 0
        self.n_ctx = 0
        self.policy = OverflowPolicy.STOP
        self.documents = 0  # tokens the conversation's documents may take in each reply's prompt (0: it uses none)
        self.clear()

    def clear(self) -> None:
        self.used = self.n_ctx = 0
        self.label.clear()
        self.bar.setValue(0)
        self.bar.hide()
        self.setToolTip("")

    def set_documents(self, tokens: int) -> None:
        """The conversation quotes its documents, up to `tokens` of each reply's prompt (0: it uses none)."""
        self.documents = tokens
        if self.n_ctx:
            self.set_usage(self.used, self.n_ctx)

    def set_policy(self, policy: OverflowPolicy) -> None:
        self.policy = policy
        if self.n_ctx:
            self.set_usage(self.used, self.n_ctx)

    def set_usage(self, used: int, n_ctx: int) -> None:
        self.used, self.n_ctx = used, n_ctx
        if n_ctx <= 0:
            self.clear()
            return
        self.bar.show()
        self.bar.setRange(0, n_ctx)
        self.bar.setValue(min(used, n_ctx))
        documents = f" · documents ≤ {self.documents}" if self.documents else ""
        self.label.setText(f"{used} / {n_ctx} tokens{documents}")
        share = used / n_ctx
        full = share >= 1.0
        self.bar.setStyleSheet("QProgressBar::chunk { background: #d9534f; }" if share >= WARN_SHARE else "")
        tip = f"{used} of the model's {n_ctx} context tokens are used by this conversation ({share:.0%})."
        if self.documents:
            tip += f" Its documents' passages may take up to {self.documents} more tokens of each reply's prompt."
        if full and self.policy is OverflowPolicy.STOP:
            tip += (" It no longer fits: choose what happens when the context is full (Settings → Context → When full: "
                    "drop the oldest turns, or the middle), or start a new chat.")
        elif share >= WARN_SHARE:
            tip += f" When it is full: {POLICY_LABELS[self.policy].lower()}."
        self.setToolTip(tip)
        self.bar.setAccessibleDescription(tip)


SPEED_TIP = ("How fast the last reply was written, in tokens per second. A token is a word or a piece of one: "
             "a typical English word is one or two tokens.")
FIRST_WORD_TIP = ("How long the model took before it started answering the last reply: the time it spent reading "
                  "your message and the conversation before it (time to first token).")


def first_word_text(seconds: float) -> str:
    """ "first word after 0.4 s" (under 0.1 s in milliseconds: "first word after 25 ms")."""
    shown = f"{seconds * 1000:.0f} ms" if seconds < 0.1 else f"{seconds:.1f} s"
    return f"first word after {shown}"


class ReplyFigures(QWidget):
    """The shown conversation's last reply: its speed and how long it took to start; and the context meter."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.speed_label, self.ttft_label = QLabel(self), QLabel(self)
        self.meter = ContextMeter(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label, name, tip in (
            (self.speed_label, "Speed of the last reply", SPEED_TIP),
            (self.ttft_label, "Wait before the last reply's first word", FIRST_WORD_TIP),
        ):
            label.setToolTip(tip)
            label.setAccessibleName(name)
            label.setAccessibleDescription(tip)
            label.setContentsMargins(8, 0, 8, 0)
            layout.addWidget(label)
        layout.addWidget(self.meter)

    def show_stats(self, stats: GenerationStats) -> None:
        self.show_figures(stats.tokens_per_s, stats.ttft_s)

    def show_figures(self, tokens_per_s: object, ttft_s: object) -> None:
        """A reply's figures as stored in its receipt (either may be missing: its label stays empty)."""
        speed = float(tokens_per_s) if isinstance(tokens_per_s, (int, float)) else 0.0
        first = float(ttft_s) if isinstance(ttft_s, (int, float)) else 0.0
        self.speed_label.setText(f"{speed:.1f} tokens/s" if speed > 0 else "")
        self.ttft_label.setText(first_word_text(first) if first > 0 else "")

    def clear_stats(self) -> None:
        """No reply to show: a reply is starting, or the conversation shown has none."""
        self.speed_label.clear()
        self.ttft_label.clear()
