"""The status bar's figures: the last reply's speed and TTFT, and the context meter (tokens used / length)."""

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
            tip += " It no longer fits: choose an overflow policy in Settings, or start a new chat."
        elif share >= WARN_SHARE:
            tip += f" When it is full: {POLICY_LABELS[self.policy].lower()}."
        self.setToolTip(tip)
        self.bar.setAccessibleDescription(tip)


class ReplyFigures(QWidget):
    """Speed, time to first token and the context meter, side by side in the status bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.speed_label, self.ttft_label = QLabel(self), QLabel(self)
        self.meter = ContextMeter(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label, tip in (
            (self.speed_label, "Generation speed of the last reply"),
            (self.ttft_label, "Time to first token of the last reply"),
        ):
            label.setToolTip(tip)
            label.setAccessibleName(tip)
            label.setContentsMargins(8, 0, 8, 0)
            layout.addWidget(label)
        layout.addWidget(self.meter)

    def show_stats(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s")
        ttft = f"{stats.ttft_s * 1000:.0f} ms" if stats.ttft_s < 1 else f"{stats.ttft_s:.2f} s"
        self.ttft_label.setText(f"TTFT {ttft}")
