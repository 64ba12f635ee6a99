"""HTTP plumbing for Hub files: TLS-verified requests, the token only for the Hub's own host, Range reads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx2

from llamadesk import __version__
from llamadesk.core.gguf_header import ChunkedSource, GGUFHeader, read_header
from llamadesk.core.hub import HubError, file_metadata, hub_endpoint, same_origin
from llamadesk.core.socket_stop import SocketWatch  # re-exported: the downloader's names

USER_AGENT = f"LlamaDesk/{__version__}"
MAX_REDIRECTS = 5
HEADER_CHUNK = 1 << 20


def make_client(*, read_timeout: float = 30.0, connect_timeout: float = 15.0) -> httpx2.Client:
    """A client that always verifies TLS and follows redirects itself (see `open_stream`)."""
    timeout = httpx2.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=30.0)
    return httpx2.Client(verify=True, timeout=timeout, follow_redirects=False,
                         headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})


def auth_headers(url: str, token: str | None, endpoint: str | None) -> dict[str, str]:
    """The Authorization header, only when `url` is on the Hub's own origin (never for a CDN or a mirror's CDN)."""
    if token and same_origin(url, hub_endpoint(endpoint)):
        return {"Authorization": f"Bearer {token}"}
    return {}


@contextlib.contextmanager
def open_stream(
    client: httpx2.Client, url: str, *, headers: dict[str, str] | None = None, token: str | None = None,
    endpoint: str | None = None, method: str = "GET", watch: SocketWatch | None = None,
) -> Iterator[httpx2.Response]:
    """A streamed response after following redirects by hand, re-deciding at each hop whether the token goes.
    With `watch`, another thread can interrupt the request at any point after its connection is made."""
    extensions = {"trace": watch.trace} if watch is not None else None
    for _ in range(MAX_REDIRECTS + 1):
        request_headers = {**(headers or {}), **auth_headers(url, token, endpoint)}
        request = client.build_request(method, url, headers=request_headers, extensions=extensions)
        response = client.send(request, stream=True)
        if response.is_redirect and "location" in response.headers:
            response.close()
            url = urljoin(url, response.headers["location"])
            continue
        try:
            yield response
        finally:
            response.close()
        return
    raise HubError(f"The server redirected {url} too many times.")


class HttpRangeSource(ChunkedSource):
    """Random access to a remote file through `Range` requests, fetched and cached in chunks."""

    def __init__(
        self, url: str, *, size: int | None = None, label: str = "the remote model file", token: str | None = None,
        endpoint: str | None = None, client: httpx2.Client | None = None, chunk_size: int = HEADER_CHUNK,
    ) -> None:
        super().__init__(label, size, chunk_size=chunk_size)
        self.url = url
        self._token = token
        self._endpoint = endpoint
        self._own_client = client is None
        self._client = client or make_client()

    def _fetch(self, offset: int, size: int) -> bytes:
        headers = {"Range": f"bytes={offset}-{offset + size - 1}"}
        try:
            with open_stream(self._client, self.url, headers=headers, token=self._token,
                             endpoint=self._endpoint) as response:
                if response.status_code == 416:
                    return b""
                if response.status_code not in (200, 206):
                    raise HubError(f"The server answered error {response.status_code} for {self.label}.")
                skip = offset if response.status_code == 200 else 0  # a server that ignores Range: read no more
                parts: list[bytes] = []
                got = 0
                for data in response.iter_raw(64 * 1024):
                    if skip:
                        cut = min(skip, len(data))
                        data, skip = data[cut:], skip - cut
                    parts.append(data)
                    got += len(data)
                    if got >= size:
                        break
                self.bytes_read += max(0, response.num_bytes_downloaded - min(got, size))  # count over-reads too
                return b"".join(parts)[:size]
        except httpx2.HTTPError as exc:
            raise HubError(f"{self.label} could not be read from the server ({type(exc).__name__}).") from exc

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> HttpRangeSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_remote_header(
    repo_id: str, filename: str, *, revision: str = "main", endpoint: str | None = None, token: str | None = None,
    client: httpx2.Client | None = None,
) -> GGUFHeader:
    """The GGUF header of a file on the Hub, read with Range requests (the first few MB, not the weights)."""
    meta = file_metadata(repo_id, filename, revision=revision, endpoint=endpoint, token=token)
    label = filename.rsplit("/", 1)[-1]
    with HttpRangeSource(meta.url, size=meta.size, label=label, token=token, endpoint=endpoint,
                         client=client) as source:
        header = read_header(source)
        header.bytes_read = source.bytes_read
        return header
