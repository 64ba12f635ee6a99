"""The Compare tab of the model manager through its real widgets: quants made by the app from a generated F32 model
(Make a quant…, llama_model_quantize in a child), then compared on a text in the background (real llama.cpp), the
table, the chart and the sentence; Stop, other models, short texts and bad outputs each give one sentence."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import FakeHub
from gguf_factory import write_tiny_llama
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from llamadesk.core import library, quality
from llamadesk.core.quantize import PARTIAL_SUFFIX, QuantizeProgress
from llamadesk.paths import Paths
from llamadesk.ui.models.quality_notes import measured_note
from llamadesk.ui.models.quality_page import COLUMNS, QualityPage
from llamadesk.ui.models.quantize_dialog import QuantizeDialog
from llamadesk.ui.workers import TaskRunner

WAIT_MS = 120_000
N_CTX = 128


@pytest.fixture
def runner() -> Iterator[TaskRunner]:
    r = TaskRunner(max_threads=4)
    yield r
    assert r.shutdown(), "a background task did not stop"


@pytest.fixture
def page(qtbot: QtBot, paths: Paths, runner: TaskRunner) -> QualityPage:
    write_tiny_llama(paths.models / "tiny-F32.gguf")
    p = QualityPage(paths.models, runner)
    qtbot.addWidget(p)
    p.show()
    p.refresh()
    qtbot.waitUntil(lambda: p.loaded, timeout=WAIT_MS)
    return p


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """Your own text: the first 2,500 characters of a shipped one (a few 128-token windows on the tiny model)."""
    path = tmp_path / "my-domain.txt"
    path.write_text(quality.eval_texts()["en-cc0-1.0"].read_text(encoding="utf-8")[:2500], encoding="utf-8")
    return path


def select(page: QualityPage, name: str) -> None:
    page.file_list.setCurrentRow([f.path.name for f in page.files].index(name))


def make_quant(qtbot: QtBot, page: QualityPage, source: str, type_name: str) -> QuantizeDialog:
    select(page, source)
    assert page.quantize_button.isEnabled()
    page.quantize_button.click()
    dialog = page._quantize_dialog
    assert isinstance(dialog, QuantizeDialog)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.type_combo.isEnabled, timeout=WAIT_MS)
    dialog.set_type(type_name)
    return dialog


def test_make_two_quants_then_compare_them(qtbot: QtBot, page: QualityPage, paths: Paths, text_file: Path) -> None:
    for type_name in ("Q8_0", "Q4_0"):
        dialog = make_quant(qtbot, page, "tiny-F32.gguf", type_name)
        assert dialog.output_path() == paths.models / "quantized" / f"tiny-{type_name}.gguf"
        assert "free there" in dialog.space_label.text() and dialog.start_button.isEnabled()
        with qtbot.waitSignal(dialog.quantized, timeout=WAIT_MS), qtbot.waitSignal(page.modelsChanged):
            dialog.start_button.click()
        assert dialog.made is not None and "in your library, its source recorded" in dialog.message.text()
        notes = library.read_sidecar(dialog.made.path)
        assert notes["source"] == f"quantized by LlamaDesk from tiny-F32.gguf (F32) to {type_name}"
        dialog.close()
        qtbot.waitUntil(lambda t=type_name: f"tiny-{t}.gguf" in {f.path.name for f in page.files}, timeout=WAIT_MS)
    assert {f.type for f in page.files} == {"F32", "Q8_0", "Q4_0"}
    select(page, "tiny-Q4_0.gguf")
    assert not page.quantize_button.isEnabled() and "quantize from an F32" in page.quantize_button.toolTip()

    page.set_checked([f.path for f in page.files])
    page.set_text_file(text_file)
    page.ctx_spin.setValue(N_CTX)
    assert page.compare_button.isEnabled()
    seen: list[int] = []
    page.progress.valueChanged.connect(seen.append)
    with qtbot.waitSignal(page.comparisonFinished, timeout=WAIT_MS) as finished:
        page.compare_button.click()
        assert page.stop_button.isVisible() and not page.compare_button.isEnabled()
    comparison = finished.args[0]
    assert seen and not page.stop_button.isVisible() and page.compare_button.isEnabled()

    table = page.table
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == list(COLUMNS)
    rows = {table.item(r, 1).text(): [table.item(r, c).text() for c in range(len(COLUMNS))] for r in range(3)}
    assert list(rows) == ["F32", "Q8_0", "Q4_0"]  # the reference first
    assert rows["F32"][0] == "tiny-F32.gguf  (reference)" and rows["F32"][5] == "0.0000" and rows["F32"][6] == "100.0"
    assert 0 < float(rows["Q8_0"][5]) < float(rows["Q4_0"][5])  # the KL ordering, as shown
    assert all(float(rows[t][4]) > 1 and float(rows[t][7]) > 0 and float(rows[t][8]) > 0 for t in rows)
    assert page.recommendation.text() == comparison.recommendation
    assert comparison.recommendation.endswith("its speed here.") or "comes closest" in comparison.recommendation
    assert [p.label for p in page.chart.points] == ["F32", "Q8_0", "Q4_0"]
    assert "Q4_0" in page.chart.accessibleDescription()
    assert not page.chart.grab().isNull()  # paints without error

    # kept per file hash: the Catalog and Hub pages show it next to the same file
    q4 = next(f for f in comparison.files if f.type == "Q4_0")
    note = measured_note(q4.sha256)
    assert note.startswith("Measured here: ") and "of F32's top tokens" in note and f"{q4.kld:.4f}" in note
    assert measured_note("0" * 64) == ""


def test_stop_mid_comparison_stores_nothing(qtbot: QtBot, page: QualityPage, paths: Paths, text_file: Path) -> None:
    f32 = paths.models / "tiny-F32.gguf"
    other = write_tiny_llama(paths.models / "tiny-copy-F32.gguf")  # the same model again: compares fine
    page.refresh()
    qtbot.waitUntil(lambda: len(page.files) == 2, timeout=WAIT_MS)
    page.set_checked([f32, other])
    page.set_text_file(text_file)
    page.ctx_spin.setValue(N_CTX)

    def stop_when_scoring(value: int) -> None:
        if value > 0 and page.stop_button.isEnabled():
            page.stop_button.click()

    page.progress.valueChanged.connect(stop_when_scoring)
    page.compare_button.click()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    assert page.message.text() == "The comparison was stopped; nothing was stored."
    assert not page.message.is_error and page.table.rowCount() == 0 and page.compare_button.isEnabled()
    from llamadesk.core.fileinfo import sha256_file

    assert not quality.stored_results(sha256_file(f32))


def test_files_of_other_models_and_short_texts_are_one_sentence(
    qtbot: QtBot, page: QualityPage, paths: Paths, tmp_path: Path, text_file: Path
) -> None:
    wider = write_tiny_llama(tmp_path / "wider.gguf", n_embd=128, n_head=4)
    page.add_file(wider)
    qtbot.waitUntil(lambda: len(page.checked_paths()) == 1, timeout=WAIT_MS)
    assert not page.compare_button.isEnabled()  # one file ticked: nothing to compare
    page.set_checked([f.path for f in page.files])
    page.set_text_file(text_file)
    page.ctx_spin.setValue(N_CTX)
    page.compare_button.click()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    assert page.message.is_error
    assert "are not the same model: their tensors have different shapes" in page.message.text()
    assert "Traceback" not in page.message.text()

    short = tmp_path / "short.txt"
    short.write_text("hello world " * 10, encoding="utf-8")
    f32 = paths.models / "tiny-F32.gguf"
    q8 = write_tiny_llama(paths.models / "tiny-again-F32.gguf")
    page.refresh()
    qtbot.waitUntil(lambda: q8 in {f.path for f in page.files}, timeout=WAIT_MS)
    page.set_checked([f32, q8])
    page.set_text_file(short)
    page.ctx_spin.setValue(512)
    page.compare_button.click()
    qtbot.waitUntil(lambda: not page.is_running(), timeout=WAIT_MS)
    assert page.message.is_error and "fewer than one context of 512; give a longer text" in page.message.text()


def test_quantize_dialog_refuses_a_bad_output_and_cancel_removes_the_partial_file(
    qtbot: QtBot, page: QualityPage, paths: Paths, tmp_path: Path
) -> None:
    write_tiny_llama(paths.models / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=4)
    page.refresh()
    qtbot.waitUntil(lambda: len(page.files) == 2, timeout=WAIT_MS)
    dialog = make_quant(qtbot, page, "medium-F32.gguf", "IQ3_S")
    assert dialog.type_combo.findData("F32") == -1  # not smaller: not offered
    dialog.set_type("IQ2_XS")
    assert "IQ2_XS needs an importance matrix; tick it" in dialog.message.text() and not dialog.start_button.isEnabled()
    assert dialog.imatrix_check.isEnabled() and dialog.text_path == page.text_path()
    dialog.imatrix_check.setChecked(True)
    assert not dialog.message.is_error and dialog.start_button.isEnabled()
    dialog.imatrix_check.setChecked(False)
    dialog.set_type("IQ3_S")

    taken = tmp_path / "taken.gguf"
    taken.write_bytes(b"x")
    dialog.set_output(taken)
    assert dialog.message.is_error and "taken.gguf already exists" in dialog.message.text()
    assert not dialog.start_button.isEnabled()
    dialog.set_output(tmp_path / "notes.txt")
    assert "must be a file name ending in .gguf" in dialog.message.text() and not dialog.start_button.isEnabled()

    target = tmp_path / "out" / "medium-IQ3_S.gguf"
    dialog.set_output(target)
    assert not dialog.message.is_error and dialog.start_button.isEnabled()
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    seen_partial: list[int] = []
    real_progress = dialog._progress

    def cancel_once_written(p: QuantizeProgress) -> None:  # Cancel once the partial file holds bytes
        real_progress(p)
        if p.stage == "quantizing" and p.bytes_written > 0 and dialog.cancel_button.isEnabled():
            seen_partial.append(p.bytes_written)
            dialog.cancel_button.click()

    dialog._progress = cancel_once_written  # type: ignore[method-assign]
    dialog.start_button.click()
    assert dialog.cancel_button.isVisible() and not dialog.type_combo.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=WAIT_MS)
    if seen_partial:  # stopped while writing
        assert "was stopped; the partial file was removed" in dialog.message.text()
        assert not dialog.message.is_error
    assert not partial.exists()
    assert not multiprocessing.active_children()
    assert seen_partial, "the quantizer wrote no byte before it finished"
    assert not target.exists() and dialog.start_button.isEnabled()
    dialog.close()


def test_the_library_list_marks_checked_files_and_keeps_them_across_refresh(
    qtbot: QtBot, page: QualityPage, paths: Paths
) -> None:
    second = write_tiny_llama(paths.models / "tiny-b-F32.gguf")
    page.refresh()
    qtbot.waitUntil(lambda: len(page.files) == 2, timeout=WAIT_MS)
    page.file_list.item([f.path for f in page.files].index(second)).setCheckState(Qt.CheckState.Checked)
    assert page.checked_paths() == [second] and not page.compare_button.isEnabled()
    page.refresh()
    qtbot.waitUntil(lambda: page.runner.active_count() == 0, timeout=WAIT_MS)
    assert page.checked_paths() == [second]


def test_the_hub_marks_the_files_measured_here_by_their_sha256(
    qtbot: QtBot, paths: Paths, fake_hub: FakeHub, tmp_path: Path, text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llamadesk.core.quantize import quantize
    from llamadesk.ui.models import ModelManagerDialog

    f32 = write_tiny_llama(tmp_path / "tiny-F32.gguf")
    q8 = quantize(f32, "Q8_0", tmp_path / "tiny-Q8_0.gguf").path
    q4 = quantize(f32, "Q4_0", tmp_path / "tiny-Q4_0.gguf").path
    measured = quality.compare([f32, q8], text_file.read_text(encoding="utf-8"), n_ctx=N_CTX)  # kept by SHA-256
    repo = "tester/Tiny-GGUF"
    fake_hub.add_repo(repo)
    for path in (q8, q4):
        fake_hub.add_file(repo, path.name, path.read_bytes())

    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # "Found in other apps" never reads the real home
    dialog = ModelManagerDialog(paths, endpoint=fake_hub.url)
    qtbot.addWidget(dialog)
    try:
        assert dialog.tabs.tabText(dialog.tabs.indexOf(dialog.quality_page)) == "Compare"
        dialog.show_tab("compare")
        page = dialog.hub_page
        page.open_repo(repo)
        qtbot.waitUntil(lambda: page.files_table.rowCount() == 2, timeout=WAIT_MS)
        cells = {page.groups[r].quantization: page.files_table.item(r, 2) for r in range(2)}
        q8_result = next(f for f in measured.files if f.type == "Q8_0")
        assert cells["Q8_0"].text().endswith("  · measured")
        assert f"Measured here: {q8_result.top1:.1%} of F32's top tokens" in cells["Q8_0"].toolTip()
        assert "measured" not in cells["Q4_0"].text()  # never compared: nothing shown
    finally:
        assert dialog.shutdown()
        dialog.close()


def test_the_catalog_marks_a_downloaded_quant_once_it_was_measured(
    qtbot: QtBot, paths: Paths, fake_hub: FakeHub, tmp_path: Path, text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped catalog records no hashes: the one its finished download verified is used."""
    from llamadesk.ui.models import ModelManagerDialog

    repo, name = "bartowski/SmolLM2-135M-Instruct-GGUF", "SmolLM2-135M-Instruct-Q4_K_M.gguf"
    fake_hub.add_repo(repo)
    fake_hub.add_file(repo, name, write_tiny_llama(tmp_path / "tiny-F32.gguf").read_bytes())  # F32 under that name
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    dialog = ModelManagerDialog(paths, endpoint=fake_hub.url)
    qtbot.addWidget(dialog)
    try:
        page = dialog.catalog_page
        page.select("smollm2", "135m", "Q4_K_M")
        with qtbot.waitSignal(dialog.modelsChanged, timeout=WAIT_MS):
            page.download_button.click()
        downloaded = paths.models / repo / name
        row = [q.name for q, _ in page._fits].index("Q4_K_M")
        assert "measured" not in page.table.item(row, 0).text()

        compare_page = dialog.quality_page
        qtbot.waitUntil(lambda: downloaded in {f.path for f in compare_page.files}, timeout=WAIT_MS)
        copy = write_tiny_llama(paths.models / "tiny-again-F32.gguf")  # the same generated model again
        compare_page.refresh()
        qtbot.waitUntil(lambda: copy in {f.path for f in compare_page.files}, timeout=WAIT_MS)
        compare_page.set_checked([downloaded, copy])
        compare_page.set_text_file(text_file)
        compare_page.ctx_spin.setValue(N_CTX)
        with qtbot.waitSignal(compare_page.comparisonFinished, timeout=WAIT_MS):
            compare_page.compare_button.click()

        page.select("smollm2", "360m")
        page.select("smollm2", "135m", "Q4_K_M")  # the table is filled again
        item = page.table.item(row, 0)
        assert item.text().endswith("  · measured") and "Measured here" in item.toolTip()
    finally:
        assert dialog.shutdown()
        dialog.close()


def test_make_an_iq2_quant_with_an_importance_matrix(
    qtbot: QtBot, page: QualityPage, paths: Paths, text_file: Path
) -> None:
    write_tiny_llama(paths.models / "medium-F32.gguf", n_embd=256, n_head=8, n_layers=2)
    page.refresh()
    qtbot.waitUntil(lambda: len(page.files) == 2, timeout=WAIT_MS)
    page.set_text_file(text_file)
    dialog = make_quant(qtbot, page, "medium-F32.gguf", "IQ2_XS")
    dialog.imatrix_check.setChecked(True)
    formats: list[str] = []
    dialog.progress.valueChanged.connect(lambda _v: formats.append(dialog.progress.format()))
    with qtbot.waitSignal(dialog.quantized, timeout=WAIT_MS):
        dialog.start_button.click()
    assert dialog.made is not None and dialog.made.type == "IQ2_XS"
    assert any(f.startswith("importance matrix: window") for f in formats)
    notes = library.read_sidecar(dialog.made.path)
    assert notes["imatrix"]["chunks"] >= 1 and notes["source"].endswith("to IQ2_XS")
    dialog.close()
