"""One window per data folder: a second start hands over to the running LlamaDesk, which comes to the front.

Qt's QLocalServer/QLocalSocket (a Unix socket, a named pipe on Windows) carry one line, "activate", and the
answer "ok". The server name is derived from the data folder, so two users, or tests with their own
LLAMADESK_HOME, never meet. A socket left behind by a killed process refuses connections; the next start
removes it and listens again. The history database is safe with two writers in any case (WAL, busy timeout,
retried BEGIN IMMEDIATE); this only spares the user a second window that does not see the first one's chats.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ACTIVATE = b"activate\n"
OK = b"ok\n"
HAND_OVER_TIMEOUT_MS = 2000


def server_name(data_dir: Path) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = ""
    digest = hashlib.sha256(f"{user}\0{data_dir.resolve()}".encode()).hexdigest()[:20]
    return f"llamadesk-{digest}"


def hand_over(name: str, timeout_ms: int = HAND_OVER_TIMEOUT_MS) -> bool:
    """True when a running LlamaDesk took the request (and shows its window); False when none answers."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):  # no server, or a stale socket: fails at once
        return False
    try:
        socket.write(ACTIVATE)
        if not socket.waitForBytesWritten(timeout_ms):
            return False
        answer = b""
        while not answer.endswith(b"\n") and socket.waitForReadyRead(timeout_ms):
            answer += bytes(socket.readAll().data())
        return answer == OK
    finally:
        socket.abort()


class InstanceServer(QObject):
    """Listens for later starts; `activateRequested` asks the window to come to the front."""

    activateRequested = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_connection)

    def listen(self) -> bool:
        if self._server.listen(self.name):
            return True
        # A socket file left by a process that was killed: nobody answers on it (hand_over said so).
        QLocalServer.removeServer(self.name)
        if self._server.listen(self.name):
            return True
        log.warning("Could not listen for other LlamaDesk starts: %s", self._server.errorString())
        return False

    def close(self) -> None:
        self._server.close()

    def _on_connection(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.setParent(self)
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            if socket.bytesAvailable() > len(ACTIVATE):  # not ours: drop it
                socket.abort()
            return
        line = bytes(socket.readLine().data())
        if line == ACTIVATE:
            socket.write(OK)
            socket.flush()
            self.activateRequested.emit()
        socket.disconnectFromServer()
