"""A Hugging Face Hub look-alike on 127.0.0.1: resolve (HEAD/GET/Range), search and tree APIs, switchable faults."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 256 * 1024
_RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TREE_RE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_CDN_RE = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<path>.+)$")


@dataclass
class RemoteEntry:
    repo: str
    path: str
    data: bytes | None = None  # in memory …
    source: Path | None = None  # … or a file on disk
    size: int = 0
    sha256: str = ""
    lfs: bool = True

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) in CHUNK pieces; a virtual file (no data) yields zeros."""
        if self.data is not None:
            view = memoryview(self.data)
            for pos in range(start, end, CHUNK):
                yield bytes(view[pos:min(end, pos + CHUNK)])
        elif self.source is not None:
            with open(self.source, "rb") as f:
                f.seek(start)
                pos = start
                while pos < end:
                    piece = f.read(min(CHUNK, end - pos))
                    if not piece:
                        return
                    pos += len(piece)
                    yield piece
        else:
            for pos in range(start, end, CHUNK):
                yield bytes(min(CHUNK, end - pos))


@dataclass
class Repo:
    repo_id: str
    commit: str
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2024-01-01T00:00:00.000Z"
    tags: list[str] = field(default_factory=lambda: ["gguf"])
    gated_token: str | None = None  # files need "Authorization: Bearer <this>"


@dataclass
class Faults:
    """Misbehaviour for the next file GETs; each counter is consumed as it fires."""

    fail_next: int = 0
    fail_status: int = 500
    fail_head: bool = False  # also fail HEAD requests
    stall_after: int | None = None  # body bytes sent before the server goes silent
    stalls: int = 0
    truncate_after: int | None = None  # body bytes sent before the connection is closed
    truncations: int = 0
    corrupt: bool = False  # flip one byte of every body
    ignore_range: bool = False
    hold_after: int | None = None  # body bytes sent before the server waits for release()
    hold_headers: tuple[str, ...] = ()  # methods ("HEAD", "GET") answered only after release(), headers included
    redirect_to_cdn: bool = False


@dataclass
class RequestRecord:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


