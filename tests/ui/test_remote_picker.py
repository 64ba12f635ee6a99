"""The model picker switches one conversation between the local model and an endpoint's model (llama-cpp-python's
server on loopback), the Endpoints dialog adds and tests servers, and a failed switch keeps what was loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot
from remote_server import LlamaServer, free_port

from llamadesk.core import rpc
from llamadesk.core.endpoints import EndpointStore, RemoteOptions
from llamadesk.core.history import History
from llamadesk.core.sampling import RANGES
from llamadesk.ui.endpoints_dialog import EndpointsDialog
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.model_picker import Choice
from llamadesk.ui.workers import TaskRunner

from .conftest import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS

pytestmark = pytest.mark.usefixtures("no_proxy")


def send(qtbot: QtBot, window: MainWindow, text: str) -> None:
    edit = window.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)


def row_of(window: MainWindow, predicate: Any) -> int:
    combo = window.picker.combo
    rows = [i for i in range(combo.count()) if predicate(combo.itemText(i))]
    assert rows, [combo.itemText(i) for i in range(combo.count())]
    return rows[0]


def choose(qtbot: QtBot, window: MainWindow, row: int) -> None:
    window.picker.combo.setCurrentIndex(row)
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)


def reply_receipts(window: MainWindow, history: History) -> list[dict[str, Any]]:
    assert window.current_cid is not None
    messages = history.messages(window.current_cid)
    return [dict(m.receipt or {}) for m in messages if m.role == "assistant"]


def test_one_conversation_switches_between_local_and_remote(
    window: MainWindow, llama_server: LlamaServer, qtbot: QtBot, dialogs: Any, history: History
) -> None:
    window.panel.rows["max_tokens"].spin.setValue(8)
    assert window.model_info is not None and not window.model_info.endpoint  # the tiny model, in-process

    dialog = window.endpoints.open()
    dialog.name_field.setText("box")
    dialog.url_field.setText(llama_server.url + "/v1")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)  # loopback: no plain-http warning to accept
    assert dialogs.questions == [] and not dialog.message_is_error
    assert [e.url for e in EndpointStore().endpoints()] == [llama_server.url]
    row_of(window, lambda text: text == "box · connect")  # listed before the server was asked
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "answers" in dialog.message.text(), timeout=LOAD_TIMEOUT_MS)
    assert "llama-cpp-python" in dialog.message.text() and "1 model" in dialog.message.text()
    dialog.close()

    remote_row = row_of(window, lambda text: text == f"{llama_server.model_id} · box")
    choose(qtbot, window, remote_row)
    qtbot.waitUntil(lambda: window.model_info is not None and bool(window.model_info.endpoint), timeout=LOAD_TIMEOUT_MS)
    assert window.model_info.file_name == llama_server.model_id
    assert "llama-cpp-python" in window.picker.info_label.full_text()
    assert "it ignores Typical-p, Repeat window" in window.picker.info_label.toolTip()
    send(qtbot, window, "hello remote")
    qtbot.waitUntil(lambda: not window.is_generating and len(reply_receipts(window, history)) == 1,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip

    assert window.loaded_model is not None
    window.load_model(window.loaded_model)  # a reload (after changing advanced settings) keeps the endpoint
    assert window.is_loading
    qtbot.waitUntil(lambda: not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    assert window.model_info is not None and window.model_info.endpoint == llama_server.url
    window.composer.edit.setPlainText("typed while a remote model is loaded")
    assert window.prefill.prompt() is None  # a remote server's cache is not ours to fill
    window.composer.edit.clear()

    local_row = row_of(window, lambda text: text.startswith("tiny-chatml"))
    choose(qtbot, window, local_row)
    qtbot.waitUntil(lambda: window.model_info is not None and not window.model_info.endpoint, timeout=LOAD_TIMEOUT_MS)
    send(qtbot, window, "hello local")
    qtbot.waitUntil(lambda: not window.is_generating and len(reply_receipts(window, history)) == 2,
                    timeout=REPLY_TIMEOUT_MS)  # fmt: skip

    remote, local = reply_receipts(window, history)
    assert remote["endpoint"] == llama_server.url and remote["model"] == llama_server.model_id
    assert remote["finish_reason"] == "length" and remote["generated_tokens"] >= 1
    assert "endpoint" not in local and local["model_file"] == "tiny-chatml.gguf"
    assert remote["sampling"]["seed"] is None and isinstance(remote["seed"], int)  # random, and the one sent

    # The remote reply's receipt names the endpoint; with the local model loaded it cannot be reproduced.
    remote_id = next(m.id for m in history.messages(window.current_cid) if m.receipt == remote)
    receipt = window.chat.show_receipt(remote_id)
    assert receipt is not None
    assert receipt.value("Endpoint") == f"box ({llama_server.url})" and receipt.value("Model") == llama_server.model_id
    assert receipt.value("Not sent (the server ignores them)") == ", ".join(
        RANGES[name].label for name in remote["ignored_sampling"]
    )  # fmt: skip
    assert not receipt.reproduce_button.isEnabled()
    assert receipt.note.text() == (f"This reply came from {llama_server.model_id} on box; "
                                   "choose it in the model picker to reproduce it.")  # fmt: skip
    receipt.close()
    assert dialogs.warnings == []


def test_a_failed_switch_keeps_the_loaded_model(window: MainWindow, qtbot: QtBot, dialogs: Any) -> None:
    EndpointStore().add("gone", f"http://127.0.0.1:{free_port()}", confirm_http=True)
    window.picker.refresh()
    choose(qtbot, window, row_of(window, lambda text: text == "gone · connect"))
    qtbot.waitUntil(lambda: bool(dialogs.warnings) and not window.is_loading, timeout=LOAD_TIMEOUT_MS)
    title, sentence = dialogs.warnings[0]
    assert title == "Model not loaded" and "gone (http://127.0.0.1:" in sentence and "does not answer" in sentence
    assert window.model_info is not None and window.model_info.file_name == "tiny-chatml.gguf"
    assert window.picker.combo.currentText().startswith("tiny-chatml")  # the list shows what is loaded
    assert window.composer.edit.isEnabled()


def test_rpc_hosts_add_cluster_entries(window: MainWindow, qtbot: QtBot) -> None:
    rpc.save_hosts(["127.0.0.1:50052", "127.0.0.1:50053"])
    qtbot.mouseClick(window.picker.refresh_button, Qt.MouseButton.LeftButton)
    row = row_of(window, lambda text: "RPC cluster (2 hosts)" in text)
    window.picker.combo.setCurrentIndex(row)
    choice = window.picker.current_choice()
    assert isinstance(choice, Choice) and choice.kind == "rpc"
    options = window.picker.options_for(choice)
    assert options.rpc_servers == ("127.0.0.1:50052", "127.0.0.1:50053") and options.n_gpu_layers == -1
    assert isinstance(window.picker.options_for(Choice("remote", choice.model, EndpointStore().add(
        "x", "https://example.com", confirm_http=False))), RemoteOptions)  # fmt: skip
    assert Path(options.path).name == "tiny-chatml.gguf"


def test_the_dialog_warns_of_plain_http_on_a_network_but_not_on_this_computer(qtbot: QtBot, dialogs: Any) -> None:
    runner = TaskRunner()
    dialog = EndpointsDialog(EndpointStore(), runner)
    qtbot.addWidget(dialog)
    for name, url in (("ollama", "http://localhost:11434"), ("lmstudio", "http://127.0.0.1:1234"),
                      ("server", "http://[::1]:8080")):  # fmt: skip
        dialog.new_endpoint()
        dialog.name_field.setText(name)
        dialog.url_field.setText(url)
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
        assert dialogs.questions == [] and dialog.message.text() == f"Saved {name}.", dialog.message.text()
    assert [(e.url, e.allow_http) for e in EndpointStore().endpoints()] == [
        ("http://localhost:11434", False), ("http://127.0.0.1:1234", False), ("http://[::1]:8080", False)]  # fmt: skip

    dialog.new_endpoint()
    dialog.name_field.setText("lan")
    dialog.url_field.setText("http://192.168.1.20:11434")
    dialogs.answer = QMessageBox.StandardButton.Cancel  # the plain-http warning, refused: nothing saved
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert len(dialogs.questions) == 1 and "anyone on your network can read" in dialogs.questions[0]
    assert dialog.message_is_error and len(EndpointStore().endpoints()) == 3
    dialogs.answer = QMessageBox.StandardButton.Yes
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert EndpointStore().get("lan").allow_http and len(dialogs.questions) == 2
    dialog.close()
    runner.shutdown()


def test_plain_http_to_a_public_address_is_refused_in_the_dialog(
    window: MainWindow, qtbot: QtBot, dialogs: Any
) -> None:
    dialog = window.endpoints.open()
    dialog.name_field.setText("public")
    dialog.url_field.setText("http://8.8.8.8:8080")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.message_is_error and "public; use https" in dialog.message.text()
    assert dialogs.questions == [] and EndpointStore().endpoints() == []
    dialog.close()


def test_the_picker_switches_between_local_rpc_cluster_and_remote(
    window: MainWindow, llama_server: LlamaServer, rpc_host: str, qtbot: QtBot, dialogs: Any, history: History
) -> None:
    """The issue's "done when": one conversation, three engines, chosen from the model picker."""
    window.panel.rows["max_tokens"].spin.setValue(6)
    rpc.save_hosts([rpc_host])
    store = EndpointStore()
    store.add("box", llama_server.url, confirm_http=True)
    store.remember_models("box", [llama_server.model_id])
    window.picker.refresh()
    steps = [
        (lambda text: "RPC cluster (1 host)" in text, lambda info: info.rpc_servers == (rpc_host,)),
        (lambda text: text == f"{llama_server.model_id} · box", lambda info: info.endpoint == llama_server.url),
        (lambda text: text.startswith("tiny-chatml"), lambda info: not info.endpoint and not info.rpc_servers),
    ]
    for n, (entry, loaded) in enumerate(steps, start=1):
        choose(qtbot, window, row_of(window, entry))
        qtbot.waitUntil(lambda loaded=loaded: window.model_info is not None and not window.is_loading
                        and loaded(window.model_info), timeout=LOAD_TIMEOUT_MS)  # fmt: skip
        send(qtbot, window, f"message {n}")
        qtbot.waitUntil(lambda n=n: not window.is_generating and len(reply_receipts(window, history)) == n,
                        timeout=REPLY_TIMEOUT_MS)  # fmt: skip
    by_rpc, by_remote, by_local = reply_receipts(window, history)
    assert by_rpc["rpc_servers"] == [rpc_host] and by_rpc["model_file"] == "tiny-chatml.gguf"
    assert {r["finish_reason"] for r in (by_rpc, by_remote, by_local)} <= {"length", "stop"}
    assert by_remote["endpoint"] == llama_server.url and "rpc_servers" not in by_remote
    assert "endpoint" not in by_local and "rpc_servers" not in by_local
    assert dialogs.warnings == []
