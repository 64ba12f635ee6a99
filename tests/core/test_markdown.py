"""Markdown for the chat: inert (no raw HTML, no images, only web and mail links), highlighted, numbered blocks."""

from __future__ import annotations

import pytest

from llamadesk.core.markdown import (
    DARK,
    LIGHT,
    MAX_HIGHLIGHT_CHARS,
    copy_href,
    is_safe_link,
    parse_copy_href,
    render_markdown,
    render_plain,
    stable_prefix_length,
)


def test_raw_html_is_shown_as_text() -> None:
    out = render_markdown('<script>alert(1)</script>\n\nhi <b onclick="x()">bold</b> <img src="https://e.x/p.png">')
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html
    assert "<b " not in out.html and "&lt;b onclick" in out.html
    assert "<img" not in out.html


def test_images_become_a_link_placeholder_and_are_never_loaded() -> None:
    text = "![a cat](https://example.org/cat.png) ![local](file:///etc/passwd) ![x](data:image/png;base64,AA)"
    out = render_markdown(text)
    assert "<img" not in out.html
    assert '<a href="https://example.org/cat.png"' in out.html and "[image: a cat]" in out.html
    assert "![local](file:///etc/passwd) ![x](data:image/png;base64,AA)" in out.html  # unsafe: literal text
    assert out.links == ("https://example.org/cat.png",) and out.html.count("<a ") == 1


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "file:///etc/passwd", "data:text/html,<b>x</b>", "vbscript:x",
     "llamadesk-copy:0", "ftp://example.org/x"],
)  # fmt: skip
def test_only_web_and_mail_links_are_links(url: str) -> None:
    out = render_markdown(f"[click]({url}) and <{url}>")
    assert "<a " not in out.html and out.links == ()
    assert not is_safe_link(url)


def test_web_links_are_kept_with_their_address() -> None:
    out = render_markdown("[docs](https://example.org/a?b=1&c=2) <mailto:me@example.org> <https://x.org>")
    assert out.links == ("https://example.org/a?b=1&c=2", "mailto:me@example.org", "https://x.org")
    assert 'href="https://example.org/a?b=1&amp;c=2"' in out.html


def test_code_is_highlighted_with_inline_styles_and_numbered_for_copy() -> None:
    out = render_markdown("```python\ndef f():\n    return 1\n```\n\n```\nplain <text>\n```\n", first_block=3)
    assert [b.language for b in out.code_blocks] == ["python", ""]
    assert out.code_blocks[0].code == "def f():\n    return 1\n" and out.code_blocks[1].code == "plain <text>\n"
    assert 'style="color:' in out.html and "class=" not in out.html  # inline styles: QTextDocument has no CSS
    assert f'href="{copy_href(3)}"' in out.html and f'href="{copy_href(4)}"' in out.html
    assert "plain &lt;text&gt;" in out.html
    assert parse_copy_href(copy_href(12)) == 12 and parse_copy_href("https://x") is None
    assert parse_copy_href("llamadesk-copy:x") is None


def test_unknown_languages_and_huge_blocks_stay_plain() -> None:
    out = render_markdown("```nosuchlang\n<x>\n```")
    assert "&lt;x&gt;" in out.html and out.code_blocks[0].language == "nosuchlang"
    big = "x = 1\n" * (MAX_HIGHLIGHT_CHARS // 6 + 10)
    out = render_markdown(f"```python\n{big}```")
    assert "color" not in out.html.split("<pre", 1)[1] and out.code_blocks[0].code == big


def test_tables_lists_and_themes() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\n1. one\n2. two\n\n- x\n\n> quote\n\n~~gone~~"
    light, dark = render_markdown(text, theme=LIGHT), render_markdown(text, theme=DARK)
    assert "<table" in light.html and "<ol>" in light.html and "<ul>" in light.html and "<s>gone</s>" in light.html
    assert light.html != dark.html and DARK.code_bg in render_markdown("```\nx\n```", theme=DARK).html


@pytest.mark.parametrize(
    ("text", "stable"),
    [
        ("", 0),
        ("one line", 0),
        ("para one\n\npara two", len("para one\n\n")),
        ("a\n\n```\nx\n\ny", len("a\n\n")),  # the blank line inside the open fence does not count
        ("a\n\n```\nx\n\ny\n```\n\nz", len("a\n\n```\nx\n\ny\n```\n\n")),
        ("~~~\nx\n```\n\ny", 0),  # a fence only closes with its own kind
        ("a\n\n", 3),
    ],
)
def test_the_stable_prefix_ends_after_the_last_finished_block(text: str, stable: int) -> None:
    assert stable_prefix_length(text) == stable


def test_your_own_messages_are_escaped_text() -> None:
    assert render_plain("a <b>\n  c") == "<p>a &lt;b&gt;<br> &nbsp;c</p>"