class FakeHub:
    """Start with `with FakeHub() as hub:` or start()/stop(); `hub.url` is the endpoint."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.files: dict[tuple[str, str], RemoteEntry] = {}
        self.faults = Faults()
        self.records: list[RequestRecord] = []
        self.lock = threading.Lock()
        self.release_event = threading.Event()  # frees stalled and held responses
        self.held = threading.Event()  # set when a response reached hold_after
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> FakeHub:
        for name in ("hub", "cdn"):
            server = _QuietServer(("127.0.0.1", 0), _make_handler(self, name))
            server.daemon_threads = True
            self._servers[name] = server
            thread = threading.Thread(target=server.serve_forever, args=(0.02,), name=f"fakehub-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.release_event.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers['hub'].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers['cdn'].server_address[1]}"

    # -- content ------------------------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, **kwargs: Any) -> Repo:
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        repo = self.repos.get(repo_id) or Repo(repo_id, commit)
        for key, value in kwargs.items():
            setattr(repo, key, value)
        self.repos[repo_id] = repo
        return repo

    def add_file(self, repo_id: str, path: str, data: bytes | None = None, *, source: Path | None = None,
                 virtual_size: int | None = None, lfs: bool = True, sha256: str | None = None) -> RemoteEntry:
        """A file from bytes, from a file on disk, or a virtual one of `virtual_size` zero bytes."""
        self.add_repo(repo_id)
        if data is not None:
            size, digest = len(data), hashlib.sha256(data).hexdigest()
        elif source is not None:
            size, digest = source.stat().st_size, _sha256_path(source)
        else:
            size, digest = int(virtual_size or 0), "0" * 64
        entry = RemoteEntry(repo_id, path, data, source, size, sha256 or digest, lfs)
        self.files[(repo_id, path)] = entry
        return entry

    def release(self) -> None:
        self.release_event.set()

    # -- observations -------------------------------------------------------------------------------------------
    def body_bytes(self, path_part: str = "") -> int:
        with self.lock:
            return sum(r.body_bytes for r in self.records if r.method == "GET" and path_part in r.path)

    def requests_to(self, server: str) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.records if r.server == server]


def _sha256_path(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that drop a connection (a paused or killed download) are part of the tests


def _make_handler(hub: FakeHub, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = hub
        server_kind = server_name

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub
    server_kind: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `records` instead
        pass

    def _record(self) -> RequestRecord:
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RequestRecord(self.server_kind, self.command, self.path, headers)
        with self.fake.lock:
            self.fake.records.append(record)
        return record

    def _send(self, record: RequestRecord, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        record.status = status
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        record = self._record()
        if self.command in self.fake.faults.hold_headers:
            self.fake.held.set()
            self.fake.release_event.wait(120)
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        try:
            if self.server_kind == "cdn":
                match = _CDN_RE.match(path)
                if match:
                    return self._file(record, match["repo"], match["path"], cdn=True)
            elif path == "/api/models":
                return self._search(record, query)
            elif match := _TREE_RE.match(path):
                return self._tree(record, match["repo"], match["path"] or "")
            elif match := _RESOLVE_RE.match(path):
                return self._resolve(record, match["repo"], match["rev"], match["path"])
            self._send(record, 404, b'{"error": "not found"}')
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _repo_or_404(self, record: RequestRecord, repo_id: str) -> Repo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._send(record, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
        return repo

    def _search(self, record: RequestRecord, query: dict[str, list[str]]) -> None:
        search = (query.get("search") or [""])[0].lower()
        filters = query.get("filter") or []
        repos = [r for r in self.fake.repos.values() if search in r.repo_id.lower()
                 and all(f in r.tags for f in filters)]
        sort = (query.get("sort") or ["downloads"])[0]
        key = {"downloads": "downloads", "likes": "likes", "lastModified": "last_modified"}.get(sort, "downloads")
        repos.sort(key=lambda r: getattr(r, key), reverse=True)
        limit = int((query.get("limit") or ["1000"])[0])
        body = [
            {"_id": r.commit[:24], "id": r.repo_id, "downloads": r.downloads, "likes": r.likes,
             "lastModified": r.last_modified, "gated": "manual" if r.gated_token else False, "tags": r.tags,
             "private": False}
            for r in repos[:limit]
        ]
        self._send(record, 200, json.dumps(body).encode())

    def _tree(self, record: RequestRecord, repo_id: str, prefix: str) -> None:
        if self._repo_or_404(record, repo_id) is None:
            return
        items = []
        for (rid, path), entry in sorted(self.fake.files.items()):
            if rid != repo_id or not path.startswith(prefix):
                continue
            item: dict[str, Any] = {"type": "file", "oid": hashlib.sha1(path.encode()).hexdigest(),
                                    "size": entry.size, "path": path}
            if entry.lfs:
                item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": 134}
            items.append(item)
        self._send(record, 200, json.dumps(items).encode())

    def _authorized(self, repo: Repo) -> bool:
        return repo.gated_token is None or self.headers.get("Authorization") == f"Bearer {repo.gated_token}"

    def _take_failure(self) -> bool:
        faults = self.fake.faults
        with self.fake.lock:
            if faults.fail_next > 0 and (self.command == "GET" or faults.fail_head):
                faults.fail_next -= 1
                return True
        return False

    def _resolve(self, record: RequestRecord, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo_or_404(record, repo_id)
        if repo is None:
            return
        if rev not in ("main", repo.commit):
            self._send(record, 404, b"{}", {"X-Error-Code": "RevisionNotFound"})
            return
        entry = self.fake.files.get((repo_id, path))
        if entry is None:
            self._send(record, 404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"})
            return
        if not self._authorized(repo):
            self._send(record, 403 if self.headers.get("Authorization") else 401, b"{}",
                       {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model is restricted."})
            return
        if self._take_failure():
            self._send(record, self.fake.faults.fail_status, b'{"error": "try later"}')
            return
        if self.fake.faults.redirect_to_cdn and entry.lfs:
            location = f"{self.fake.cdn_url}/cdn/{repo_id}/{quote(path)}?signature=abc"
            self._send(record, 302, b"", {**self._meta_headers(repo, entry), "Location": location})
            return
        self._file(record, repo_id, path, cdn=False)

    def _meta_headers(self, repo: Repo, entry: RemoteEntry) -> dict[str, str]:
        headers = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers |= {"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size),
                        "ETag": f'"{entry.sha256}"'}
        else:
            headers["ETag"] = f'"{hashlib.sha1(entry.sha256.encode()).hexdigest()}"'
        return headers

    def _file(self, record: RequestRecord, repo_id: str, path: str, *, cdn: bool) -> None:
        entry = self.fake.files.get((repo_id, path))
        repo = self.fake.repos.get(repo_id)
        if entry is None or repo is None:
            self._send(record, 404, b"{}", {"X-Error-Code": "EntryNotFound"})
            return
        if cdn and self._take_failure():
            self._send(record, self.fake.faults.fail_status, b"{}")
            return
        start, end, status = 0, entry.size, 200
        wanted = self.headers.get("Range")
        if wanted and not self.fake.faults.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if not match or int(match[1]) >= entry.size:
                self._send(record, 416, b"", {"Content-Range": f"bytes */{entry.size}"})
                return
            start = int(match[1])
            end = min(entry.size, int(match[2]) + 1) if match[2] else entry.size
            status = 206
        record.status = status
        self.send_response(status)
        for key, value in self._meta_headers(repo, entry).items():
            self.send_header(key, value)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{entry.size}")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        self._body(record, entry, start, end)

    def _body(self, record: RequestRecord, entry: RemoteEntry, start: int, end: int) -> None:
        faults = self.fake.faults
        with self.fake.lock:
            stall = faults.stall_after if faults.stalls > 0 else None
            faults.stalls -= 1 if stall is not None else 0
            cut = faults.truncate_after if faults.truncations > 0 else None
            faults.truncations -= 1 if cut is not None else 0
            hold = faults.hold_after
            corrupt = faults.corrupt
        limit = min(x for x in (stall, cut, hold, end - start) if x is not None)
        sent = 0
        for piece in entry.chunks(start, end):
            piece = piece[:limit - sent] if sent + len(piece) > limit else piece
            if corrupt and sent <= (end - start) // 2 < sent + len(piece):
                i = (end - start) // 2 - sent
                piece = piece[:i] + bytes([piece[i] ^ 0xFF]) + piece[i + 1:]
            self.wfile.write(piece)
            sent += len(piece)
            record.body_bytes = sent
            if sent >= limit:
                break
        if sent >= end - start:
            return
        if hold is not None and sent >= hold:
            self.fake.held.set()
            self.fake.release_event.wait(120)
        elif stall is not None and sent >= stall:
            self.fake.release_event.wait(60)  # silent until released: the client's read timeout must fire
        self.close_connection = True  # truncated, stalled or held: the body ends early


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.02) -> bool:
    """Polls `predicate` until it is true or `timeout` passes (tests use it instead of sleeping)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
