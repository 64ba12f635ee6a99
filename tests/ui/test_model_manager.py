"""The model manager window through its real widgets, against the fake Hub on loopback and generated GGUFs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest
from fakehub import FakeHub
from file_keyring import MemoryKeyring
from gguf_factory import write_tiny_llama
from keyring.backends.fail import Keyring as FailKeyring
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFileDialog, QMessageBox, QTableWidget, QTableWidgetItem
from pytestqt.qtbot import QtBot

from llamadesk.core.catalog import load_catalog
from llamadesk.core.downloads import QUARANTINE_DIR, DownloadQueue, State
from llamadesk.core.fit import Verdict
from llamadesk.core.library import list_local_models, read_sidecar
from llamadesk.paths import Paths
from llamadesk.ui.models import ModelManagerDialog
from llamadesk.ui.models.common import SUBTITLE_ROLE, fit_text, human_size
from llamadesk.ui.models.downloads_page import DownloadRow

REPO = "tester/Medium-GGUF"
FILE = "medium-F32.gguf"
BIG_REPO = "tester/Huge-GGUF"
BIG_FILE = "huge-Q8_0.gguf"
SPLIT = [f"Q8_0/medium-Q8_0-0000{i}-of-00002.gguf" for i in (1, 2)]
CATALOG_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"
CATALOG_FILE = "SmolLM2-135M-Instruct-Q4_K_M.gguf"
GB = 10**9
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def medium_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 10 MB: big enough to stop half-way, small enough to be quick."""
    return write_tiny_llama(tmp_path_factory.mktemp("medium") / FILE, n_layers=4, n_embd=256, n_head=4)


