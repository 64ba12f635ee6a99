"""The Hugging Face Hub, for search and metadata only: repo and file names, GGUF listings, file metadata."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote, urlsplit

from llamadesk.core.errors import LlamaDeskError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
SearchSort = Literal["downloads", "likes", "recent"]
_SORT_KEYS: dict[str, Literal["downloads", "likes", "last_modified"]] = {
    "downloads": "downloads", "likes": "likes", "recent": "last_modified",
}
_SORT_PARAMS = {"downloads": "downloads", "likes": "likes", "recent": "lastModified"}  # the Hub's own names
SEARCH_TIMEOUT = 10.0  # seconds: a search answers in well under a second when the Hub is reachable

_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_RE = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")
# One path component of a remote file: letters, digits and a few punctuation marks, never a leading dot.
_NAME_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+@=,()\[\] -]{0,254}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
# Longest names first so "Q4_K_M" wins over "Q4_K" and "IQ4_XS" over "Q4".
_QUANT_NAMES = sorted(
    [
        "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_XS",
        "IQ4_NL", "Q2_K_L", "Q2_K_S", "Q2_K", "Q3_K_XL", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q3_K", "Q4_0_4_4", "Q4_0_4_8",
        "Q4_0_8_8", "Q4_0", "Q4_1", "Q4_K_L", "Q4_K_M", "Q4_K_S", "Q4_K", "Q5_0", "Q5_1", "Q5_K_L", "Q5_K_M", "Q5_K_S",
        "Q5_K", "Q6_K_L", "Q6_K", "Q8_0", "Q8_K_XL", "MXFP4", "TQ1_0", "TQ2_0", "BF16", "FP16", "F16", "FP32", "F32",
    ],
    key=len, reverse=True,
)
_QUANT_RE = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(_QUANT_NAMES) + r")(?![A-Za-z0-9])", re.IGNORECASE)


class HubError(LlamaDeskError):
    """The Hub (or a mirror) could not answer, or a name it gave is not acceptable."""


class BadNameError(HubError, ValueError):
    """A repository id, revision or remote file name is malformed or unsafe."""


class HubUnavailable(HubError):
    """A network failure or a server error (5xx, 429): worth retrying later."""


class HubUnreachable(HubUnavailable):
    """No connection to the Hub at all (offline, DNS, refused): the sentence says so and nothing retries at once."""


UNREACHABLE = "The Hugging Face Hub could not be reached; check the internet connection and try again."


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub's base URL: `endpoint`, else $HF_ENDPOINT read now (not at import), else huggingface.co."""
    value = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return value.rstrip("/")


def same_origin(url: str, base: str) -> bool:
    """Whether `url` has the scheme, host and port of `base` (the token is only ever sent there)."""
    a, b = urlsplit(url), urlsplit(base)
    port = {"http": 80, "https": 443}
    return (a.scheme, a.hostname, a.port or port.get(a.scheme)) == (b.scheme, b.hostname, b.port or port.get(b.scheme))


def check_repo_id(repo_id: str) -> str:
    if not _REPO_RE.match(repo_id) or ".." in repo_id:
        raise BadNameError(f"'{_show(repo_id)}' is not a Hub repository id (expected owner/name).")
    return repo_id


def check_revision(revision: str) -> str:
    if not _REVISION_RE.match(revision) or ".." in revision or "//" in revision:
        raise BadNameError(f"'{_show(revision)}' is not a valid revision name.")
    return revision


def check_remote_name(name: str) -> str:
    """A file name from the Hub, safe to use as a relative path on disk; anything odd raises BadNameError."""
    bad = BadNameError(f"The remote file name '{_show(name)}' is unsafe (absolute, '..' or odd characters); "
                       "LlamaDesk will not download it.")
    if not name or len(name) > 1024 or name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        raise bad
    for part in name.split("/"):
        if part in ("", ".", "..") or not _NAME_PART_RE.match(part) or part.endswith((".", " ")):
            raise bad
        if part.split(".")[0].lower() in _WINDOWS_RESERVED:
            raise bad
    return name


def _show(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:120])


@dataclass(frozen=True)
class ModelRef:
    """What the user pointed at: a repo, optionally a file (or a quantization name) in it, and a revision."""

    repo_id: str
    filename: str | None = None
    revision: str = "main"


