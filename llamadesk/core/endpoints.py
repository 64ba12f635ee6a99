"""Remote OpenAI-compatible endpoints: the saved list (name, URL, server kind, last known models), the URL policy
(https verified; plain http to this computer, or to private addresses after a warning) and API keys in the keyring."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llamadesk.core.engines.api import LoadOptions
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.secrets import SERVICE, SecretStoreError, keyring_module
from llamadesk.paths import get_paths

log = logging.getLogger(__name__)

ENDPOINTS_FILE = "endpoints.json"
KEY_PREFIX = "endpoint-key:"  # the keyring's user name for an endpoint's API key: "endpoint-key:<name>"
# "auto" asks the server (its /v1/models owner, /props); the others decide which sampling values are sent.
SERVER_KINDS = ("auto", "openai", "llama.cpp", "llama-cpp-python", "vllm", "ollama", "lmstudio")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,39}$")
HTTP_WARNING = (
    "{host} is reached over plain http: anyone on your network can read the conversation and the API key. "
    "Use https unless this network is yours."
)


class EndpointError(LlamaDeskError):
    """An endpoint's name or URL is not acceptable, or the list could not be read or written."""


@dataclass(frozen=True)
class Endpoint:
    """One saved server. `url` is the base URL without /v1; `models` are the ids it listed last time."""

    name: str
    url: str
    kind: str = "auto"
    has_key: bool = False
    allow_http: bool = False  # the user confirmed the plain-http warning for this private address (not loopback)
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))

    def api_url(self, path: str) -> str:
        return f"{self.url}/v1/{path.lstrip('/')}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["models"] = list(self.models)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        models = data.get("models") or ()
        return cls(
            name=str(data["name"]),
            url=str(data["url"]),
            kind=str(data.get("kind") or "auto") if data.get("kind") in SERVER_KINDS else "auto",
            has_key=bool(data.get("has_key", False)),
            allow_http=bool(data.get("allow_http", False)),
            models=tuple(str(m) for m in models if isinstance(m, str)),
        )


@dataclass(frozen=True, kw_only=True)
class RemoteOptions(LoadOptions):
    """Load a model served by `endpoint` (model "" = the first one it lists). `path` only carries the model id;
    n_ctx is used when the server does not say its context length. The local-only settings are ignored."""

    endpoint: Endpoint
    model: str = ""
    api_key: str | None = field(default=None, repr=False, compare=False)  # None: the keyring's, if it has one


def remote_options(
    endpoint: Endpoint, model: str = "", *, n_ctx: int = 4096, api_key: str | None = None
) -> RemoteOptions:
    return RemoteOptions(Path(model or endpoint.name), n_ctx=n_ctx, endpoint=endpoint, model=model, api_key=api_key)


# -- URL policy ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UrlCheck:
    """A URL that may be used: `warning` is the sentence to confirm first ("" for https)."""

    url: str
    host: str
    warning: str = ""


def normalize_url(url: str) -> str:
    """Trims spaces, trailing slashes and a trailing /v1: "http://h:8080/v1/" → "http://h:8080"."""
    url = url.strip().rstrip("/")
    if url.lower().endswith("/v1"):
        url = url[:-3].rstrip("/")
    return url


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_loopback or ip.is_private or ip.is_link_local


def is_loopback_host(host: str) -> bool:
    """This computer for certain: 127.0.0.0/8, ::1 (or ::ffff:127.x) written out, or the name localhost. Other
    names are not trusted even when they resolve to loopback today: their next answer may differ."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise EndpointError(f"The host name {host} could not be resolved; check the address.") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_url(url: str) -> UrlCheck:
    """Raises EndpointError unless `url` is https, http to this computer, or http to a private address (then
    `warning`: the conversation crosses the network unencrypted)."""
    url = normalize_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise EndpointError(f"{url!r} is not a valid address.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise EndpointError(f"{url!r} is not a server address; write it like https://host:port or http://host:port.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise EndpointError(
            "Leave user names, queries and fragments out of the address; the API key has its own field."
        )
    clean = urlunsplit((scheme, parts.netloc, parts.path, "", ""))
    if scheme == "https" or is_loopback_host(host):  # plain http to this computer never crosses a network
        return UrlCheck(clean, host)
    if not all(_is_private(ip) for ip in _addresses(host)):
        raise EndpointError(
            f"Plain http is only allowed to this computer or a private network, and {host} is public; use https."
        )
    return UrlCheck(clean, host, HTTP_WARNING.format(host=host))


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME_RE.match(name):
        raise EndpointError("An endpoint name has 1–40 letters, digits, spaces, dots, dashes or underscores.")
    return name


# -- API keys ------------------------------------------------------------------------------------------------------
def get_api_key(name: str) -> str | None:
    """The endpoint's key from the keyring; None when there is none. A broken keyring is one sentence."""
    try:
        value = keyring_module().get_password(SERVICE, KEY_PREFIX + name)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise SecretStoreError(f"The system keyring could not be read ({type(exc).__name__}).") from exc
    return value or None


