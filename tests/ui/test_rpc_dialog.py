"""File → RPC hosts…: hosts added and removed through the dialog against two real rpc-server processes on 127.0.0.1,
their memory asked in the background, a dead port reported in one sentence, the model picker's RPC entries following
the list, bad input refused, and the layer split of a model loaded over RPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from remote_server import free_port

from llamadesk.core import rpc
from llamadesk.ui.main_window import MainWindow
from llamadesk.ui.model_choice import human_size
from llamadesk.ui.rpc_dialog import ANSWERS, IN_USE, RpcHostsDialog
from tests.core.test_rpc import RpcServer, rpc_server_bin, start_server
from tests.ui.conftest import LOAD_TIMEOUT_MS

__all__ = ["rpc_server_bin"]  # the session fixture that builds rpc-server once

ASK_TIMEOUT_MS = 15_000


@pytest.fixture
def servers(rpc_server_bin: Path) -> Iterator[tuple[RpcServer, RpcServer]]:
    a, b = start_server(rpc_server_bin), start_server(rpc_server_bin)
    yield a, b
    for server in (a, b):
        if server.process.poll() is None:
            server.kill()


def open_dialog(window: MainWindow, qtbot: QtBot) -> RpcHostsDialog:
    action = window.rpc_hosts.action
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "File")
    titles = [a.text() for a in file_menu.actions()]
    assert titles.index("RPC hosts…") == titles.index("Endpoints…") + 1
    action.trigger()
    dialog = window.rpc_hosts.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def type_and_add(qtbot: QtBot, dialog: RpcHostsDialog, text: str) -> None:
    dialog.add_field.setFocus()
    dialog.add_field.clear()
    qtbot.keyClicks(dialog.add_field, text)
    qtbot.keyClick(dialog.add_field, Qt.Key.Key_Return)


def rpc_entries(window: MainWindow) -> list[str]:
    combo = window.picker.combo
    return [combo.itemText(i) for i in range(combo.count()) if "RPC cluster" in combo.itemText(i)]


def select_host(dialog: RpcHostsDialog, host: str) -> None:
    dialog.table.clearSelection()
    dialog.table.selectRow(dialog.row_of(host))


def test_hosts_added_asked_and_removed(window: MainWindow, servers: tuple[RpcServer, RpcServer], qtbot: QtBot) -> None:
    a, b = servers
    dialog = open_dialog(window, qtbot)
    assert dialog.hosts() == () and rpc_entries(window) == []
    assert not dialog.remove_button.isEnabled() and not dialog.refresh_button.isEnabled()

    type_and_add(qtbot, dialog, f"{a.host}, {b.host}")
    assert dialog.hosts() == (a.host, b.host) == rpc.load_hosts()
    assert dialog.add_field.text() == "" and not dialog.message_is_error
    assert dialog.message.text().startswith(f"Added {a.host}, {b.host}; asking")
    qtbot.waitUntil(lambda: all(dialog.status_text(h) == ANSWERS for h in (a.host, b.host)), timeout=ASK_TIMEOUT_MS)
    assert dialog.message.text() == ""  # the answers are in the table
    _free, total = rpc.host_memory(a.host)  # free memory moves; the total does not
    shown_free, shown_total = dialog.memory_text(a.host).split(" / ")
    assert total > 0 and shown_total == human_size(total) and shown_free.endswith("B")
    assert rpc_entries(window) == [e for e in rpc_entries(window) if e.endswith("RPC cluster (2 hosts)")] != []

    dead = f"127.0.0.1:{free_port()}"
    type_and_add(qtbot, dialog, dead)
    qtbot.waitUntil(lambda: "does not answer" in dialog.status_text(dead), timeout=ASK_TIMEOUT_MS)
    assert dialog.status_text(dead).endswith(".") and dialog.memory_text(dead) == "—"
    assert rpc_entries(window)[0].endswith("RPC cluster (3 hosts)")

    select_host(dialog, dead)
    assert dialog.remove_button.isEnabled()
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert dialog.hosts() == (a.host, b.host) == rpc.load_hosts()
    assert dialog.status_text(a.host) == ANSWERS  # the others keep their answer
    assert rpc_entries(window)[0].endswith("RPC cluster (2 hosts)")

    b.kill()  # Refresh asks again: the host that went away says so
    qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "does not answer" in dialog.status_text(b.host), timeout=ASK_TIMEOUT_MS)
    assert dialog.status_text(a.host) == ANSWERS

    for host in (a.host, b.host):  # Delete in the table removes the selected host
        select_host(dialog, host)
        dialog.table.setFocus()
        qtbot.keyClick(dialog.table, Qt.Key.Key_Delete)
    assert dialog.hosts() == () == rpc.load_hosts() and rpc_entries(window) == []
    dialog.close()


def test_bad_input_is_refused_with_a_sentence(window: MainWindow, qtbot: QtBot) -> None:
    dialog = open_dialog(window, qtbot)
    for bad, phrase in [("10.0.0.2:99999", "1 to 65535"), ("[::1]:50052", "IPv6"), ("bad_host!", "not a host name"),
                        ("   ", "Type a host to add")]:  # fmt: skip
        type_and_add(qtbot, dialog, bad)
        assert dialog.message_is_error and phrase in dialog.message.text(), dialog.message.text()
        assert dialog.hosts() == () == rpc.load_hosts()
    assert dialog.add_field.text() == "   "  # the typed text stays to be corrected
    too_many = ", ".join(f"10.0.0.{i}" for i in range(1, 18))
    type_and_add(qtbot, dialog, too_many)
    assert "at most 16" in dialog.message.text() and rpc.load_hosts() == ()
    assert rpc_entries(window) == []
    dialog.close()


def test_every_control_has_a_name_a_tooltip_and_a_tab_stop(window: MainWindow, qtbot: QtBot) -> None:
    dead = f"127.0.0.1:{free_port()}"
    rpc.save_hosts([dead])
    dialog = open_dialog(window, qtbot)
    qtbot.waitUntil(lambda: "does not answer" in dialog.status_text(dead), timeout=ASK_TIMEOUT_MS)
    select_host(dialog, dead)
    controls = [dialog.table, dialog.add_field, dialog.add_button, dialog.remove_button, dialog.refresh_button]
    for control in controls:
        assert control.accessibleName() and control.toolTip(), control.objectName()
        assert control.focusPolicy() & Qt.FocusPolicy.TabFocus, control.objectName()
    assert dialog.help.accessibleName() and "rpc-server" in dialog.help.text()
    dialog.activateWindow()
    dialog.add_field.setFocus()
    qtbot.waitUntil(lambda: dialog.focusWidget() is dialog.add_field)
    reached = []
    for _ in range(7):
        reached.append(dialog.focusWidget())
        qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
    assert reached == [dialog.add_field, dialog.add_button, dialog.remove_button, dialog.refresh_button, dialog.table,
                       dialog.close_button, dialog.add_field]  # fmt: skip
    dialog.close()


def test_the_split_of_a_model_loaded_over_rpc_is_shown(
    window: MainWindow, servers: tuple[RpcServer, RpcServer], qtbot: QtBot
) -> None:
    a, b = servers
    dialog = open_dialog(window, qtbot)
    assert "No model is loaded on the RPC hosts" in dialog.split_label.text()
    type_and_add(qtbot, dialog, f"{a.host} {b.host}")
    qtbot.waitUntil(lambda: all(dialog.status_text(h) == ANSWERS for h in (a.host, b.host)), timeout=ASK_TIMEOUT_MS)
    combo = window.picker.combo
    row = next(i for i in range(combo.count()) if "RPC cluster (2 hosts)" in combo.itemText(i))
    combo.setCurrentIndex(row)
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_info is not None and window.model_info.rpc_servers == (a.host, b.host)
                    and not window.is_loading, timeout=LOAD_TIMEOUT_MS)  # fmt: skip
    split = rpc.split_text(window.model_info.layer_split)
    assert a.host in split and b.host in split and "layers" in split
    assert f"tiny-chatml.gguf is split over the hosts: {split}." in dialog.split_label.text()
    # rpc-server serves one client at a time: the loaded model's hosts are not asked, their last memory stays
    assert [dialog.status_text(h) for h in (a.host, b.host)] == [IN_USE, IN_USE]
    assert " / " in dialog.memory_text(a.host)
    qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    assert dialog.asking == set() and dialog.status_text(a.host) == IN_USE

    row = next(i for i in range(combo.count()) if combo.itemText(i).startswith("tiny-chatml") and "RPC" not in
               combo.itemText(i))  # fmt: skip
    combo.setCurrentIndex(row)
    qtbot.mouseClick(window.picker.load_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_info is not None and not window.model_info.rpc_servers
                    and not window.is_loading, timeout=LOAD_TIMEOUT_MS)  # fmt: skip
    assert "No model is loaded on the RPC hosts" in dialog.split_label.text()
    qtbot.waitUntil(lambda: all(dialog.status_text(h) == ANSWERS for h in (a.host, b.host)), timeout=ASK_TIMEOUT_MS)
    dialog.close()