@pytest.fixture(scope="module")
def huge_model(medium_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real header followed by 1 GB of zeros (a sparse file): a Check fit must not read it all."""
    path = tmp_path_factory.mktemp("huge") / BIG_FILE
    shutil.copy(medium_model, path)
    with open(path, "r+b") as f:
        f.truncate(GB)
    return path


@pytest.fixture
def hub(fake_hub: FakeHub, medium_model: Path, tiny_model: Path) -> FakeHub:
    data = medium_model.read_bytes()
    fake_hub.add_repo(REPO, downloads=42_000, likes=7)
    fake_hub.add_repo("tester/Other-GGUF", downloads=12, likes=70)
    fake_hub.add_file(REPO, FILE, data)
    for part in SPLIT:
        fake_hub.add_file(REPO, part, data)
    fake_hub.add_file(REPO, "README.md", b"# medium\n", lfs=False)
    fake_hub.add_file("tester/Other-GGUF", "other-Q4_K_M.gguf", data)
    fake_hub.add_file(CATALOG_REPO, CATALOG_FILE, tiny_model.read_bytes())
    return fake_hub


@pytest.fixture
def make_dialog(
    qtbot: QtBot, paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ModelManagerDialog]]:
    """Real dialogs; each is shut down at the end (downloads paused, every background thread joined).
    HOME is an empty folder: "Found in other apps" never reads the real home directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for var in ("HF_HOME", "HF_HUB_CACHE", "OLLAMA_MODELS", "XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(var, raising=False)
    made: list[ModelManagerDialog] = []

    def make(endpoint: str | None = None) -> ModelManagerDialog:
        dialog = ModelManagerDialog(paths, endpoint=endpoint)
        qtbot.addWidget(dialog)
        made.append(dialog)
        dialog.show()
        qtbot.waitUntil(
            lambda: dialog.machine.known and dialog.downloads.loaded and dialog.library_page.loaded, timeout=WAIT_MS
        )
        dialog.machine.set_memory(8 * GB, 0, ram_total=16 * GB)  # the verdicts must not depend on this machine
        return dialog

    yield make
    for dialog in made:
        assert dialog.shutdown(), "a background task did not stop"
        assert dialog.runner.active_count() == 0 and dialog.runner.pool.activeThreadCount() == 0
        dialog.close()


def cell(table: QTableWidget, row: int, col: int) -> QTableWidgetItem:
    item = table.item(row, col)
    assert item is not None, f"no cell at {row}, {col}"
    return item


def row_texts(table: QTableWidget, col: int) -> list[str]:
    return [cell(table, r, col).text() for r in range(table.rowCount())]


def open_repo(qtbot: QtBot, dialog: ModelManagerDialog, text: str) -> None:
    page = dialog.hub_page
    dialog.show_tab("hub")
    page.search_box.setText(text)
    qtbot.mouseClick(page.search_button, Qt.MouseButton.LeftButton)


def search_and_open(qtbot: QtBot, dialog: ModelManagerDialog, query: str, repo: str) -> None:
    page = dialog.hub_page
    open_repo(qtbot, dialog, query)
    qtbot.waitUntil(lambda: bool(page.results), timeout=WAIT_MS)
    page.results_table.selectRow([r.repo_id for r in page.results].index(repo))
    qtbot.waitUntil(lambda: page.repo_id == repo and bool(page.groups), timeout=WAIT_MS)


def choose_file(dialog: ModelManagerDialog, quant: str) -> None:
    page = dialog.hub_page
    page.files_table.selectRow([g.quantization for g in page.groups].index(quant))


def row_for(dialog: ModelManagerDialog, filename: str) -> DownloadRow:
    job = next(j for j in dialog.downloads.jobs() if j.filename == filename)
    return dialog.downloads_page.rows[job.id]


# -- catalog ----------------------------------------------------------------------------------------------------
def test_nothing_touches_the_network_until_asked(hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog]) -> None:
    dialog = make_dialog()
    for tab in ("catalog", "hub", "downloads", "library", "settings"):
        dialog.show_tab(tab)
    assert hub.records == []


def test_catalog_shows_families_sizes_quantizations_with_sizes_and_verdicts(
    make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot
) -> None:
    dialog = make_dialog()
    page = dialog.catalog_page
    catalog = load_catalog()
    assert page.families.count() == len(catalog.families) >= 7
    assert "RAM 8.0 GB free of 16 GB" in dialog.memory_label.text() and "CPU only" in dialog.memory_label.text()

    page.select("smollm2", "135m")
    size = catalog.family("smollm2").size("135m")
    assert page.sizes.count() == len(catalog.family("smollm2").sizes)
    assert row_texts(page.table, 0)[0] == "Q2_K" and len(row_texts(page.table, 0)) == len(size.quantizations)
    expected = size.fits(4096, ram_free=8 * GB)
    for row, (quant, est) in enumerate(expected):
        assert cell(page.table, row, 0).text().startswith(quant.name)
        assert cell(page.table, row, 1).text() == f"≈ {human_size(quant.size_bytes)}"
        assert cell(page.table, row, 2).text() == fit_text(est) == "✓ fits"
    assert "★ recommended" in cell(page.table, [q.name for q, _ in expected].index("Q4_K_M"), 0).text()
    assert page.current_quantization()[0].name == "Q4_K_M"  # type: ignore[index]
    assert page.download_button.text().startswith("Download Q4_K_M (≈ ")

    page.select("llama-1", "30b")  # 30B on 8 GB of RAM: nothing fits
    assert set(row_texts(page.table, 2)) == {"✗ too large"}
    assert page.sizes.currentItem().data(SUBTITLE_ROLE).startswith("✗ too large here")
    dialog.machine.set_memory(8 * GB, 24 * GB)  # a 24 GB GPU: small ones fit, Q5_K_M partly, Q6_K and up do not
    verdicts = dict(zip([t.split()[0] for t in row_texts(page.table, 0)], row_texts(page.table, 2), strict=True))
    assert verdicts["Q4_K_M"] == "✓ fits" and verdicts["Q8_0"] == "✗ too large"
    assert verdicts["Q5_K_M"] == "◐ fits with 52 of 60 layers on GPU"
    assert cell(page.table, 0, 2).foreground().color() != cell(page.table, len(verdicts) - 1, 2).foreground().color()
    assert page.sizes.currentItem().data(SUBTITLE_ROLE).startswith("✓ up to Q5_K_M · 32.5B · 2k context")
    assert "24 GB VRAM free" in dialog.memory_label.text()

    page.select("llama-3", "8b", "Q8_0")
    dialog.context_spin.stepBy(1)  # 4k → 8k
    assert dialog.context_spin.value() == 8192
    assert page.table.model().headerData(2, Qt.Orientation.Horizontal) == "Fit at 8k context"
    assert page.current_quantization()[0].name == "Q8_0"  # type: ignore[index]
    fits = catalog.family("llama-3").size("8b").fits(8192, ram_free=8 * GB, vram_free=24 * GB)
    assert row_texts(page.table, 2) == [fit_text(e) for _, e in fits]


def test_catalog_download_runs_to_completion(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, tiny_model: Path
) -> None:
    dialog = make_dialog(endpoint=hub.url)
    page = dialog.catalog_page
    page.select("smollm2", "135m", "Q4_K_M")
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    dest = paths.models / CATALOG_REPO / CATALOG_FILE
    assert dest.read_bytes() == tiny_model.read_bytes()
    [model] = list_local_models(paths.models)
    assert model.name == "SmolLM2 Instruct 135M · Q4_K_M" and model.license == "Apache-2.0"
    qtbot.waitUntil(lambda: cell(page.table, 2, 4).text() == "Downloaded", timeout=WAIT_MS)
    assert not page.download_button.isEnabled()
    qtbot.waitUntil(lambda: [m.name for m in dialog.library_page.models] == [model.name], timeout=WAIT_MS)


# -- Hub --------------------------------------------------------------------------------------------------------
def test_hub_search_lists_repos_and_opening_one_groups_its_files(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot
) -> None:
    dialog = make_dialog()
    page = dialog.hub_page
    search_and_open(qtbot, dialog, "tester", REPO)
    assert [r.repo_id for r in page.results] == [REPO, "tester/Other-GGUF"]  # most downloaded first
    assert row_texts(page.results_table, 1)[0] == "42.0k"
    page.sort.setCurrentIndex(1)  # most liked
    qtbot.waitUntil(lambda: page.results[0].repo_id == "tester/Other-GGUF", timeout=WAIT_MS)
    assert row_texts(page.files_table, 0) == ["F32", "Q8_0"]  # README.md is no model; two parts are one
    files = row_texts(page.files_table, 2)
    assert files[0] == FILE and files[1] == "medium-Q8_0.gguf (2 parts)"
    sizes = row_texts(page.files_table, 1)
    assert sizes[1] == human_size(2 * hub.files[(REPO, FILE)].size)
    assert "2 GGUF models" in page.repo_title.text()


class _KeySpy(QObject):
    """Records the Return/Enter presses that reach the object it filters."""

    def __init__(self, seen: list[int]) -> None:
        super().__init__()
        self.seen = seen

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        key = event.key() if isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress else None
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.seen.append(key)
        return False


def test_enter_in_the_search_box_searches_and_keeps_the_window_open(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot
) -> None:
    """Enter must stop at the search box: passed on, the dialog clicks its default button (whichever it is then)."""
    dialog = make_dialog()
    page = dialog.hub_page
    dialog.show_tab("hub")
    reached_dialog: list[int] = []
    spy = _KeySpy(reached_dialog)
    dialog.installEventFilter(spy)
    page.search_box.setFocus()
    qtbot.keyClicks(page.search_box, "tester")
    for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):  # the main keyboard's and the keypad's
        qtbot.keyClick(page.search_box, key)
        assert dialog.isVisible(), "Enter in the search box closed the Models window"
    dialog.removeEventFilter(spy)
    assert reached_dialog == [], "Enter went on from the search box to the dialog's default button"
    qtbot.waitUntil(lambda: bool(page.results), timeout=WAIT_MS)
    assert [r.repo_id for r in page.results] == [REPO, "tester/Other-GGUF"]
    assert dialog.isVisible() and page.search_box.text() == "tester"


