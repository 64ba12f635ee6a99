"""The conversation's tree of messages: the branch shown, each message's alternatives, the compact tree outline."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from llamadesk.core.history.models import Message


@dataclass
class Tree:
    """Every message of a conversation, indexed: children in creation order (the alternatives of a turn)."""

    by_id: dict[int, Message]
    children: dict[int | None, list[Message]] = field(default_factory=dict)
    position: dict[int, int] = field(default_factory=dict)  # message id → its index among its siblings

    @classmethod
    def build(cls, messages: Sequence[Message]) -> Tree:
        children: defaultdict[int | None, list[Message]] = defaultdict(list)
        for m in messages:  # oldest first: siblings come out in creation order
            children[m.parent_id].append(m)
        position = {m.id: i for siblings in children.values() for i, m in enumerate(siblings)}
        return cls({m.id: m for m in messages}, dict(children), position)

    def branch(self, leaf: int | None) -> list[Message]:
        """Root first, down to `leaf`."""
        out: list[Message] = []
        seen: set[int] = set()
        current = self.by_id.get(leaf) if leaf is not None else None
        while current is not None and current.id not in seen:
            seen.add(current.id)
            out.append(current)
            current = self.by_id.get(current.parent_id) if current.parent_id is not None else None
        out.reverse()
        return out

    def siblings(self, message: Message) -> list[Message]:
        return self.children.get(message.parent_id, [message])

    def alternative(self, message: Message) -> tuple[int, int]:
        """(place from 1, how many) among the messages that answer the same parent."""
        return self.position.get(message.id, 0) + 1, len(self.siblings(message))


@dataclass(frozen=True)
class OutlineNode:
    """One line of the branch tree dialog. Runs of single replies stay at one level; only a message with
    several replies nests them, so a long linear chat is a flat list and depth counts real branch points."""

    message: Message
    alternatives: tuple[tuple[str, list[OutlineNode]], ...] = ()  # (label, nodes) per reply at a branch point


def outline(tree: Tree) -> list[OutlineNode]:
    """The tree as nested runs, built without recursion (a chat can be thousands of messages deep)."""
    roots = tree.children.get(None, [])
    top: list[OutlineNode] = []
    if len(roots) == 1:
        return _run(tree, roots[0])
    for i, root in enumerate(roots):
        top.append(OutlineNode(root, ((f"Start {i + 1} of {len(roots)}", _run(tree, root)),)))
    return top


def _run(tree: Tree, first: Message) -> list[OutlineNode]:
    result: list[OutlineNode] = []
    stack: list[tuple[list[OutlineNode], Message]] = [(result, first)]
    while stack:
        target, message = stack.pop()
        while True:
            kids = tree.children.get(message.id, [])
            if len(kids) <= 1:
                target.append(OutlineNode(message))
                if not kids:
                    break
                message = kids[0]
                continue
            groups: list[tuple[str, list[OutlineNode]]] = []
            for i, kid in enumerate(kids):
                nodes: list[OutlineNode] = []
                groups.append((f"Alternative {i + 1} of {len(kids)}", nodes))
                stack.append((nodes, kid))
            target.append(OutlineNode(message, tuple(groups)))
            break
    return result


_FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})[\w+#.-]*\s*$")  # ```python or ~~~ alone on its line
_TABLE_RULE_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")  # |---|:---:|
_HRULE_RE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")  # --- *** ___
_LINE_START_RE = re.compile(r"^\s*(#{1,6}\s+|(>\s?)+|[-*+]\s+(\[[ xX]\]\s+)?)")  # heading, quote, bullet
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [text](url) and ![alt](src)
# **bold**, *em*, ~~struck~~ and `code`; __bold__ and _em_ only outside words, so snake_case_names keep theirs.
_EMPHASIS_RE = re.compile(r"(\*\*|\*|~~|`+)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")


def _plain_line(line: str) -> str:
    """One Markdown line as the words a reader sees; fences and rules become nothing."""
    if _FENCE_RE.match(line) or _TABLE_RULE_RE.match(line) or _HRULE_RE.match(line):
        return ""
    line = _LINE_START_RE.sub("", line)
    if line.strip().startswith("|") or line.strip().endswith("|"):  # a table row: its cells, · between them
        line = " · ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
    line = _LINK_RE.sub(r"\1", line)
    return _EMPHASIS_RE.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(4), line)


def plain_text(markdown: str) -> str:
    """Markdown as one line of plain text: fences, table rules, headings' #, quotes, bullets and emphasis gone."""
    return " ".join(" ".join(_plain_line(line) for line in markdown.splitlines()).split())


def snippet(message: Message, limit: int = 80) -> str:
    """ "You: the first words…" for one line of a tree or menu, as plain text (Markdown syntax left out)."""
    who = {"user": "You", "assistant": "Assistant", "system": "System"}.get(message.role, message.role)
    text = plain_text(message.content) or " ".join(message.content.split()) or "(empty)"
    return f"{who}: {text if len(text) <= limit else text[: limit - 1] + '…'}"
