"""Fills a message's QTextDocument: markdown for replies (HTML cached per text), plain text for yours."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QFontDatabase, QTextDocument

from llamadesk.core.markdown import (
    LIGHT,
    CodeBlock,
    Rendered,
    Theme,
    break_long_runs,
    render_markdown,
    stable_prefix_length,
)

HTML_CACHE_SIZE = 512
PREFIX_CACHE_SIZE = 8
STYLE_SHEET = "p { margin-top: 0px; margin-bottom: 6px; } li { margin-bottom: 2px; } pre { margin: 0px; }"


@dataclass(frozen=True)
class RenderInfo:
    """What a rendered message holds besides its text: its code blocks (for Copy) and links."""

    code_blocks: tuple[CodeBlock, ...] = ()
    links: tuple[str, ...] = ()


EMPTY = RenderInfo()
PlainRenderer = Callable[[QTextDocument, str, str], object]  # (document, text, role): the old, simple hook


class MessageRenderer:
    """Renders replies as markdown and your messages as plain text. Complete replies are rendered whole and
    cached by text; a streaming reply renders its finished blocks once and only its last block per update."""

    def __init__(self, theme: Theme = LIGHT) -> None:
        self.theme = theme
        self.mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family() or "monospace"
        self._html: OrderedDict[str, Rendered] = OrderedDict()
        self._prefixes: OrderedDict[str, Rendered] = OrderedDict()
        self.renders = 0  # markdown renders done (tests and the benchmark read it)

    def set_theme(self, theme: Theme) -> None:
        if theme != self.theme:
            self.theme = theme
            self._html.clear()
            self._prefixes.clear()

    def __call__(
        self, doc: QTextDocument, text: str, role: str, streaming: bool = False, citations: int = 0
    ) -> RenderInfo:
        if role != "assistant" or not text:
            doc.setPlainText(break_long_runs(text))  # a pasted 1 MB word would take a minute to lay out
            return EMPTY
        rendered = self.rendered(text, streaming=streaming, citations=citations)
        doc.setDefaultStyleSheet(STYLE_SHEET)
        doc.setHtml(rendered.html)
        return RenderInfo(rendered.code_blocks, rendered.links)

    def rendered(self, text: str, *, streaming: bool = False, citations: int = 0) -> Rendered:
        key = f"{citations}\x00{text}" if citations else text  # the same text links its [n] only with sources
        if not streaming:
            return self._cached(self._html, key, HTML_CACHE_SIZE, lambda: self._render(text, 0, citations))
        split = stable_prefix_length(text)
        if split == 0:
            return self._render(text, 0, citations)
        prefix_text = text[:split]
        prefix = self._cached(self._prefixes, key[: len(key) - len(text) + split], PREFIX_CACHE_SIZE,
                              lambda: self._render(prefix_text, 0, citations))  # fmt: skip
        tail = self._render(text[split:], len(prefix.code_blocks), citations)
        return Rendered(prefix.html + tail.html, prefix.code_blocks + tail.code_blocks, prefix.links + tail.links)

    def _render(self, text: str, first_block: int, citations: int = 0) -> Rendered:
        self.renders += 1
        return render_markdown(text, theme=self.theme, first_block=first_block, mono=self.mono, citations=citations)

    @staticmethod
    def _cached(cache: OrderedDict[str, Rendered], key: str, limit: int, make: Callable[[], Rendered]) -> Rendered:
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        made = make()
        cache[key] = made
        if len(cache) > limit:
            cache.popitem(last=False)
        return made
