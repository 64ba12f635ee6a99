"""Export of conversations as Markdown, self-contained HTML, or the documented JSON format (which imports back)."""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from llamadesk import __version__
from llamadesk.core.attachments import fence_for
from llamadesk.core.errors import HistoryError
from llamadesk.core.history.importer import FORMAT_NAME, FORMAT_VERSION
from llamadesk.core.history.models import FullConversation, Message, MessageImage

if TYPE_CHECKING:
    from llamadesk.core.history.repository import History
    from llamadesk.core.images import ImageStore

#: How Markdown names an image: a link target (a path relative to the export, or a file: URL of the store's copy)
ImageLink = Callable[[MessageImage], str]

log = logging.getLogger(__name__)

FORMATS: Final = ("md", "html", "json")
ROLE_LABELS: Final = {"user": "You", "assistant": "Assistant", "system": "System"}


def _finite(value: Any, where: str) -> Any:
    # JSON has no NaN or infinity; a receipt holding one (a division by a zero duration) exports it as null.
    if isinstance(value, float) and not math.isfinite(value):
        log.warning("Exporting a non-finite number in %s as null", where)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v, where) for v in value]
    return value


def _image_bytes(image: MessageImage, store: ImageStore | None) -> bytes | None:
    """The stored bytes of a message's image; None (logged) when the store no longer has them or has none, so one
    lost file leaves the rest of an export whole."""
    from llamadesk.core.images import ImageError

    if store is None:
        return None
    try:
        return store.read(image.sha256)
    except (ImageError, OSError) as exc:
        log.warning("Image %s left out of the export: %s", image.sha256[:12], exc)
        return None


def _json_images(m: Message, store: ImageStore | None) -> dict[str, Any]:
    images = []
    for i in m.images:
        data = _image_bytes(i, store)
        if data is not None:
            images.append({"sha256": i.sha256, "mime": i.mime, "width": i.width, "height": i.height,
                           "data": base64.b64encode(data).decode("ascii")})  # fmt: skip
    return {"images": images} if images else {}


def conversation_to_json(full: FullConversation, images: ImageStore | None = None) -> dict[str, Any]:
    """One conversation as the export format's object: every message of every branch, parents first; a message's
    images (from `images`) in base64 with their hash, type and size."""
    c = full.conversation
    return {
        "id": c.id,
        "title": c.title,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "model": c.model,
        "system_prompt": c.system_prompt,
        "sampling": _finite(c.sampling, f"conversation {c.id}"),
        "pinned": c.pinned,
        "leaf_message_id": c.leaf_message_id,
        "source": c.source,
        "messages": [
            {
                "id": m.id,
                "parent_id": m.parent_id,
                "role": m.role,
                "content": m.content,
                "created_at": m.created_at,
                # A reply still streaming in another window is, for the file, cut off where it stands.
                "status": "interrupted" if m.status == "streaming" else m.status,
                "finish_reason": m.finish_reason,
                "receipt": _finite(m.receipt, f"message {m.id}"),
                **_json_images(m, images),
            }
            for m in full.messages
        ],
    }