def parse_model_ref(text: str) -> ModelRef:
    """Accepts owner/name, owner/name:FILE, owner/name@rev:FILE, and Hub URLs (…/blob|resolve/REV/FILE)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        parts = [unquote(p) for p in urlsplit(text).path.strip("/").split("/")]
        if parts and parts[0] == "models":
            parts = parts[1:]
        if len(parts) < 2:
            raise BadNameError(f"'{_show(text)}' does not name a Hub repository.")
        repo_id = check_repo_id("/".join(parts[:2]))
        if len(parts) >= 5 and parts[2] in ("blob", "resolve", "tree"):
            filename = "/".join(parts[4:]) or None
            return ModelRef(repo_id, check_remote_name(filename) if filename else None, check_revision(parts[3]))
        return ModelRef(repo_id)
    repo_part, _, filename = text.partition(":")
    repo_part, _, revision = repo_part.partition("@")
    return ModelRef(
        check_repo_id(repo_part),
        check_remote_name(filename) if filename else None,
        check_revision(revision) if revision else "main",
    )


def file_url(repo_id: str, filename: str, revision: str = "main", endpoint: str | None = None) -> str:
    check_repo_id(repo_id)
    check_remote_name(filename)
    check_revision(revision)
    return f"{hub_endpoint(endpoint)}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def quantization_of(filename: str) -> str:
    """"Q4_K_M", "F16", ... read from a file name; "unknown" when it names none."""
    base = filename.rsplit("/", 1)[-1]
    found = _QUANT_RE.findall(base)
    if not found:
        return "unknown"
    name = found[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(name, name)


def split_info(filename: str) -> tuple[str, int, int] | None:
    """(stem, index, count) for `…-00001-of-00003.gguf`, else None."""
    match = _SPLIT_RE.match(filename)
    if not match:
        return None
    return match["stem"], int(match["index"]), int(match["count"])


@dataclass(frozen=True)
class RemoteFile:
    repo_id: str
    path: str
    size: int
    sha256: str | None  # the LFS hash, when the file is stored in LFS


@dataclass(frozen=True)
class GGUFGroup:
    """One model as the user sees it: a single .gguf, or every part of a split one."""

    name: str
    quantization: str
    files: tuple[RemoteFile, ...]
    is_projector: bool = False  # mmproj files serve vision models; they are not chat models on their own

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def first(self) -> RemoteFile:
        return self.files[0]

    @property
    def complete(self) -> bool:
        info = split_info(self.first.path)
        return info is None or len(self.files) == info[2]


def group_gguf_files(files: Iterable[RemoteFile]) -> list[GGUFGroup]:
    """Groups .gguf files: split parts become one model; ordered by quantization size, then name."""
    singles: list[GGUFGroup] = []
    splits: dict[str, list[tuple[int, RemoteFile]]] = {}
    for f in files:
        if not f.path.lower().endswith(".gguf"):
            continue
        info = split_info(f.path)
        if info is None:
            singles.append(_group(f.path, (f,)))
        else:
            splits.setdefault(info[0], []).append((info[1], f))
    for stem, parts in splits.items():
        ordered = tuple(f for _, f in sorted(parts, key=lambda p: p[0]))
        singles.append(_group(stem + ".gguf", ordered))
    return sorted(singles, key=lambda g: (g.is_projector, g.size, g.name))


def _group(name: str, files: tuple[RemoteFile, ...]) -> GGUFGroup:
    base = name.rsplit("/", 1)[-1]
    return GGUFGroup(base, quantization_of(base), files, "mmproj" in base.lower())


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class FileMetadata:
    url: str  # the resolve URL, pinned to the commit when the Hub names it
    size: int | None
    sha256: str | None  # from X-Linked-Etag: only LFS files carry a sha256
    etag: str | None
    commit: str | None


def _api(endpoint: str | None, token: str | None) -> HfApi:
    from huggingface_hub import HfApi  # imported on use: it is slow to import and the CLI rarely needs it

    return HfApi(endpoint=hub_endpoint(endpoint), token=token or False, library_name="llamadesk")


def _hub_error(what: str, exc: Exception) -> HubError:
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if isinstance(exc, GatedRepoError):
        return HubError(f"{what} is gated: accept its license on the Hub, then store your token with "
                        "`llamadesk models login`.")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(f"{what} was not found on the Hub (or it is private and needs a token).")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        kind = HubUnavailable if status == 429 or status >= 500 else HubError
        return kind(f"The Hub answered {what} with error {status or 'unknown'}; try again later.")
    log.info("The Hub could not be reached for %s: %s: %s", what, type(exc).__name__, exc)
    return HubUnreachable(UNREACHABLE)


def _search_headers(token: str | None) -> dict[str, str]:
    """Written here, not by build_hf_headers: that one first fetches the Hub's list of AI agents to name one in the
    user agent, a second request (3 s to time out) before an offline search can say so."""
    from llamadesk import __version__

    headers = {"user-agent": f"llamadesk/{__version__}"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def search_models(
    query: str, *, sort: SearchSort = "downloads", limit: int = 30, endpoint: str | None = None,
    token: str | None = None,
) -> list[RepoSummary]:
    """GGUF repositories whose id contains `query`, most downloaded (or liked, or recent) first.

    One request and no retries: HfApi.list_models pages through huggingface_hub's http_backoff, which tries a
    refused or timed-out connection six times with 1, 2, 4, 8 and 8 s pauses, so an offline search took ~15 s or
    more to say so. A search is cheap to repeat by hand; the sentence comes at once."""
    import httpx2
    from huggingface_hub import ModelInfo
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_session, hf_raise_for_status

    if sort not in _SORT_KEYS:
        raise HubError(f"Sort by downloads, likes or recent, not '{_show(str(sort))}'.")
    params: dict[str, object] = {
        "filter": "gguf", "sort": _SORT_PARAMS[sort], "limit": limit,
        "expand": ["downloads", "likes", "lastModified", "gated", "tags"],
    }
    if query:
        params["search"] = query
    try:
        response = get_session().get(
            f"{hub_endpoint(endpoint)}/api/models", params=params,  # type: ignore[arg-type]
            headers=_search_headers(token), timeout=SEARCH_TIMEOUT,
        )
        hf_raise_for_status(response)
        found = [ModelInfo(**item) for item in response.json()][:limit]
        return [
            RepoSummary(m.id, m.downloads or 0, m.likes or 0, m.last_modified, bool(m.gated), tuple(m.tags or ()))
            for m in found
        ]
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        raise _hub_error(f"the search for '{_show(query)}'", exc) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise HubError(f"The Hub's answer to the search for '{_show(query)}' could not be read.") from exc


def list_files(
    repo_id: str, *, revision: str = "main", endpoint: str | None = None, token: str | None = None,
) -> list[RemoteFile]:
    """Every file of a repository with its size and LFS sha256; unsafe names are left out (and logged)."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    check_revision(revision)
    try:
        entries = list(_api(endpoint, token).list_repo_tree(repo_id, recursive=True, revision=revision))
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        raise _hub_error(repo_id, exc) from exc
    files: list[RemoteFile] = []
    for entry in entries:
        size = getattr(entry, "size", None)
        if size is None:  # a folder
            continue
        try:
            check_remote_name(entry.path)
        except BadNameError:
            log.warning("Ignoring a file with an unsafe name in %s", repo_id)
            continue
        lfs = getattr(entry, "lfs", None)
        files.append(RemoteFile(repo_id, entry.path, int(size), lfs.sha256 if lfs else None))
    return files


