"""Images in the history (schema v4): stored once in the ImageStore beside the database, referenced from messages,
sent again with every later turn, freed when nothing refers to them, exported and imported."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from PIL import Image, PngImagePlugin

from llamadesk.core.conversation.plan import OverflowPolicy
from llamadesk.core.conversation.turn import Planner, begin_turn, entries_of
from llamadesk.core.engines import vision
from llamadesk.core.history import History, export_conversations, export_to_path, parse_export
from llamadesk.core.history.importer import ImportFileError
from llamadesk.core.history.migrations import backup_path
from llamadesk.core.history.models import MessageImage
from llamadesk.core.sampling import SamplingParams

DATA = Path(__file__).resolve().parent.parent / "data"


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History(tmp_path / "data" / "history.sqlite3") as h:
        yield h


def attach(history: History, *colors: tuple[int, int, int]) -> list[MessageImage]:
    """Stores pictures the way the chat does (ImageStore.add) and returns their references."""
    refs = []
    for color in colors:
        image = history.images.add(png(color))
        refs.append(MessageImage(image.sha256, image.mime, image.width, image.height))
    return refs


def age(history: History, *hashes: str) -> None:
    """Makes stored images older than the garbage collection's grace period (an hour)."""
    old = time.time() - 2 * 3600
    for sha in hashes:
        path = history.images.path(sha)
        assert path is not None
        os.utime(path, (old, old))


# -- schema ---------------------------------------------------------------------------------------------------


def test_migrates_the_v3_history_without_losing_a_message(tmp_path: Path) -> None:
    db = tmp_path / "data" / "history.sqlite3"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.executescript((DATA / "history_v3.sql").read_text(encoding="utf-8"))
    before = conn.execute("SELECT id, content FROM messages ORDER BY id").fetchall()
    conn.close()
    with History(db, trash_retention_s=None) as h:
        assert h.backup_path == backup_path(db, 3) and h.backup_path.exists()
        conversations = [*h.list_conversations(), *h.list_trash()]
        after = sorted((m.id, m.content) for c in conversations for m in h.all_messages(c.id))
        assert after == before
        assert all(m.images == () for c in conversations for m in h.all_messages(c.id))
        assert h.referenced_images() == set()
        # The new table works on the upgraded file.
        cid = conversations[0].id
        ref = attach(h, (1, 2, 3))
        mid = h.add_message(cid, "user", "and this?", images=ref).id
        assert h.get_message(mid).images == tuple(ref)


