"""One turn, for every front end: what the model is sent (the branch, planned within the context by the overflow
policy, and the context sources within their budgets), then the reply's life (begun → written as it streams →
finished with its status and receipt).

The window drives a Turn from its engine thread's signals (ui/chat/session.py); the CLI and the server call
`Turn.run` in the thread that owns their engine. Either way the same object writes the history and the receipt.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llamadesk.core.conversation.lifecycle import ReplyWriter, merge_continuation, name_new_conversation
from llamadesk.core.conversation.parts import ReasoningClock, answer_of
from llamadesk.core.conversation.plan import (
    DEFAULT_TOKENS_PER_CHAR,
    MAX_TOKENS_PER_CHAR,
    MIN_TOKENS_PER_CHAR,
    Entry,
    OverflowPolicy,
    Plan,
    ids_in_spans,
    plan_prompt,
    ratio_after_overflow,
    reply_reserve,
)
from llamadesk.core.conversation.sources import (
    ContextSource,
    PromptSource,
    prompt_blocks,
    prompt_source_budget,
    with_block,
    with_sources,
)
from llamadesk.core.conversation.tool_calls import tool_calls
from llamadesk.core.engines.api import Done, FinishReason, Message, StreamEvent, Token
from llamadesk.core.errors import HistoryError, LlamaDeskError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.history.models import MessageImage
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.tools.loop import stream_with_tools

if TYPE_CHECKING:
    from llamadesk.core.tools.use import ToolUse

FIT_RETRIES = 3  # a dropping policy asks again this often when its estimate of the prompt was too low
SENT_ROLES = frozenset(("user", "assistant"))
UNSENT_STATUSES = frozenset(("streaming", "error"))


class BranchMessage(Protocol):
    """A message of a branch as the plan reads it: a stored message or a row on screen."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def status(self) -> str: ...


def entries_of(
    branch: Sequence[BranchMessage], id_of: Callable[[Any], int], *, open_reply: bool = False
) -> list[Entry]:
    """The messages of a branch that a prompt may send (sent roles, with text, not failed or still streaming);
    replies without their reasoning (parts.py), except the last one when it is `open_reply` (Continue extends it)."""
    entries = [  # inlined checks: this runs over the whole branch at Enter (10,000 messages: ~10 ms)
        Entry(
            id_of(m), m.role, answer_of(m.content) if m.role == "assistant" else m.content, position, _image_hashes(m)
        )
        for position, m in enumerate(branch)
        if (m.content or getattr(m, "images", None)) and m.role in SENT_ROLES and m.status not in UNSENT_STATUSES
    ]
    if open_reply and entries and entries[-1].role == "assistant":
        entries[-1] = entries[-1]._replace(content=branch[entries[-1].position].content)
    return entries


def _image_hashes(message: Any) -> tuple[str, ...]:
    """The ImageStore hashes of a message's images (history.MessageImage), stored or held by the shown branch."""
    images = getattr(message, "images", ())
    return tuple(i.sha256 for i in images) if images else ()


def left_out(receipt: dict[str, Any], branch_ids: list[int]) -> set[int]:
    """The ids a reply's prompt left out; `branch_ids` is the branch from the first message to its parent."""
    return ids_in_spans(branch_ids, receipt.get("excluded_spans"))


@dataclass
class Planner:
    """The context a conversation's prompts must fit, and how: the overflow policy, the model's context, and the
    tokens a character costs (an estimate, corrected by every real count the engine gives)."""

    policy: OverflowPolicy = OverflowPolicy.STOP
    n_ctx: int = 0
    tokens_per_char: float = DEFAULT_TOKENS_PER_CHAR

    def plan(
        self, system_prompt: str, entries: Sequence[Entry], max_tokens: int,
        *, excluded: set[int] | None = None, previous: set[int] | None = None,
    ) -> Plan:  # fmt: skip
        return plan_prompt(
            system_prompt, entries, policy=self.policy, n_ctx=self.n_ctx, reserve=reply_reserve(self.n_ctx, max_tokens),
            tokens_per_char=self.tokens_per_char, excluded=excluded, previous=previous,
        )  # fmt: skip

    def calibrate(self, tokens: int, messages: Sequence[Message]) -> None:
        """A real count of `messages` came back: estimates of what fits follow it from now on."""
        chars = sum(len(m["content"]) for m in messages)
        if tokens > 0 and chars >= 200:
            self.tokens_per_char = min(MAX_TOKENS_PER_CHAR, max(MIN_TOKENS_PER_CHAR, tokens / chars))

    def learn_from_refusal(self, message: str, prompt_chars: int) -> None:
        """The engine refused a prompt as too long (our estimate was low): estimate higher from now on."""
        self.tokens_per_char = ratio_after_overflow(message, prompt_chars, self.tokens_per_char)

    def receipt(self, plan: Plan, system_prompt: str) -> dict[str, Any]:
        """What the receipt keeps of a plan: the system prompt, the policy, the turns left out (as spans)."""
        extra: dict[str, Any] = {"system_prompt": system_prompt.strip(), "context_policy": self.policy.value}
        if plan.excluded:
            extra["excluded_spans"], extra["excluded_count"] = plan.spans, len(plan.excluded)
        return extra