def list_gguf_groups(
    repo_id: str, *, revision: str = "main", endpoint: str | None = None, token: str | None = None,
) -> list[GGUFGroup]:
    return group_gguf_files(list_files(repo_id, revision=revision, endpoint=endpoint, token=token))


def file_metadata(
    repo_id: str, filename: str, *, revision: str = "main", endpoint: str | None = None, token: str | None = None,
) -> FileMetadata:
    """HEAD of the file: size, LFS sha256 (X-Linked-Etag) and the commit, which later requests pin to."""
    import httpx2
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    url = file_url(repo_id, filename, revision, endpoint)
    try:
        meta = _api(endpoint, token).get_hf_file_metadata(url=url, token=token or False)
    except EntryNotFoundError as exc:
        raise HubError(f"{repo_id} has no file named {_show(filename)}.") from exc
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
        raise _hub_error(f"{repo_id}:{_show(filename)}", exc) from exc
    etag = (meta.etag or "").strip('"') or None
    sha = etag.lower() if etag and re.fullmatch(r"[0-9a-fA-F]{64}", etag) else None
    commit = meta.commit_hash if meta.commit_hash and re.fullmatch(r"[0-9a-f]{40}", meta.commit_hash) else None
    pinned = file_url(repo_id, filename, commit or revision, endpoint)
    return FileMetadata(pinned, meta.size, sha, etag, commit)
