"""llama.cpp RPC: the rpc-server hosts a model can be split over, their memory, and registering them with ggml.

The API (for the CLI, the model picker and the engine); every error is an RpcError whose text is one sentence:

    parse_hosts(text) -> tuple[str, ...]        "10.0.0.2, 10.0.0.3:6000" → ("10.0.0.2:50052", "10.0.0.3:6000")
    load_hosts() -> tuple[str, ...]             the user's list, kept in <data>/rpc_hosts.json
    save_hosts(hosts) / add_host(host) / remove_host(host)   (the last two return the new list)
    host_memory(host, timeout=3.0) -> (free, total)          bytes, summed over the host's devices
    check_hosts(hosts) -> list[HostStatus]      memory or the error sentence per host; never raises (for lists)
    split_text(layer_split) -> str              "10.0.0.2:50052 4 layers · 10.0.0.3:50052 5 layers"

A model is split over hosts by loading it with LoadOptions(rpc_servers=hosts, n_gpu_layers=-1) in the engine
that core/engines/rpc_child.py runs in a child process: llama.cpp's RPC client abort()s the whole process when a host
does not answer or goes away mid-reply, so only that child dies, and the app reports which host went away.
ModelInfo.rpc_servers and ModelInfo.layer_split (layers per host, as llama.cpp placed them) describe the load.

Engine side (only in the process that loads the model): register(hosts) adds the hosts to ggml's backend registry
(as llama.cpp's --rpc does), devices_for(hosts) is the device list a load passes in llama_model_params.devices.

host_memory() speaks the three messages of the RPC protocol it needs (HELLO, DEVICE_COUNT, GET_DEVICE_MEMORY)
over a Python socket with a timeout, instead of ggml_backend_rpc_get_device_memory(): that one abort()s the
process when the host does not answer. rpc-server serves one client at a time, so a host that accepts the
connection but does not answer within the timeout is reported as busy (another llama.cpp client is using it).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import socket
import struct
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamadesk.core.errors import LlamaDeskError
from llamadesk.paths import get_paths

log = logging.getLogger(__name__)

DEFAULT_PORT = 50052  # rpc-server's default
MAX_HOSTS = 16  # GGML_RPC_MAX_SERVERS
PROTOCOL_MAJOR = 7  # RPC_PROTO_MAJOR_VERSION of the llama.cpp in llama-cpp-python 0.3.36 (ggml-rpc.h)
HOSTS_FILE = "rpc_hosts.json"

# enum rpc_cmd in ggml-rpc.cpp, and the sizes of the messages used here
_CMD_GET_DEVICE_MEMORY, _CMD_HELLO, _CMD_DEVICE_COUNT = 11, 14, 15
_CONN_CAPS_SIZE = 24  # RPC_CONN_CAPS_SIZE: all zero = plain TCP (no RDMA)

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252})$")


class RpcError(LlamaDeskError):
    """An RPC host list entry is invalid, or a host does not answer; the text is one sentence."""


@dataclass(frozen=True)
class HostStatus:
    """One host's answer: its memory, or why there is none."""

    host: str
    free: int = 0
    total: int = 0
    devices: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


# -- the host list ----------------------------------------------------------------------------------------


def normalize_host(entry: str) -> str:
    """ "host" or "host:port" → "host:port" (port 50052 when left out); RpcError with a sentence otherwise."""
    text = entry.strip()
    if not text:
        raise RpcError("An RPC host is empty; write it as HOST:PORT, for example 192.168.1.10:50052.")
    if text.startswith("[") or text.count(":") > 1:
        raise RpcError(
            f"{text} looks like an IPv6 address, which llama.cpp's RPC client cannot use; use IPv4 or a name."
        )
    host, _, port_text = text.partition(":")
    if not _HOST_RE.match(host):
        raise RpcError(f"{text!r} is not a host name or IPv4 address; write it as HOST:PORT, e.g. 192.168.1.10:50052.")
    if not port_text:
        return f"{host}:{DEFAULT_PORT}"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise RpcError(f"The port of {text!r} must be a number from 1 to 65535.")
    return f"{host}:{int(port_text)}"