def test_pasting_a_hub_url_opens_the_repo_and_selects_the_file(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot
) -> None:
    dialog = make_dialog()
    page = dialog.hub_page
    open_repo(qtbot, dialog, f"https://huggingface.co/{REPO}/blob/main/{SPLIT[0]}")
    qtbot.waitUntil(lambda: bool(page.groups), timeout=WAIT_MS)
    assert page.repo_id == REPO and page.current_group().quantization == "Q8_0"  # type: ignore[union-attr]
    assert not [r for r in hub.records if r.path.startswith("/api/models?")]  # opened, not searched
    open_repo(qtbot, dialog, "no such/repo name")
    qtbot.waitUntil(lambda: page.message.text().startswith("No GGUF repositories match"), timeout=WAIT_MS)
    open_repo(qtbot, dialog, "tester/Medium")  # no repo has that id: it is searched for instead
    qtbot.waitUntil(lambda: [r.repo_id for r in page.results] == [REPO], timeout=WAIT_MS)
    assert not page.message.is_error


def test_check_fit_reads_only_the_header(
    hub: FakeHub, huge_model: Path, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot
) -> None:
    hub.add_repo(BIG_REPO, downloads=5)
    hub.add_file(BIG_REPO, BIG_FILE, source=huge_model)
    dialog = make_dialog()
    page = dialog.hub_page
    open_repo(qtbot, dialog, BIG_REPO)
    qtbot.waitUntil(lambda: bool(page.groups), timeout=WAIT_MS)
    assert page.check_button.isEnabled()
    qtbot.mouseClick(page.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Header read" in page.fit_info.text(), timeout=WAIT_MS)
    info = page.fit_info.text()
    assert "Architecture llama" in info and "4 layers" in info and "Trained context 2,048" in info
    assert "chat template: yes" in info and "of 1.0 GB" in info
    assert hub.body_bytes(BIG_FILE) < 4 * 2**20, "Check fit read more than a few MB"
    est = page.last_estimate()
    assert est is not None and est.verdict is Verdict.FITS and est.n_ctx == 2048  # capped at the trained context
    assert page.verdict.text() == "✓ fits at 2k context — largest context that fits: 2k"
    dialog.machine.set_memory(GB, 0)  # less RAM than the 1 GB of weights: re-judged without reading again
    assert page.verdict.text().startswith("✗ too large")
    assert hub.body_bytes(BIG_FILE) < 4 * 2**20


# -- downloads --------------------------------------------------------------------------------------------------
def test_hub_download_completes_verified_and_emits_models_changed(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, medium_model: Path
) -> None:
    dialog = make_dialog()
    search_and_open(qtbot, dialog, "medium", REPO)
    choose_file(dialog, "F32")
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    dest = paths.models / REPO / FILE
    assert dest.read_bytes() == medium_model.read_bytes()
    assert read_sidecar(dest)["sha256"] == hub.files[(REPO, FILE)].sha256
    dialog.show_tab("downloads")
    row = row_for(dialog, FILE)
    assert row.bar.value() == 1000 and row.status.text().startswith("Done · ")
    assert "✓ Verified: sha256" in row.status.text()
    assert row.remove_button.isVisible() and not row.pause_button.isVisible()
    assert cell(dialog.hub_page.files_table, 0, 3).text() == "Downloaded"
    qtbot.waitUntil(lambda: [m.path for m in dialog.library_page.models] == [dest], timeout=WAIT_MS)


def test_a_split_model_downloads_every_part(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths
) -> None:
    dialog = make_dialog()
    search_and_open(qtbot, dialog, "medium", REPO)
    choose_file(dialog, "Q8_0")
    qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: len(dialog.downloads.jobs()) == 2 and all(j.state is State.DONE for j in dialog.downloads.jobs()),
        timeout=WAIT_MS,
    )
    assert [row_for(dialog, p).title.text() for p in SPLIT] == [
        "medium-Q8_0 — part 1 of 2",
        "medium-Q8_0 — part 2 of 2",
    ]
    qtbot.waitUntil(lambda: [m.name for m in dialog.library_page.models] == ["medium-Q8_0"], timeout=WAIT_MS)