def write_json(
    conversations: Iterable[FullConversation], out: TextIO, *, now: float | None = None,
    images: ImageStore | None = None,
) -> None:  # fmt: skip
    """The export document, written one conversation at a time so exporting everything needs little memory."""
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "exported_at": time.time() if now is None else now,
        "app_version": __version__,
    }
    out.write("{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
    out.write('  "conversations": [')
    for i, full in enumerate(conversations):
        text = json.dumps(conversation_to_json(full, images), ensure_ascii=False, allow_nan=False, indent=2)
        out.write(("," if i else "") + "\n    " + text.replace("\n", "\n    "))
    out.write("\n  ]\n}\n")


def _when(seconds: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s"  # a date beyond what the C library can show, from a hand-made import


def _receipt_line(m: Message) -> str:
    """A short line under a reply: model, tokens, speed, seed: how it was made."""
    r = m.receipt or {}
    parts = []
    if r.get("model_file"):
        parts.append(str(r["model_file"]))
    if isinstance(r.get("generated_tokens"), int):
        parts.append(f"{r['generated_tokens']} tokens")
    if isinstance(r.get("tokens_per_s"), (int, float)) and math.isfinite(r["tokens_per_s"]):
        parts.append(f"{r['tokens_per_s']:.1f} tokens/s")
    if isinstance(r.get("seed"), int):
        parts.append(f"seed {r['seed']}")
    if m.finish_reason and m.finish_reason != "stop":
        parts.append(f"finish: {m.finish_reason}")
    return " · ".join(parts)


def _sources(m: Message) -> list[str]:
    """What a reply's citations [1], [2] refer to: the passages of documents its prompt quoted (the receipt)."""
    from llamadesk.core.documents.context import place_of

    records = (m.receipt or {}).get("sources")
    if not isinstance(records, list):
        return []
    return [f"[{r.get('n')}] {place_of(r)}" for r in records
            if isinstance(r, dict) and r.get("kind") in ("passage", "document")]  # fmt: skip


def _tool_calls(m: Message) -> list[tuple[str, str]]:
    """The tools a reply called (the receipt's records): a heading line ("name {arguments} → status") and the
    result, for Markdown and HTML; JSON keeps the receipt whole."""
    records = (m.receipt or {}).get("tool_calls")
    if not isinstance(records, list):
        return []
    calls = []
    for r in records:
        if isinstance(r, dict):
            arguments = json.dumps(r.get("arguments", {}), ensure_ascii=False)
            status = r.get("status") or ("error" if r.get("error") else "not run")
            result = str(r.get("result", r.get("error", "")))
            calls.append((f"{r.get('name') or 'tool'} {arguments} → {status}", result))
    return calls


def _tool_block(heading: str, result: str) -> str:
    return f'<details class="tool"><summary>{_esc(heading)}</summary><pre>{_esc(result)}</pre></details>'


def _heading(m: Message) -> str:
    label = ROLE_LABELS.get(m.role, m.role)
    status = "interrupted" if m.status == "streaming" else m.status  # as in JSON: a file cannot keep streaming
    return label if status == "complete" else f"{label} ({status})"


def _other_branches(full: FullConversation) -> int:
    parents = {m.parent_id for m in full.messages}
    leaves = sum(1 for m in full.messages if m.id not in parents)
    return max(0, leaves - 1)


def _branch(full: FullConversation) -> list[Message]:
    """The branch the user was looking at (leaf to root), which is what Markdown and HTML show."""
    by_id = {m.id: m for m in full.messages}
    path: list[Message] = []
    current = full.conversation.leaf_message_id
    while current is not None and current in by_id and len(path) <= len(by_id):
        path.append(by_id[current])
        current = by_id[current].parent_id
    return path[::-1]


def _markdown_image(image: MessageImage, link: ImageLink) -> str:
    # Angle brackets keep a path with spaces or parentheses one link target (CommonMark).
    target = link(image).replace("<", "%3C").replace(">", "%3E")
    return f"![image {image.sha256[:12]}, {image.width}×{image.height}](<{target}>)"


def store_link(store: ImageStore) -> ImageLink:
    """Markdown written to a stream links the images where LlamaDesk keeps them (a file: URL)."""

    def link(image: MessageImage) -> str:
        path = store.path(image.sha256)
        return path.resolve().as_uri() if path is not None else image.sha256

    return link


def conversation_to_markdown(full: FullConversation, link: ImageLink | None = None) -> str:
    c = full.conversation
    title = " ".join(c.title.split()) or "Untitled"
    lines = [f"# {title}", ""]
    meta = [f"Created {_when(c.created_at)}", f"last active {_when(c.updated_at)}"]
    if c.model:
        meta.append(f"model {c.model}")
    lines += ["*" + " · ".join(meta) + "*", ""]
    if c.system_prompt:
        lines += ["**System prompt:**", "", *(f"> {line}" for line in c.system_prompt.splitlines()), ""]
    for m in _branch(full):
        lines += [f"## {_heading(m)}", "", m.content, ""]
        if m.images and link is not None:
            lines += [*(_markdown_image(i, link) for i in m.images), ""]
        receipt = _receipt_line(m) if m.role == "assistant" else ""
        if receipt:
            lines += [f"*{receipt}*", ""]
        if sources := _sources(m):
            lines += ["**Sources:**", "", *(f"- {source}" for source in sources), ""]
        for heading, result in _tool_calls(m):
            lines += [f"**Tool call:** `{heading.replace('`', chr(39))}`", ""]
            if result:
                fence = fence_for(result)
                lines += [fence, result, fence, ""]
    others = _other_branches(full)
    if others:
        lines += [f"*This conversation has {others} other branch(es); export it as JSON to keep them.*", ""]
    return "\n".join(lines)


def write_markdown(conversations: Iterable[FullConversation], out: TextIO, *, link: ImageLink | None = None) -> None:
    for i, full in enumerate(conversations):
        out.write(("\n---\n\n" if i else "") + conversation_to_markdown(full, link))


# Inline only: the page loads nothing (the CSP below forbids it as a second line of defence).
_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5rem; margin: 2.5rem 0 .25rem; } nav li { margin: .2rem 0; }
.meta, .receipt, .note, .source { color: #6e6e73; font-size: .85rem; }
.message { border-radius: .6rem; padding: .6rem .9rem; margin: .8rem 0; }
.user { background: #e8f0fe; } .assistant { background: #f5f5f7; } .system { background: #fff8e1; }
.role { font-weight: 600; font-size: .85rem; margin-bottom: .25rem; }
.content { white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; margin: 0; }
.images img { max-width: 100%; max-height: 24rem; margin: .4rem .4rem 0 0; border-radius: .3rem; }
@media (prefers-color-scheme: dark) {
  body { color: #f5f5f7; background: #1d1d1f; } .user { background: #1e3050; } .assistant { background: #2c2c2e; }
  .system { background: #3a3320; } .meta, .receipt, .note, .source { color: #a1a1a6; }
}
""".strip()


def _esc(text: str) -> str:
    # Model output is untrusted: every character of it reaches the page as text, never as markup.
    return html.escape(text, quote=True)


def _html_images(m: Message, store: ImageStore | None) -> str:
    """A message's images as data: URLs (the page stays self-contained); the mime type is one the store wrote,
    and is escaped anyway, like everything else that reaches the page."""
    tags = []
    for i in m.images:
        data = _image_bytes(i, store)
        if data is not None:
            src = f"data:{i.mime};base64,{base64.b64encode(data).decode('ascii')}"
            tags.append(f'<img src="{_esc(src)}" width="{int(i.width)}" height="{int(i.height)}" '
                        f'alt="{_esc(f"image {i.sha256[:12]}")}">')  # fmt: skip
    return f'<div class="images">{"".join(tags)}</div>' if tags else ""


def conversation_to_html(full: FullConversation, images: ImageStore | None = None) -> str:
    c = full.conversation
    meta = [f"Created {_when(c.created_at)}", f"last active {_when(c.updated_at)}"]
    if c.model:
        meta.append(f"model {c.model}")
    parts = [
        f'<article id="conversation-{c.id}">',
        f"<h1>{_esc(c.title or 'Untitled')}</h1>",
        f'<p class="meta">{_esc(" · ".join(meta))}</p>',
    ]
    if c.system_prompt:
        parts.append(
            '<div class="message system"><div class="role">System prompt</div>'
            f'<div class="content">{_esc(c.system_prompt)}</div></div>'
        )
    for m in _branch(full):
        receipt = _receipt_line(m) if m.role == "assistant" else ""
        parts.append(
            f'<div class="message {_esc(m.role)}" id="message-{m.id}"><div class="role">{_esc(_heading(m))}</div>'
            f'<div class="content">{_esc(m.content)}</div>'
            + _html_images(m, images)
            + (f'<div class="receipt">{_esc(receipt)}</div>' if receipt else "")
            + "".join(f'<div class="source">{_esc(source)}</div>' for source in _sources(m))
            + "".join(_tool_block(heading, result) for heading, result in _tool_calls(m))
            + "</div>"
        )
    others = _other_branches(full)
    if others:
        parts.append(
            f'<p class="note">This conversation has {others} other branch(es); export it as JSON to keep them.</p>'
        )
    parts.append("</article>")
    return "\n".join(parts)


def write_html(
    conversations: Iterable[FullConversation], out: TextIO, *, contents: Sequence[tuple[int, str]] | None = None,
    images: ImageStore | None = None,
) -> None:  # fmt: skip
    """One page; `contents` (id, title) adds a table of contents, so conversations can stream in after it."""
    page_title = contents[0][1] if contents and len(contents) == 1 else f"{len(contents or ())} conversations"
    out.write(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="LlamaDesk {_esc(__version__)}">\n'
        f"<title>{_esc(page_title)} — LlamaDesk</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
    )
    if contents and len(contents) > 1:
        out.write("<nav><ul>\n")
        for cid, title in contents:
            out.write(f'<li><a href="#conversation-{cid}">{_esc(title or "Untitled")}</a></li>\n')
        out.write("</ul></nav>\n")
    for full in conversations:
        out.write(conversation_to_html(full, images) + "\n")
    out.write("</body>\n</html>\n")


# -- from the history -----------------------------------------------------------------------------------------


def _conversations(history: History, cids: Sequence[int]) -> Iterable[FullConversation]:
    for cid in cids:
        yield history.full_conversation(cid)


def export_conversations(
    history: History, cids: Sequence[int] | None, fmt: str, out: TextIO, *, link: ImageLink | None = None
) -> int:
    """Writes conversations `cids` (None: every one not in the trash, oldest first) to `out`; returns how many.

    Images: JSON and HTML carry them (base64, data: URLs); Markdown links them through `link` (by default to
    the files in LlamaDesk's data folder; `export_to_path` copies them beside the export instead).

    Everything is read from one snapshot, so a reply finishing meanwhile cannot make the file inconsistent.
    """
    if fmt not in FORMATS:
        raise HistoryError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    with history.snapshot():
        if cids is None:
            listed = sorted(history.list_conversations(), key=lambda c: c.id)
        else:
            # Every id is looked up before anything is written: an unknown one fails with nothing in `out`.
            listed = [history.get_conversation(cid) for cid in dict.fromkeys(cids)]
        cids = [c.id for c in listed]
        if fmt == "json":
            write_json(_conversations(history, cids), out, images=history.images)
        elif fmt == "md":
            write_markdown(_conversations(history, cids), out, link=link or store_link(history.images))
        else:
            write_html(_conversations(history, cids), out, contents=[(c.id, c.title) for c in listed],
                       images=history.images)  # fmt: skip
    return len(cids)


def export_to_path(history: History, cids: Sequence[int] | None, fmt: str, path: Path) -> int:
    """Like `export_conversations`, into `path`, which appears whole or not at all (written beside, then renamed).

    Markdown's images are copied into the folder `<name>_images/` beside it and linked by relative paths, so the
    export opens the same anywhere it is moved with its folder (what a saved web page does)."""
    path = Path(path)
    copies: dict[str, MessageImage] = {}
    folder = path.with_name(f"{path.stem}_images")

    def link(image: MessageImage) -> str:
        copies[image.sha256] = image
        return f"{folder.name}/{image.sha256}{_suffix(image)}"

    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise HistoryError(
            f"The export could not be written to {path} ({exc.strerror or exc}); check the folder."
        ) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            count = export_conversations(history, cids, fmt, out, link=link if fmt == "md" else None)
        _copy_images(history, copies.values(), folder)
        os.replace(tmp, path)
    except OSError as exc:
        raise HistoryError(
            f"The export could not be written to {path} ({exc.strerror or exc}); free some space."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _suffix(image: MessageImage) -> str:
    from llamadesk.core.images import SUFFIXES

    return SUFFIXES.get(image.mime, ".png")


def _copy_images(history: History, images: Iterable[MessageImage], folder: Path) -> None:
    """Copies the images a Markdown export links into `folder` (made when there is one); a lost file is left out
    (its link then points at nothing, as the image itself is gone)."""
    for image in images:
        source = history.images.path(image.sha256)
        if source is None:
            log.warning("Image %s left out of the export: it is no longer stored", image.sha256[:12])
            continue
        folder.mkdir(exist_ok=True)
        shutil.copyfile(source, folder / f"{image.sha256}{_suffix(image)}")
