"""The Catalog tab as a newcomer meets it (issue 20, defect 4): it opens on a current chat model, the 2023 base
models come last and say so, their quantizations are never "recommended", and every code in the table is explained
beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core.quant_codes import explain
from llamadesk.paths import Paths
from llamadesk.ui.models import ModelManagerDialog
from llamadesk.ui.models.common import SUBTITLE_ROLE

WAIT_MS = 60_000
GB = 10**9


@pytest.fixture
def dialog(qtbot: QtBot, paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelManagerDialog]:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for var in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS", "XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    d = ModelManagerDialog(paths)
    qtbot.addWidget(d)
    d.show()
    qtbot.waitUntil(lambda: d.machine.known and d.downloads.loaded and d.library_page.loaded, timeout=WAIT_MS)
    d.machine.set_memory(512 * GB, 80 * GB, ram_total=512 * GB)  # everything fits: only the kind decides
    yield d
    assert d.shutdown()
    d.close()


def test_the_catalog_opens_on_a_chat_model_and_ends_with_the_base_models(dialog: ModelManagerDialog) -> None:
    page = dialog.catalog_page
    family = page.current_family()
    assert family is not None and family.is_chat and not family.is_base_only
    assert "chat" in page.sizes.item(0).text()
    last = page.families.item(page.families.count() - 1)
    assert last.text() == "LLaMA (original, 2023)"
    assert last.data(SUBTITLE_ROLE).startswith("Base, not for chat")
    assert "base, not chat" in last.data(Qt.ItemDataRole.AccessibleTextRole)


def test_a_base_model_is_never_recommended_and_every_code_is_explained(dialog: ModelManagerDialog) -> None:
    page = dialog.catalog_page
    page.select("llama-1", "7b")
    names = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    assert names and not any("recommended" in n for n in names)
    assert "base model, not for chat" in page.sizes.item(0).text()
    lines = page.quant_help.text().splitlines()
    assert lines == [explain(n) for n in names]
    assert page.quant_help.isVisibleTo(dialog) and page.quant_help.wordWrap()
    page.select("qwen-2.5", "7b")
    names = [page.table.item(r, 0).text() for r in range(page.table.rowCount())]
    assert "Q4_K_M  ★ recommended" in names
    assert "Q4_K_M: 4-bit, the usual balance of size and quality" in page.quant_help.text().splitlines()
    assert page.table.item(names.index("Q4_K_M  ★ recommended"), 0).toolTip().startswith("Q4_K_M: 4-bit")