def test_v4_dump_reads_its_images_in_order(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript((DATA / "history_v4.sql").read_text(encoding="utf-8"))
    conn.close()
    with History(db, trash_retention_s=None) as h:
        conv = next(c for c in h.list_conversations() if c.title == "What is in this picture?")
        question = h.messages(conv.id)[0]
        assert [i.sha256 for i in question.images] == [hashlib.sha256(b"cat").hexdigest(),
                                                      hashlib.sha256(b"dog").hexdigest()]  # fmt: skip
        assert h.backup_path is None


# -- round trip and the prompt --------------------------------------------------------------------------------


def test_a_message_keeps_its_images_in_order_on_every_read(history: History) -> None:
    refs = attach(history, (200, 0, 0), (0, 0, 200))
    cid = history.create_conversation().id
    user = history.add_message(cid, "user", "compare these", images=list(reversed(refs)))
    reply = history.add_message(cid, "assistant", "red and blue")
    expected = (refs[1], refs[0])
    assert user.images == expected
    assert history.messages(cid)[0].images == expected and history.messages(cid)[1].images == ()
    assert history.all_messages(cid)[0].images == expected
    assert history.get_message(user.id).images == expected
    assert history.children(cid, None)[0].images == expected
    assert history.full_conversation(cid).messages[0].images == expected
    assert reply.images == ()
    assert expected[0].mime == "image/png" and (expected[0].width, expected[0].height) == (40, 30)
    assert history.referenced_images() == {r.sha256 for r in refs}


def test_every_later_turn_sends_the_images_again(history: History) -> None:
    (ref,) = attach(history, (10, 200, 10))
    cid = history.create_conversation().id
    planner = Planner(OverflowPolicy.STOP, n_ctx=4096)
    turn = begin_turn(history, planner, cid, "what colour?", SamplingParams(max_tokens=16), "", images=[ref])
    assert vision.image_hashes(turn.messages[-1]) == [ref.sha256]
    turn.reply.finish(finish_reason="stop", content="green")
    history.add_message(cid, "user", "and its shape?")
    plan = planner.plan("", entries_of(history.messages(cid), lambda m: m.id), 16)
    sent = [(m["role"], vision.image_hashes(m)) for m in plan.messages]
    assert sent == [("user", [ref.sha256]), ("assistant", []), ("user", [])]


def test_an_image_only_message_is_sent(history: History) -> None:
    (ref,) = attach(history, (1, 1, 1))
    cid = history.create_conversation().id
    history.add_message(cid, "user", "", images=[ref])
    entries = entries_of(history.messages(cid), lambda m: m.id)
    assert [e.images for e in entries] == [(ref.sha256,)]


# -- garbage collection ---------------------------------------------------------------------------------------


def test_deleting_frees_only_the_images_nothing_else_uses(history: History) -> None:
    shared, own = attach(history, (50, 50, 50), (90, 0, 90))
    (fresh,) = attach(history, (0, 90, 90))  # stored a moment ago by a message not yet written: kept (grace)
    first = history.create_conversation().id
    history.add_message(first, "user", "two", images=[shared, own])
    second = history.create_conversation().id
    history.add_message(second, "user", "one", images=[shared])
    age(history, shared.sha256, own.sha256)

    history.delete_conversation(first)
    assert history.images.hashes() == {shared.sha256, fresh.sha256}
    assert history.referenced_images() == {shared.sha256}

    history.trash_conversation(second)
    assert history.images.path(shared.sha256) is not None  # in the trash it is still referenced
    assert history.purge_trash() == 1
    assert history.images.hashes() == {fresh.sha256}
    assert history.referenced_images() == set()


def test_a_history_in_memory_never_collects_the_data_folders_images(tmp_path: Path) -> None:
    # tests/conftest.py gives every test its own LLAMADESK_HOME, so the data folder here is this test's.
    with History(Path(":memory:")) as h:
        (ref,) = attach(h, (3, 3, 3))
        age(h, ref.sha256)
        cid = h.create_conversation().id
        h.add_message(cid, "user", "x")
        h.delete_conversation(cid)
        assert h.collect_images() == (0, 0)
        assert h.images.path(ref.sha256) is not None


# -- export and import ----------------------------------------------------------------------------------------


def export_text(history: History, fmt: str, cids: list[int] | None = None) -> str:
    out = io.StringIO()
    export_conversations(history, cids, fmt, out)
    return out.getvalue()


def without_ids(document: dict) -> list:
    def clean(c: dict) -> dict:
        ids = {m["id"]: k for k, m in enumerate(c["messages"])}
        messages = [{**m, "id": ids[m["id"]], "parent_id": ids.get(m["parent_id"])} for m in c["messages"]]
        return {**c, "id": 0, "leaf_message_id": ids.get(c["leaf_message_id"]), "messages": messages}

    return [clean(c) for c in document["conversations"]]


def test_json_carries_the_images_and_imports_them_into_the_store(history: History, tmp_path: Path) -> None:
    refs = attach(history, (250, 120, 0), (0, 120, 250))
    cid = history.create_conversation("pictures").id
    history.add_message(cid, "user", "look", images=refs)
    history.add_message(cid, "assistant", "orange and blue")
    text = export_text(history, "json")
    document = json.loads(text)
    schema = json.loads((DATA.parent.parent / "docs" / "history-export.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    images = document["conversations"][0]["messages"][0]["images"]
    assert [i["sha256"] for i in images] == [r.sha256 for r in refs]
    for image in images:
        data = base64.b64decode(image["data"])
        assert hashlib.sha256(data).hexdigest() == image["sha256"]
        assert image["mime"] == "image/png" and (image["width"], image["height"]) == (40, 30)
    assert "images" not in document["conversations"][0]["messages"][1]

    with History(tmp_path / "elsewhere" / "history.sqlite3") as other:
        assert other.images.hashes() == set()
        (new_cid,) = other.import_conversations(parse_export(text))
        assert other.images.hashes() == {r.sha256 for r in refs}
        assert other.messages(new_cid)[0].images == tuple(refs)
        for r in refs:
            assert other.images.read(r.sha256) == history.images.read(r.sha256)
        assert without_ids(json.loads(export_text(other, "json"))) == without_ids(document)


def test_import_refuses_an_image_it_cannot_read_before_writing_anything(history: History) -> None:
    (ref,) = attach(history, (7, 7, 7))
    cid = history.create_conversation().id
    history.add_message(cid, "user", "x", images=[ref])
    document = json.loads(export_text(history, "json"))
    image = document["conversations"][0]["messages"][0]["images"][0]
    for data, field, words in [
        ("not base64!", "conversations[0].messages[0].images[0].data", "base64"),
        (base64.b64encode(b"GIF89a cut short").decode(), "conversations[0].messages[0].images[0].data",
         "not an image LlamaDesk can read"),
    ]:  # fmt: skip
        image["data"] = data
        with pytest.raises(ImportFileError) as err:
            parse_export(json.dumps(document))
        assert err.value.field == field and words in str(err.value)
        assert str(err.value).startswith("Nothing was imported from the file:")
    document["conversations"][0]["messages"][0]["images"] = "cat.png"
    with pytest.raises(ImportFileError, match=r"images must be an array"):
        parse_export(json.dumps(document))


def test_html_carries_the_images_as_escaped_data_urls(history: History) -> None:
    (ref,) = attach(history, (0, 0, 0))
    cid = history.create_conversation('<img src="https://evil.example/x.png">').id
    history.add_message(cid, "user", "<script>alert(1)</script>", images=[ref])
    page = export_text(history, "html")
    data = base64.b64encode(history.images.read(ref.sha256)).decode()
    assert f'<img src="data:image/png;base64,{data}" width="40" height="30"' in page
    assert "img-src data:" in page and "default-src 'none'" in page
    # Every image on the page is a data: URL; the title's markup is text.
    assert re.findall(r'<img src="([a-z]+):', page) == ["data"]
    assert "&lt;img src=&quot;https://evil.example/x.png&quot;&gt;" in page


def test_markdown_links_copies_beside_the_export(history: History, tmp_path: Path) -> None:
    refs = attach(history, (30, 60, 90), (90, 60, 30))
    cid = history.create_conversation().id
    history.add_message(cid, "user", "two pictures", images=refs)
    target = tmp_path / "out" / "my chat.md"
    target.parent.mkdir()
    assert export_to_path(history, [cid], "md", target) == 1
    text = target.read_text(encoding="utf-8")
    for r in refs:
        assert f"](<my chat_images/{r.sha256}.png>)" in text
        copy = target.parent / "my chat_images" / f"{r.sha256}.png"
        assert copy.read_bytes() == history.images.read(r.sha256)
    # Written to a stream, Markdown links the files where LlamaDesk keeps them.
    streamed = export_text(history, "md", [cid])
    stored = history.images.path(refs[0].sha256)
    assert stored is not None and f"](<{stored.resolve().as_uri()}>)" in streamed


def test_an_image_lost_from_the_store_leaves_the_export_whole(history: History) -> None:
    kept, lost = attach(history, (5, 5, 5), (6, 6, 6))
    cid = history.create_conversation().id
    history.add_message(cid, "user", "x", images=[kept, lost])
    path = history.images.path(lost.sha256)
    assert path is not None
    path.unlink()
    images = json.loads(export_text(history, "json"))["conversations"][0]["messages"][0]["images"]
    assert [i["sha256"] for i in images] == [kept.sha256]
    assert export_text(history, "html").count("<img ") == 1


# -- the CLI, end to end, on the generated vision pair --------------------------------------------------------


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLAMADESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "llamadesk", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_cli_saves_the_images_with_the_message_and_sends_them_again(tmp_path: Path) -> None:
    from vision_factory import TOKENS_PER_IMAGE, write_tiny_vision_pair

    model, _projector = write_tiny_vision_pair(tmp_path / "models")
    home = tmp_path / "home"
    shot = tmp_path / "shot.png"
    Image.new("RGB", (40, 40), (10, 10, 200)).save(shot)
    common = ("--model", str(model), "--max-tokens", "3", "--seed", "3")
    first = run("chat", *common, "--image", str(shot), "what is this", home=home)
    assert first.returncode == 0, first.stderr
    db = home / "data" / "history.sqlite3"
    with History(db) as h:
        conv = h.list_conversations()[0]
        question = h.messages(conv.id)[0]
        (image,) = question.images
        assert h.images.path(image.sha256) is not None
        receipt = h.messages(conv.id)[-1].receipt
        assert receipt is not None and [i["sha256"] for i in receipt["images"]] == [image.sha256]
        assert [i["tokens"] for i in receipt["images"]] == [TOKENS_PER_IMAGE]

    # The next turn names no image: the history sends the first one again (the receipt records it).
    second = run("chat", *common, "--conversation", str(conv.id), "and its colour?", home=home)
    assert second.returncode == 0, second.stderr
    with History(db) as h:
        branch = h.messages(conv.id)
        assert [m.role for m in branch] == ["user", "assistant", "user", "assistant"]
        receipt = branch[-1].receipt
        assert receipt is not None and [i["sha256"] for i in receipt["images"]] == [image.sha256]

    shown = run("history", "show", str(conv.id), home=home)
    assert shown.returncode == 0, shown.stderr
    assert f"[image 40×40: {home / 'data' / 'images'}" in shown.stdout
    exported = run("history", "export", str(conv.id), "--format", "json", home=home)
    assert exported.returncode == 0, exported.stderr
    images = json.loads(exported.stdout)["conversations"][0]["messages"][0]["images"]
    assert [i["sha256"] for i in images] == [image.sha256]
    assert base64.b64decode(images[0]["data"]) == (home / "data" / "images" / image.sha256[:2] /
                                                   f"{image.sha256}.png").read_bytes()  # fmt: skip


def jpeg(exif: bytes = b"") -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 48), 60).convert("RGB").save(out, "JPEG", **({"exif": exif} if exif else {}))
    return out.getvalue()


def one_image_document(data: bytes) -> str:
    image = {"sha256": hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode()}
    message = {"id": 1, "parent_id": None, "role": "user", "content": "x", "created_at": 1.0, "images": [image]}
    conversation = {"title": "t", "created_at": 1.0, "updated_at": 1.0, "messages": [message]}
    return json.dumps({"format": "llamadesk-history", "version": 1, "conversations": [conversation]})


def test_a_stored_jpeg_round_trips_byte_for_byte(history: History, tmp_path: Path) -> None:
    photo = history.images.add(jpeg())
    assert photo.mime == "image/jpeg"
    cid = history.create_conversation().id
    history.add_message(cid, "user", "a photo", images=[MessageImage(photo.sha256, photo.mime, 64, 48)])
    text = export_text(history, "json")
    with History(tmp_path / "other" / "history.sqlite3") as other:
        (new_cid,) = other.import_conversations(parse_export(text))
        assert other.messages(new_cid)[0].images[0].sha256 == photo.sha256
        assert other.images.read(photo.sha256) == photo.data
        assert without_ids(json.loads(export_text(other, "json"))) == without_ids(json.loads(text))


def test_import_strips_what_a_file_hides_beside_the_pixels(history: History) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8825)[1] = "N"  # a GPS position
    with_gps = jpeg(exif.tobytes())
    plain = png((9, 9, 9))
    trailing = plain + b"secret payload"
    text_chunk = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "where I live")
    Image.new("RGB", (40, 30), (9, 9, 9)).save(text_chunk, "PNG", pnginfo=info)
    for raw in (with_gps, trailing, text_chunk.getvalue()):
        (full,) = parse_export(one_image_document(raw))
        (image,) = full.messages[0].images
        assert image.data is not None and image.sha256 != hashlib.sha256(raw).hexdigest()
        assert hashlib.sha256(image.data).hexdigest() == image.sha256
        assert b"secret" not in image.data and b"where I live" not in image.data
        assert "exif" not in Image.open(io.BytesIO(image.data)).info
    (full,) = parse_export(one_image_document(plain))  # already as the store keeps it: kept as is
    assert full.messages[0].images[0].sha256 == hashlib.sha256(plain).hexdigest()