def parse_hosts(text: str | Iterable[str]) -> tuple[str, ...]:
    """Hosts separated by commas, spaces or new lines (or given as a list), normalized, duplicates dropped."""
    entries = re.split(r"[,\s]+", text) if isinstance(text, str) else list(text)
    hosts: list[str] = []
    for entry in entries:
        if entry.strip():
            host = normalize_host(entry)
            if host not in hosts:
                hosts.append(host)
    if len(hosts) > MAX_HOSTS:
        raise RpcError(f"llama.cpp can use at most {MAX_HOSTS} RPC hosts, not {len(hosts)}.")
    return tuple(hosts)


def hosts_file() -> Path:
    return get_paths().data / HOSTS_FILE


def load_hosts() -> tuple[str, ...]:
    """The user's RPC hosts; an unreadable or hand-broken file counts as an empty list (and is logged)."""
    path = hosts_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return parse_hosts([str(h) for h in data.get("hosts", [])])
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, AttributeError, RpcError) as exc:
        log.warning("Ignoring the RPC host list %s: %s", path, exc)
        return ()


def save_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    """Writes the list atomically (a crash leaves the old file or the new one, never half of one)."""
    clean = parse_hosts(hosts)
    path = hosts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rpc_hosts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "hosts": list(clean)}, f, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise RpcError(f"The RPC host list could not be saved in {path.parent}: {exc.strerror or exc}.") from exc
    return clean


def add_host(host: str) -> tuple[str, ...]:
    new = normalize_host(host)
    hosts = load_hosts()
    return hosts if new in hosts else save_hosts([*hosts, new])


def remove_host(host: str) -> tuple[str, ...]:
    gone = normalize_host(host)
    hosts = load_hosts()
    if gone not in hosts:
        raise RpcError(f"{gone} is not in the RPC host list.")
    return save_hosts([h for h in hosts if h != gone])


# -- asking a host ------------------------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the connection was closed")
        data += chunk
    return data


def _command(sock: socket.socket, cmd: int, payload: bytes, reply_size: int) -> bytes:
    """| cmd (1 byte) | size (8 bytes LE) | payload | → | size (8 bytes LE) | reply |"""
    sock.sendall(bytes([cmd]) + struct.pack("<Q", len(payload)) + payload)
    (size,) = struct.unpack("<Q", _recv_exact(sock, 8))
    if size != reply_size:
        raise ValueError(f"unexpected reply size {size} to command {cmd}")
    return _recv_exact(sock, size)


def query_host(host: str, timeout: float = 3.0) -> HostStatus:
    """Connects, checks the protocol version, reads the memory of every device. Raises RpcError (a sentence)."""
    host = normalize_host(host)
    name, port = host.rsplit(":", 1)
    try:
        sock = socket.create_connection((name, int(port)), timeout=timeout)
    except socket.gaierror as exc:
        raise RpcError(f"The RPC host {host} could not be found ({exc.strerror or exc}); check its name.") from exc
    except OSError as exc:
        reason = "nothing listens on that port" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or exc)
        raise RpcError(
            f"The RPC host {host} does not answer ({reason}); start rpc-server there (see README: RPC)."
        ) from exc
    with sock:
        try:
            hello = _command(sock, _CMD_HELLO, bytes(_CONN_CAPS_SIZE), 4 + _CONN_CAPS_SIZE)
            major, minor, patch = hello[0], hello[1], hello[2]
            if major != PROTOCOL_MAJOR:
                raise RpcError(
                    f"The RPC host {host} runs RPC protocol {major}.{minor}.{patch}, but LlamaDesk speaks "
                    f"{PROTOCOL_MAJOR}.x; build its rpc-server with packaging/build_rpc_server.sh."
                )
            (count,) = struct.unpack("<I", _command(sock, _CMD_DEVICE_COUNT, b"", 4))
            free = total = 0
            for device in range(count):
                f, t = struct.unpack("<QQ", _command(sock, _CMD_GET_DEVICE_MEMORY, struct.pack("<I", device), 16))
                free, total = free + f, total + t
        except TimeoutError as exc:
            raise RpcError(
                f"The RPC host {host} accepted the connection but did not answer within {timeout:g} s; "
                "it may be busy serving another llama.cpp client (rpc-server serves one at a time)."
            ) from exc
        except (OSError, ValueError, struct.error) as exc:
            raise RpcError(
                f"The RPC host {host} broke off the conversation ({exc}); is it an rpc-server of the same llama.cpp?"
            ) from exc
    return HostStatus(host, free=free, total=total, devices=count)