def test_pause_then_resume_sends_only_the_rest(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, medium_model: Path
) -> None:
    size = medium_model.stat().st_size
    hub.faults.hold_after = size // 2  # the server goes quiet half-way: the bar stands still
    dialog = make_dialog()
    search_and_open(qtbot, dialog, "medium", REPO)
    choose_file(dialog, "F32")
    qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(j.filename == FILE for j in dialog.downloads.jobs()), timeout=WAIT_MS)
    dialog.show_tab("downloads")
    row = row_for(dialog, FILE)
    qtbot.waitUntil(hub.held.is_set, timeout=WAIT_MS)
    assert row.pause_button.isVisible() and "Downloading" in row.status.text() and row.bar.value() < 1000
    assert dialog.tabs.tabText(2) == "Downloads (1)"
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    assert row.pause_button.text() == "Pausing…"
    hub.faults.hold_after = None
    hub.release()  # the held response ends; the downloader sees the pause before retrying
    qtbot.waitUntil(lambda: dialog.downloads.job(row.job_id).state is State.PAUSED, timeout=WAIT_MS)  # type: ignore[union-attr]
    assert row.resume_button.isVisible() and not row.pause_button.isVisible()
    have = DownloadQueue(paths.models).part_path(dialog.downloads.job(row.job_id)).stat().st_size  # type: ignore[arg-type]
    assert 0 < have < size and row.status.text().startswith(f"Paused · {human_size(have)} of ")
    assert row.bar.value() == 1000 * have // size
    sent = hub.body_bytes(FILE)
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
    assert (paths.models / REPO / FILE).read_bytes() == medium_model.read_bytes()
    assert hub.body_bytes(FILE) - sent == size - have, "bytes were sent twice"


