"""A reply's receipt: model, every sampling value, seed, template, figures; copy it, or reproduce the reply."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from llamadesk.core.conversation.lifecycle import finish_words
from llamadesk.core.sampling import RANGES

MODE_NAMES = {"chat": "chat", "continue": "continued reply", "completion": "notebook (raw text)"}
# The overflow policy in plain words: what happens when the chat no longer fits the model's context.
POLICY_NAMES = {
    "stop": "stop and say so",
    "drop_oldest": "leave out the oldest turns",
    "drop_middle": "leave out the middle turns",
}


def _number(value: Any, unit: str = "", digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    text = f"{value}" if isinstance(value, int) else f"{value:.{digits}f}"
    return f"{text} {unit}".strip()


def _seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def receipt_sections(receipt: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The receipt as (section, [(name, value)]) in reading order; unknown keys are left out, missing ones show —."""
    sampling = receipt.get("sampling") if isinstance(receipt.get("sampling"), dict) else {}
    assert isinstance(sampling, dict)
    template = str(receipt.get("template", "—"))
    if receipt.get("template_source"):
        template += f" (from {receipt['template_source']})"
    model = [
        ("File", str(receipt.get("model_file", "—"))),
        ("Architecture", str(receipt.get("architecture", "—"))),
        ("Quantization", str(receipt.get("quantization", "—"))),
        ("SHA-256", str(receipt.get("sha256", "—"))),
        ("Context length", _number(receipt.get("n_ctx"), "tokens")),
        ("Chat template", template),
    ]
    if receipt.get("engine") == "remote":  # a server's reply: no file, no hash; where it came from instead
        model = [
            ("Endpoint", f"{receipt.get('endpoint_name', '—')} ({receipt.get('endpoint', '—')})"),
            ("Server", str(receipt.get("server_kind", "—"))),
            ("Model", str(receipt.get("model", "—"))),
        ]
        ignored = receipt.get("ignored_sampling")
        if isinstance(ignored, list):
            labels = [RANGES[str(k)].label if str(k) in RANGES else str(k) for k in ignored]
            model.append(("Not sent (the server ignores them)", ", ".join(labels) or "nothing"))
        if receipt.get("token_counts") == "estimated":
            model.append(("Token counts", "estimated (the server did not report them)"))
    if isinstance(receipt.get("rpc_servers"), list):
        model.append(("RPC hosts", ", ".join(map(str, receipt["rpc_servers"]))))
        split = receipt.get("layer_split")
        if isinstance(split, dict) and split:
            model.append(("Layer split", ", ".join(f"{dev}: {n}" for dev, n in split.items())))
    knobs = [(rng.label, _sampling_value(sampling.get(name))) for name, rng in RANGES.items()]
    knobs.append(("Seed", _seed(receipt, sampling)))
    result = [
        ("How it ended", finish_words(receipt.get("finish_reason"))),
        ("Prompt tokens", _number(receipt.get("prompt_tokens"))),
        ("Reused from cache", _number(receipt.get("cached_tokens"))),
        ("Generated tokens", _number(receipt.get("generated_tokens"))),
        ("Time to first token", _seconds(receipt.get("ttft_s"))),
        ("Speed", _number(receipt.get("tokens_per_s"), "tokens/s", 1)),
        ("Total time", _seconds(receipt.get("total_s"))),
    ]
    if receipt.get("mode"):
        result.insert(0, ("Mode", MODE_NAMES.get(str(receipt["mode"]), str(receipt["mode"]))))
    probs = receipt.get("token_probs")
    if isinstance(probs, dict) and isinstance(probs.get("tokens"), list):
        more = " (the first ones; the rest were not kept)" if probs.get("truncated") else ""
        result.append(("Token probabilities", f"{len(probs['tokens'])} tokens, top {probs.get('k', '?')}{more}"))
    continuations = receipt.get("continuations")
    if isinstance(continuations, list) and continuations:
        result.append(("Continued", f"{len(continuations)} time(s); Reproduce repeats the first part"))
    excluded = receipt.get("excluded_count") or 0
    prompt = [
        ("System prompt", str(receipt.get("system_prompt", "—")) or "(none)"),
        ("When the chat outgrows the context", POLICY_NAMES.get(str(receipt.get("context_policy")), "—")),
        ("Left out of the prompt", f"{excluded} message(s)" if excluded else "nothing"),
    ]
    if receipt.get("error"):
        result.append(("Error", str(receipt["error"])))
    software = [
        ("llama-cpp-python", str(receipt.get("llama_cpp_version", "—"))),
        ("LlamaDesk", str(receipt.get("app_version", "—"))),
    ]
    return [("Model", model), ("Sampling", knobs), ("Reply", result), ("Prompt", prompt), ("Software", software)]


def _seed(receipt: dict[str, Any], sampling: dict[str, Any]) -> str:
    """The seed used, and whether it was asked for ("fixed") or drawn ("random": sampling.seed is null)."""
    used = receipt.get("seed")
    if used is None:
        return "—"
    if "seed" in sampling and sampling["seed"] is None:
        return f"{used} (random)"
    return f"{used} (fixed)" if sampling.get("seed") == used else str(used)


def _sampling_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class ReceiptDialog(QDialog):
    """Shows one reply's receipt. Reproduce asks for the same settings and seed again, as a new alternative."""

    reproduceRequested = Signal(int)  # message id

    def __init__(
        self, message_id: int, receipt: dict[str, Any], *, reproduce_block: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self.receipt = receipt
        self.setObjectName("receiptDialog")
        self.setWindowTitle("Receipt")
        self.setAccessibleName("Receipt of the reply")
        self.resize(640, 660)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("receiptTree")
        self.tree.setAccessibleName("Receipt values")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Setting", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionBehavior(QTreeWidget.SelectionBehavior.SelectRows)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a hash shows both ends; the tooltip has it all
        for section, values in receipt_sections(receipt):
            head = QTreeWidgetItem(self.tree, [section])
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            head.setFirstColumnSpanned(True)
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            for name, value in values:
                item = QTreeWidgetItem(head, [name, value])
                item.setToolTip(1, value)
        self.tree.expandAll()
        self.note = QLabel(reproduce_block, self)
        self.note.setObjectName("reproduceNote")
        self.note.setWordWrap(True)
        self.note.setVisible(bool(reproduce_block))

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton("Copy as JSON", self)
        self.copy_button.setAccessibleName("Copy the receipt as JSON")
        self.reproduce_button = QPushButton("Reproduce", self)
        self.reproduce_button.setObjectName("reproduceButton")
        self.reproduce_button.setAccessibleName("Reproduce the reply")
        self.reproduce_button.setToolTip(
            reproduce_block or "Generate this reply again with the same model, settings and seed, as a new alternative"
        )
        self.reproduce_button.setEnabled(not reproduce_block and "seed" in receipt)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.reproduce_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self.copy_json)
        self.reproduce_button.clicked.connect(self._reproduce)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.note)
        layout.addWidget(buttons)

    def value(self, name: str) -> str | None:
        """The value shown for a setting (tests read it)."""
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            for j in range(head.childCount() if head is not None else 0):
                child = head.child(j) if head is not None else None
                if child is not None and child.text(0) == name:
                    return child.text(1)
        return None

    def copy_json(self) -> None:
        QGuiApplication.clipboard().setText(json.dumps(self.receipt, indent=2, sort_keys=True))

    def _reproduce(self) -> None:
        self.reproduceRequested.emit(self.message_id)
        self.accept()