def host_memory(host: str, timeout: float = 3.0) -> tuple[int, int]:
    """(free, total) bytes over the host's devices; RpcError with one sentence when it does not answer."""
    status = query_host(host, timeout)
    return status.free, status.total


def check_hosts(hosts: Iterable[str], timeout: float = 3.0) -> list[HostStatus]:
    """Each host's memory, or its error sentence; never raises."""
    found = []
    for host in hosts:
        try:
            found.append(query_host(host, timeout))
        except RpcError as exc:
            found.append(HostStatus(host, error=str(exc)))
    return found


def split_text(layer_split: dict[str, int]) -> str:
    """ModelInfo.layer_split in words: "10.0.0.2:50052 4 layers · CPU 1 layer"."""
    return " · ".join(f"{where} {n} layer{'s' if n != 1 else ''}" for where, n in layer_split.items())


# -- registering hosts in this process (engine side) --------------------------------------------------------

_registered: dict[str, int] = {}  # host → its ggml_backend_reg_t, registered in this process


def register(hosts: Sequence[str]) -> None:
    """Adds the hosts' devices to ggml's registry (once per host and process), as llama.cpp's --rpc does.
    Each host is asked first (query_host): ggml_backend_rpc_add_server abort()s when a host does not answer."""
    from llamadesk.core import hardware

    lib = hardware.ggml()
    for host in parse_hosts(hosts):
        if host in _registered:
            continue
        query_host(host)
        rpc_reg = lib.ggml_backend_reg_by_name(b"RPC")
        address = lib.ggml_backend_reg_get_proc_address(rpc_reg, b"ggml_backend_rpc_add_server") if rpc_reg else None
        if not address:
            raise RpcError("This llama.cpp build has no RPC backend; build it with -DGGML_RPC=ON.")
        add_server = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(address)
        reg = add_server(host.encode())
        if not reg:
            raise RpcError(f"The RPC host {host} reports no device to put layers on.")
        lib.ggml_backend_register(reg)
        _registered[host] = reg
        log.info("Registered RPC host %s", host)


def devices_for(hosts: Sequence[str]) -> Any:
    """The NULL-terminated device array for llama_model_params.devices: the RPC devices of `hosts` (in that order),
    then the local GPUs (integrated ones only without a discrete one), as llama.cpp's own selection orders them.
    None while no RPC host is registered in this process: llama.cpp's default is then right. With hosts
    registered, a load must name its devices, or it would also use hosts it was not asked to use."""
    if not _registered:
        return None
    from llamadesk.core import hardware

    lib = hardware.ggml()
    rpc: dict[str, list[int]] = {}
    gpus: list[int] = []
    igpus: list[int] = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = hardware.DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev))
        backend = (lib.ggml_backend_reg_name(lib.ggml_backend_dev_backend_reg(dev)) or b"").decode()
        if backend == "RPC":
            endpoint = (lib.ggml_backend_dev_description(dev) or b"").decode()
            rpc.setdefault(endpoint, []).append(dev)
        elif kind == "GPU":
            gpus.append(dev)
        elif kind == "IGPU":
            igpus.append(dev)
    chosen = [dev for host in parse_hosts(hosts) for dev in rpc.get(host, [])]
    chosen += gpus or igpus
    return (ctypes.c_void_p * (len(chosen) + 1))(*chosen, None)