def test_a_hash_mismatch_is_one_sentence_and_nothing_is_registered(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths
) -> None:
    hub.faults.corrupt = True
    dialog = make_dialog()
    changed: list[bool] = []
    dialog.modelsChanged.connect(lambda: changed.append(True))
    search_and_open(qtbot, dialog, "medium", REPO)
    choose_file(dialog, "F32")
    qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(j.state is State.FAILED for j in dialog.downloads.jobs()), timeout=WAIT_MS)
    dialog.show_tab("downloads")
    row = row_for(dialog, FILE)
    text = row.error.text()
    assert row.error.is_error and "failed its checksum" in text and text.endswith("Download it again.")
    assert "\n" not in text and "Traceback" not in text
    assert row.retry_button.isVisible() and row.remove_button.isVisible() and not row.cancel_button.isVisible()
    assert list_local_models(paths.models) == [] and not changed
    assert len(list((paths.models / QUARANTINE_DIR).iterdir())) == 1
    hub.faults.corrupt = False  # the retry gets good bytes
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(row.retry_button, Qt.MouseButton.LeftButton)
    assert row.error.isHidden() and [m.name for m in list_local_models(paths.models)] == ["medium-F32"]


def test_cancel_deletes_the_partial_file(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, medium_model: Path
) -> None:
    hub.faults.hold_after = medium_model.stat().st_size // 3
    dialog = make_dialog()
    search_and_open(qtbot, dialog, "medium", REPO)
    choose_file(dialog, "F32")
    qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: hub.held.is_set() and any(j.filename == FILE for j in dialog.downloads.jobs()), timeout=WAIT_MS
    )
    dialog.show_tab("downloads")
    row = row_for(dialog, FILE)
    qtbot.mouseClick(row.cancel_button, Qt.MouseButton.LeftButton)
    hub.faults.hold_after = None
    hub.release()
    qtbot.waitUntil(lambda: dialog.downloads.job(row.job_id).state is State.CANCELLED, timeout=WAIT_MS)  # type: ignore[union-attr]
    assert not list((paths.models / ".downloads").glob("*.part")) and row.retry_button.isVisible()
    qtbot.mouseClick(row.remove_button, Qt.MouseButton.LeftButton)
    assert row.job_id not in dialog.downloads_page.rows
    qtbot.waitUntil(lambda: not list((paths.models / ".downloads").glob("*.json")), timeout=WAIT_MS)