def set_api_key(name: str, key: str) -> None:
    key = key.strip()
    if not key or len(key) > 4096 or any(c.isspace() for c in key):
        raise SecretStoreError("An API key is one word without spaces.")
    try:
        keyring_module().set_password(SERVICE, KEY_PREFIX + name, key)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise SecretStoreError(
            f"The system keyring refused to store the API key ({type(exc).__name__}), so the endpoint was not saved."
        ) from exc


def delete_api_key(name: str) -> None:
    try:
        keyring = keyring_module()
        if keyring.get_password(SERVICE, KEY_PREFIX + name) is not None:
            keyring.delete_password(SERVICE, KEY_PREFIX + name)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise SecretStoreError(f"The system keyring could not remove the API key ({type(exc).__name__}).") from exc


# -- the saved list ------------------------------------------------------------------------------------------------
def endpoints_path() -> Path:
    return get_paths().data / ENDPOINTS_FILE


class EndpointStore:
    """The endpoints in <data>/endpoints.json (no keys in it: only whether one is in the keyring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or endpoints_path()

    def endpoints(self) -> list[Endpoint]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable endpoint list %s: %s", self.path, exc)
            return []
        items = data.get("endpoints") if isinstance(data, dict) else None
        result = []
        for item in items if isinstance(items, list) else []:
            try:
                result.append(Endpoint.from_dict(item))
            except (KeyError, TypeError, AttributeError):
                log.warning("Ignoring a malformed endpoint entry in %s", self.path)
        return result

    def get(self, name: str) -> Endpoint:
        for endpoint in self.endpoints():
            if endpoint.name.lower() == name.strip().lower():
                return endpoint
        raise EndpointError(f"There is no endpoint named {name!r}; add it first (llamadesk endpoints add).")

    def add(
        self,
        name: str,
        url: str,
        *,
        kind: str = "auto",
        api_key: str | None = None,
        confirm_http: bool = False,
        replace: str | None = None,
    ) -> Endpoint:
        """Saves an endpoint (`replace`: the name of the one being edited). Plain http needs `confirm_http`.
        `api_key`: None keeps the current key, "" removes it, else it goes to the keyring."""
        name = check_name(name)
        checked = check_url(url)
        if checked.warning and not confirm_http:
            raise EndpointError(checked.warning + " Confirm to use it anyway.")
        if kind not in SERVER_KINDS:
            raise EndpointError(f"The server kind must be one of {', '.join(SERVER_KINDS)}.")
        current = self.endpoints()
        old = next((e for e in current if replace and e.name.lower() == replace.lower()), None)
        if any(e.name.lower() == name.lower() and e is not old for e in current):
            raise EndpointError(f"An endpoint named {name!r} exists already; choose another name.")
        has_key = old.has_key if old is not None else False
        if api_key:
            set_api_key(name, api_key)  # first: a keyring that refuses leaves nothing half saved
            has_key = True
        elif api_key == "":
            has_key = False
        elif old is not None and old.has_key and old.name != name:  # renamed, key kept: move it
            key = get_api_key(old.name)
            if key:
                set_api_key(name, key)
        if old is not None and old.has_key and (old.name != name or api_key == ""):
            delete_api_key(old.name)
        same_server = old is not None and old.url == checked.url
        endpoint = Endpoint(
            name,
            checked.url,
            kind,
            has_key,
            bool(checked.warning),
            old.models if same_server and old is not None else (),
        )
        self._write([endpoint if e is old else e for e in current] if old is not None else [*current, endpoint])
        return endpoint

    def remove(self, name: str) -> Endpoint:
        endpoint = self.get(name)
        if endpoint.has_key:
            delete_api_key(endpoint.name)
        self._write([e for e in self.endpoints() if e.name != endpoint.name])
        return endpoint

    def remember_models(self, name: str, models: list[str] | tuple[str, ...]) -> None:
        """Keeps the ids a server listed, so the model picker shows them without asking the network."""
        current = self.endpoints()
        updated = [dataclasses.replace(e, models=tuple(models)) if e.name == name else e for e in current]
        if updated != current:
            self._write(updated)

    def _write(self, endpoints: list[Endpoint]) -> None:
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".endpoints-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "endpoints": [e.to_dict() for e in endpoints]}, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            if tmp is not None:  # a full disk leaves no half-written temporary file behind
                with contextlib.suppress(OSError):
                    Path(tmp).unlink(missing_ok=True)
            raise EndpointError(f"The endpoint list could not be saved to {self.path}: {exc.strerror or exc}.") from exc
