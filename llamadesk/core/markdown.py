"""Markdown (markdown-it-py) with Pygments-highlighted code → inert HTML for QTextDocument's rich-text subset."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

COPY_SCHEME = "llamadesk-copy"  # href of a code block's Copy link: llamadesk-copy:<block number>
CITE_SCHEME = "llamadesk-cite"  # href of a citation [n] of a reply that quoted sources: llamadesk-cite:<n>
_CITATION = re.compile(r"\[(\d{1,3})\]")
SAFE_SCHEMES = ("http", "https", "mailto")  # links kept as links; everything else stays literal text
MAX_HIGHLIGHT_CHARS = 200_000  # beyond this a code block is shown plain: Pygments would take too long


@dataclass(frozen=True)
class Theme:
    """Colours of the markup that QTextDocument cannot take from the widget palette."""

    dark: bool
    code_bg: str
    code_header_bg: str
    code_header: str
    inline_code_bg: str
    table_border: str
    link: str
    quote: str
    pygments_style: str


LIGHT = Theme(False, "#f6f8fa", "#e4e8ec", "#57606a", "#eaeef2", "#c8ccd1", "#0969da", "#57606a", "default")
DARK = Theme(True, "#0d1117", "#21262d", "#8b949e", "#2d333b", "#444c56", "#58a6ff", "#8b949e", "github-dark")


@dataclass(frozen=True)
class CodeBlock:
    """A fenced or indented code block: what its Copy action puts on the clipboard."""

    language: str
    code: str


@dataclass(frozen=True)
class Rendered:
    """HTML for a QTextDocument, with the code blocks and links it holds (numbered in order of appearance)."""

    html: str
    code_blocks: tuple[CodeBlock, ...] = ()
    links: tuple[str, ...] = field(default_factory=tuple)


def is_safe_link(url: str) -> bool:
    """Only web and mail links are links; javascript:, file:, data: and our own schemes stay text."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in SAFE_SCHEMES


def copy_href(block: int) -> str:
    return f"{COPY_SCHEME}:{block}"


def parse_cite_href(href: str) -> int | None:
    """The source number of a citation link, or None for any other href."""
    prefix = CITE_SCHEME + ":"
    if href.startswith(prefix) and href[len(prefix) :].isdigit():
        return int(href[len(prefix) :])
    return None


def parse_copy_href(href: str) -> int | None:
    """The code block number of a Copy link, or None for any other href."""
    prefix = COPY_SCHEME + ":"
    if href.startswith(prefix) and href[len(prefix) :].isdigit():
        return int(href[len(prefix) :])
    return None


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

# -- hostile output: terminal escapes, invisible controls, bidi overrides, endless words -----------------------------
LONG_RUN = 1000  # a "word" longer than this gets break opportunities: Qt lays out one long word in quadratic time
BREAK_EVERY = 200
# Terminal escapes: CSI (colours, cursor) and OSC (window titles, links)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
CONTROL_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BIDI_NAMES = {
    "\u202a": "LRE", "\u202b": "RLE", "\u202c": "PDF", "\u202d": "LRO", "\u202e": "RLO",
    "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI", "\u2069": "PDI",
}  # fmt: skip
_LONG_RUN = re.compile(r"\S{" + str(LONG_RUN) + ",}")


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _BIDI_NAMES:
        return f"[{_BIDI_NAMES[ch]}]"  # shown, never obeyed: it cannot reorder what you read ("Trojan Source")
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # the control picture: ␀, ␛, …
    return "\u2421" if code == 0x7F else "\ufffd"


def inert_text(text: str) -> str:
    """Model output with terminal escape sequences removed and every other control character (C0, C1, bidi
    embeddings, overrides and isolates) replaced by a visible stand-in; tabs and line breaks stay."""
    if "\x1b" in text:
        text = ANSI_ESCAPE.sub("", text)
    return CONTROL_CHAR.sub(_visible, text)


def break_long_runs(text: str) -> str:
    """Zero-width spaces inside runs of more than LONG_RUN non-space characters (display only)."""
    if len(text) < LONG_RUN:
        return text
    return _LONG_RUN.sub(lambda m: _chunked(m.group()), text)


def _chunked(run: str) -> str:
    return "\u200b".join(run[i : i + BREAK_EVERY] for i in range(0, len(run), BREAK_EVERY))


def stable_prefix_length(text: str) -> int:
    """Where the finished blocks of a streaming text end: after the last blank line outside a code fence.

    Text before that point no longer changes as tokens arrive, so its HTML can be rendered once and kept while
    only the tail is rendered again."""
    fence: str | None = None
    pos = 0
    stable = 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if not line.endswith("\n"):
            break  # the last, unfinished line
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
            elif not line.strip():
                stable = pos
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not line.strip(
            " `~\n"
        ):
            fence = None
    return stable