def test_downloads_from_before_a_restart_are_listed_and_resume(
    hub: FakeHub, make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, medium_model: Path
) -> None:
    queue = DownloadQueue(paths.models)
    job = queue.add(REPO, FILE, display_name="Medium from yesterday")
    half = medium_model.read_bytes()[: medium_model.stat().st_size // 2]
    queue.part_path(job).write_bytes(half)  # what an earlier run left behind
    dialog = make_dialog()
    page = dialog.downloads_page
    dialog.show_tab("downloads")
    assert list(page.rows) == [job.id]
    row = page.rows[job.id]
    assert row.title.text() == "Medium from yesterday" and row.resume_button.isVisible()
    assert f"{human_size(len(half))}" in row.status.text() and "Not started" in row.status.text()
    assert page.resume_all_button.isVisible() and "1 paused or interrupted" in page.summary.text()
    assert hub.records == []  # listed, not started: nothing goes out until the user resumes
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(page.resume_all_button, Qt.MouseButton.LeftButton)
    assert (paths.models / REPO / FILE).read_bytes() == medium_model.read_bytes()
    assert hub.body_bytes(FILE) == medium_model.stat().st_size - len(half)


# -- library ----------------------------------------------------------------------------------------------------
def test_import_copies_a_tiny_model(
    make_dialog: Callable[..., ModelManagerDialog],
    qtbot: QtBot,
    paths: Paths,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(tiny_model), "GGUF models (*.gguf)"))
    dialog = make_dialog()
    page = dialog.library_page
    dialog.show_tab("library")
    assert page.import_mode.currentData() == "copy"
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(page.import_button, Qt.MouseButton.LeftButton)
    copied = paths.models / "imported" / tiny_model.name
    assert copied.read_bytes() == tiny_model.read_bytes() and tiny_model.exists()
    qtbot.waitUntil(lambda: row_texts(page.table, 0) == ["tiny-chatml"], timeout=WAIT_MS)
    assert "imported from" in cell(page.table, 0, 3).text() and "1 model" in page.usage_label.text()
    assert page.message.text().startswith("Imported: tiny-chatml")


def test_delete_asks_and_removes(
    make_dialog: Callable[..., ModelManagerDialog], qtbot: QtBot, paths: Paths, tiny_model: Path, dialogs: Any
) -> None:
    target = paths.models / "tiny-chatml.gguf"
    shutil.copy(tiny_model, target)
    dialog = make_dialog()
    page = dialog.library_page
    dialog.show_tab("library")
    page.select_model("tiny-chatml")
    dialogs.answer = QMessageBox.StandardButton.No
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert len(dialogs.questions) == 1 and "Delete tiny-chatml" in dialogs.questions[0] and target.exists()
    dialogs.answer = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert len(dialogs.questions) == 2 and not target.exists()
    qtbot.waitUntil(lambda: page.table.rowCount() == 0, timeout=WAIT_MS)
    assert page.message.text().startswith("Deleted tiny-chatml")