@dataclass
class Turn:
    """One reply being made: what was sent, its writer, and the keys the turn adds to the engine's receipt."""

    cid: int
    writer: ReplyWriter
    messages: list[Message] = field(default_factory=list)
    mode: str = "chat"  # GenerationMode value: chat, continue or completion (notebook)
    extra: dict[str, Any] = field(default_factory=dict)  # receipt keys of the turn (prompt, policy, sources)
    continued: dict[str, Any] | None = None  # the receipt of the reply being continued
    excluded_ids: set[int] = field(default_factory=set)  # left out of this prompt
    base_chars: int = 0  # the reply's length when asked for (a continued reply starts with its old text)
    clock: ReasoningClock = field(default_factory=ReasoningClock)  # how long it thought, if it does
    planner: Planner | None = None  # with `replan`: the prompt can be planned again when the engine refuses it
    replan: Callable[[], Plan] | None = None
    system_prompt: str = ""
    retries: int = 0
    tool_messages: list[Message] = field(default_factory=list)  # this turn's steps so far: calls and results
    tool_records: list[dict[str, Any]] = field(default_factory=list)  # the receipt's tool_calls, with results
    tool_steps: int = 0  # generations that got results back

    @property
    def reply(self) -> StreamingReply:
        return self.writer.reply

    @property
    def prompt_chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages)

    def append(self, text: str) -> HistoryError | None:
        """Adds streamed text; returns the write error when the history could not take it (the text is kept)."""
        self.clock.feed(text)
        return self.writer.append(text)

    def receipt(self, engine_receipt: dict[str, Any]) -> dict[str, Any]:
        """The reply's receipt: the engine's, the turn's keys, and a continued reply's earlier parts."""
        full = {**engine_receipt, **self.extra}
        if self.clock.seconds is not None:
            full["reasoning_s"] = self.clock.seconds
        if self.tool_records:  # the calls the loop ran (or denied, or skipped), with their results
            full["tool_calls"], full["tool_steps"] = list(self.tool_records), self.tool_steps + 1
        elif calls := tool_calls(self.reply.content):  # the reply's third part, as read once (tool_calls.py)
            full["tool_calls"] = [{"name": c.name, "arguments": c.arguments, **({"error": c.error} if c.error else {})}
                                  for c in calls]  # fmt: skip
        if self.continued is not None:
            full = merge_continuation(self.continued, full, self.base_chars)
        return full

    def finish(self, done: Done) -> dict[str, Any]:
        """Writes the reply's end (HistoryError if the history cannot take it); returns the full receipt."""
        full = self.receipt(done.receipt)
        if done.stats.finish_reason is FinishReason.ERROR:
            self.writer.fail(done.stats.error or "Generation failed.", full)
        else:
            self.writer.finish(done.stats.finish_reason, full)
        return full

    def refit(self, message: str) -> bool:
        """The engine refused the prompt as too long (`message`; the estimate was low): learn its real size, leave
        out more turns, and say whether to ask again. Only with a dropping policy, before any text came, at most
        FIT_RETRIES times; a LlamaDeskError of the plan means no."""
        planner, replan = self.planner, self.replan
        if (
            planner is None or replan is None or planner.policy is OverflowPolicy.STOP or self.retries >= FIT_RETRIES
            or len(self.reply.content) != self.base_chars or "context" not in message
        ):  # fmt: skip
            return False
        planner.learn_from_refusal(message, self.prompt_chars)
        try:
            plan = replan()
        except LlamaDeskError:
            return False
        self.retries += 1
        self.messages, self.excluded_ids = list(plan.messages), plan.excluded
        kept = {k: v for k, v in self.extra.items() if k not in ("excluded_spans", "excluded_count")}
        self.extra = {**kept, **planner.receipt(plan, self.system_prompt)}
        return True

    def fail(self, message: str) -> None:
        self.writer.fail(message, self.receipt({}) if self.extra or self.continued else None)

    def run(
        self, stream: Callable[..., Iterable[StreamEvent]], params: SamplingParams, cancel: threading.Event,
        on_text: Callable[[str], None] | None = None, *, tools: ToolUse | None = None,
    ) -> Done:  # fmt: skip
        """The generation loop, for a front end that owns its engine's thread: streams `stream(messages, params,
        cancel, mode=…)`, writes as it goes, finishes the reply. A LlamaDeskError of the engine ends the reply as an
        error and is raised again; a history that cannot be written is kept in `writer.unsaved`.

        With `tools` (switched on), the stream gets `tools=` their definitions, and a step whose reply asks for
        tools runs them (each approved first) and generates again with the results, up to `tools.max_steps`
        times: call → run → result back → generate again. The steps are one reply; its receipt records each call
        with its result (`tool_calls`)."""
        options: dict[str, Any] = {} if self.mode == "chat" else {"mode": self.mode}  # no keyword where no modes
        steps = stream
        if tools is not None and tools.box:  # the steps come from the one tool loop (core/tools/loop.py)
            use = tools

            def steps(messages: Sequence[Message], params: SamplingParams, cancel: threading.Event,
                      **options: Any) -> Iterator[StreamEvent]:  # fmt: skip
                return stream_with_tools(stream, messages, params, cancel, use, **options)

        done = self._stream_step(steps, params, cancel, on_text, options)
        if "tool_calls" in done.receipt and "tool_steps" in done.receipt:  # the loop ran calls: the receipt's record
            self.tool_records, self.tool_steps = list(done.receipt["tool_calls"]), int(done.receipt["tool_steps"]) - 1
        try:
            self.finish(done)
        except HistoryError as exc:
            self.writer.unsaved = self.writer.unsaved or exc
        return done

    def _stream_step(
        self, stream: Callable[..., Iterable[StreamEvent]], params: SamplingParams, cancel: threading.Event,
        on_text: Callable[[str], None] | None, options: dict[str, Any],
    ) -> Done:  # fmt: skip
        """One generation: the prompt (with this turn's calls and results so far), streamed and written."""
        done: Done | None = None
        while True:
            try:
                for event in stream([*self.messages, *self.tool_messages], params, cancel, **options):
                    if isinstance(event, Token):
                        if on_text is not None:
                            on_text(event.text)
                        self.append(event.text)
                    else:
                        done = event
                break
            except LlamaDeskError as exc:
                if self.refit(str(exc)):
                    continue  # asked again with more turns left out
                with contextlib.suppress(HistoryError):  # one sentence: the generation's; the history's would be second
                    self.fail(str(exc))
                raise
        assert done is not None, "every engine's stream ends with Done"
        return done