class _Renderer(RendererHTML):
    """markdown-it's HTML renderer with the rules Qt's rich text needs; state lives in `env`."""

    def text(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        escaped = html.escape(break_long_runs(tokens[idx].content), quote=False)
        citations: int = env["citations"]
        if not citations or "[" not in escaped:
            return escaped
        theme: Theme = env["theme"]

        def link(match: re.Match[str]) -> str:  # [n] of a quoted source: a link to it; any other [n] stays text
            n = int(match.group(1))
            if not 1 <= n <= citations:
                return match.group(0)
            return f'<a href="{CITE_SCHEME}:{n}" style="color:{theme.link}">[{n}]</a>'

        return _CITATION.sub(link, escaped)

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
        return _code_block(token.content, language, env)

    def code_block(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return _code_block(tokens[idx].content, "", env)

    def code_inline(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        theme: Theme = env["theme"]
        return (
            f'<code style="background-color:{theme.inline_code_bg}; font-family:{env["mono"]}">'
            f"{html.escape(break_long_runs(tokens[idx].content), quote=False)}</code>"
        )

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        """Never an <img>: a picture would be fetched. A text placeholder that links to it instead."""
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = self.renderInlineAsText(token.children or [], options, env) or "image"
        label = html.escape(f"[image: {alt}]", quote=False)
        if not is_safe_link(src):
            return label
        env["links"].append(src)
        theme: Theme = env["theme"]
        return f'<a href="{html.escape(src)}" style="color:{theme.link}">{label}</a>'

    def link_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        href = str(tokens[idx].attrGet("href") or "")
        env["links"].append(href)
        theme: Theme = env["theme"]
        return f'<a href="{html.escape(href)}" style="color:{theme.link}">'

    def table_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        theme: Theme = env["theme"]
        return (
            f'<table border="1" cellspacing="0" cellpadding="5" '
            f'style="border-collapse:collapse; border-color:{theme.table_border}; margin-top:4px; margin-bottom:6px">\n'
        )

    def blockquote_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        theme: Theme = env["theme"]
        return f'<blockquote style="color:{theme.quote}">\n'

    def html_block(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f"<p>{html.escape(tokens[idx].content)}</p>"  # never reached with html off; kept inert anyway

    def html_inline(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return html.escape(tokens[idx].content)


def _code_block(code: str, language: str, env: EnvType) -> str:
    theme: Theme = env["theme"]
    number = env["first_block"] + len(env["blocks"])
    env["blocks"].append(CodeBlock(language, code))
    body = code[:-1] if code.endswith("\n") else code
    highlighted = _highlight(body, language, theme) if len(body) <= MAX_HIGHLIGHT_CHARS else html.escape(body)
    label = html.escape(language or "code")
    head = f"background-color:{theme.code_header_bg}; font-size:small"
    return (
        f'<table width="100%" border="0" cellspacing="0" cellpadding="6" '
        f'style="background-color:{theme.code_bg}; margin-top:6px; margin-bottom:6px">'
        f'<tr><td style="color:{theme.code_header}; {head}">{label}</td>'
        f'<td align="right" style="{head}"><a href="{copy_href(number)}" '
        f'style="color:{theme.link}; text-decoration:none">Copy code</a></td></tr>'
        f'<tr><td colspan="2"><pre style="font-family:{env["mono"]}; margin:0">{highlighted}</pre></td></tr>'
        "</table>\n"
    )


_FORMATTERS: dict[str, HtmlFormatter[str]] = {}


def _highlight(code: str, language: str, theme: Theme) -> str:
    try:
        lexer = get_lexer_by_name(language.lower(), stripnl=False, ensurenl=False) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return html.escape(code, quote=False)
    formatter = _FORMATTERS.get(theme.pygments_style)
    if formatter is None:
        formatter = HtmlFormatter(nowrap=True, noclasses=True, style=theme.pygments_style)
        _FORMATTERS[theme.pygments_style] = formatter
    out: str = highlight(code, lexer, formatter)
    return out[:-1] if out.endswith("\n") and not code.endswith("\n") else out


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}, renderer_cls=_Renderer)
    md.enable(["table", "strikethrough"])
    md.validateLink = is_safe_link  # type: ignore[method-assign]  # unsafe links are not parsed as links at all
    return md


_MD = _parser()


def render_markdown(
    text: str, *, theme: Theme = LIGHT, first_block: int = 0, mono: str = "monospace", citations: int = 0
) -> Rendered:
    """Renders model output. Raw HTML is shown as text, images become a link placeholder, only http(s) and
    mailto links survive (opening them is the caller's business), code blocks are numbered from `first_block`;
    with `citations` (the sources its prompt quoted), [1]…[citations] in the text link to them."""
    env: dict[str, Any] = {"theme": theme, "first_block": first_block, "blocks": [], "links": [], "mono": mono,
                           "citations": citations}  # fmt: skip
    out = _MD.render(inert_text(text), env)
    return Rendered(out, tuple(env["blocks"]), tuple(env["links"]))


def render_plain(text: str) -> str:
    """A user's message as HTML: escaped, line breaks and runs of spaces kept."""
    escaped = html.escape(text, quote=False).replace("  ", " &nbsp;")
    return "<p>" + escaped.replace("\n", "<br>") + "</p>"


def warm_up() -> None:
    """Loads Pygments' lexer table and a formatter (~60 ms the first time) so the first reply does not pay it."""
    render_markdown("```python\nx = 1\n```")