def test_models_of_other_apps_are_used_without_copying(
    make_dialog: Callable[..., ModelManagerDialog],
    qtbot: QtBot,
    paths: Paths,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lmstudio = tmp_path / "user" / ".lmstudio" / "models" / "someone" / "Tiny-GGUF" / "tiny-lm.gguf"
    lmstudio.parent.mkdir(parents=True)  # HOME is tmp_path / "user" (see make_dialog)
    shutil.copy(tiny_model, lmstudio)
    dialog = make_dialog()
    page = dialog.library_page
    dialog.show_tab("library")
    qtbot.waitUntil(lambda: page.discovered, timeout=WAIT_MS)
    assert row_texts(page.found_table, 0) == ["LM Studio"] and row_texts(page.found_table, 1) == ["tiny-lm"]
    page.found_table.selectRow(0)
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: [m.path for m in page.models] == [lmstudio.resolve()], timeout=WAIT_MS)
    assert page.models[0].external and "used in place" in cell(page.table, 0, 4).text()
    assert not page.use_button.isEnabled()  # already in use
    assert not any(paths.models.rglob("*.gguf"))  # nothing was copied


# -- settings ---------------------------------------------------------------------------------------------------
def test_hf_token_goes_to_the_keyring_and_never_to_the_log(
    make_dialog: Callable[..., ModelManagerDialog],
    qtbot: QtBot,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    memory_keyring: MemoryKeyring,
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # Whatever keyring this machine has, the test starts with none (monkeypatch puts the real one back).
    monkeypatch.setattr(keyring.core, "_keyring_backend", FailKeyring())
    caplog.set_level(logging.DEBUG)
    secret = "hf_TopSecretToken1234567890"
    dialog = make_dialog()
    page = dialog.settings_page
    dialog.show_tab("settings")
    qtbot.waitUntil(lambda: page.has_token is not None, timeout=WAIT_MS)
    assert page.token_field.echoMode() == page.token_field.EchoMode.Password
    page.token_field.setText(secret)  # no keyring: one sentence, nothing stored
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.message.is_error, timeout=WAIT_MS)
    assert "keyring refused" in page.message.text() and page.token_field.text() == secret

    keyring.set_keyring(memory_keyring)
    qtbot.mouseClick(page.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.has_token is True, timeout=WAIT_MS)
    assert memory_keyring.store == {("LlamaDesk", "huggingface-token"): secret}
    assert page.token_field.text() == "" and "stored in the system keyring" in page.token_state.text()
    qtbot.mouseClick(page.forget_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.has_token is False, timeout=WAIT_MS)
    assert memory_keyring.store == {}
    assert secret not in caplog.text


def test_a_gated_repo_downloads_once_a_token_is_stored(
    hub: FakeHub,
    make_dialog: Callable[..., ModelManagerDialog],
    qtbot: QtBot,
    paths: Paths,
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "hf_GatedAccess0987654321"
    hub.add_repo("tester/Gated-GGUF", downloads=99, gated_token=secret)
    hub.add_file("tester/Gated-GGUF", "gated-Q4_K_M.gguf", hub.files[(REPO, FILE)].data)
    caplog.set_level(logging.DEBUG)
    dialog = make_dialog()
    search_and_open(qtbot, dialog, "Gated", "tester/Gated-GGUF")
    assert row_texts(dialog.hub_page.results_table, 0) == ["🔒 tester/Gated-GGUF"]
    qtbot.mouseClick(dialog.hub_page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(j.state is State.FAILED for j in dialog.downloads.jobs()), timeout=WAIT_MS)
    dialog.show_tab("downloads")
    row = row_for(dialog, "gated-Q4_K_M.gguf")
    assert "is gated" in row.error.text() and row.error.text().endswith("store the token in Settings, then Retry.")

    dialog.show_tab("settings")
    dialog.settings_page.token_field.setText(secret)
    qtbot.mouseClick(dialog.settings_page.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.settings_page.has_token is True, timeout=WAIT_MS)
    dialog.show_tab("downloads")
    with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
        qtbot.mouseClick(row.retry_button, Qt.MouseButton.LeftButton)
    assert (paths.models / "tester" / "Gated-GGUF" / "gated-Q4_K_M.gguf").is_file()
    assert any(r.headers.get("authorization") == f"Bearer {secret}" for r in hub.records)
    assert secret not in caplog.text