def begin_turn(
    history: History, planner: Planner, cid: int, text: str, params: SamplingParams, system_prompt: str,
    *, sources: Sequence[ContextSource] = (), source_budget: int = 0, prompt_sources: Sequence[PromptSource] = (),
    images: Sequence[MessageImage] = (),
) -> Turn:  # fmt: skip
    """Your message (with its sources and `images`, already in `history.images`) at the end of the conversation's
    branch, and a reply to it planned and begun; the prompt sources (your documents' passages) join its prompt only."""
    message, records = with_sources(text, sources, source_budget, planner.tokens_per_char)
    budget = prompt_source_budget(planner.n_ctx, params.max_tokens)
    block, prompt_records = prompt_blocks(text, prompt_sources, budget, planner.tokens_per_char)
    branch = history.messages(cid)
    user = history.add_message(cid, "user", message, parent_id=branch[-1].id if branch else None, images=images)
    name_new_conversation(history, cid, text or message)
    branch = [*branch, user]
    entries = with_block(entries_of(branch, lambda m: m.id), block)

    def replan() -> Plan:
        return planner.plan(system_prompt, entries, params.max_tokens)

    plan = planner.plan(system_prompt, entries, params.max_tokens, previous=last_left_out(branch))
    writer = ReplyWriter.begin(history, cid, parent_id=user.id)
    extra = planner.receipt(plan, system_prompt)
    if records or prompt_records:
        extra["sources"] = [*records, *prompt_records]
    return Turn(cid, writer, plan.messages, extra=extra, excluded_ids=plan.excluded, planner=planner, replan=replan,
                system_prompt=system_prompt)  # fmt: skip


def last_left_out(branch: Sequence[Any]) -> set[int]:
    """The ids the last reply on a stored branch had left out of its prompt."""
    for k in range(len(branch) - 1, -1, -1):
        if branch[k].role == "assistant":
            return left_out(branch[k].receipt or {}, [m.id for m in branch[:k]])
    return set()
