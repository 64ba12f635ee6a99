"""Sending and streaming: history writes, engine requests by id, branches, and the rows of the shown conversation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from llamadesk.core.conversation import notebook
from llamadesk.core.conversation.branch import (
    BranchMessage,
    ShownBranch,
    called,
    last_left_out,
    stats_from_receipt,
    stored_branch,
    stored_id,
)
from llamadesk.core.conversation.lifecycle import ReplyWriter, name_new_conversation, status_for
from llamadesk.core.conversation.pending import PendingReply
from llamadesk.core.conversation.plan import OverflowPolicy, Plan
from llamadesk.core.conversation.sources import prompt_blocks, prompt_source_budget, with_block
from llamadesk.core.conversation.turn import Planner, entries_of, left_out
from llamadesk.core.documents.context import DocumentsSource, collections_of
from llamadesk.core.engines.api import FinishReason, GenerationStats, Message
from llamadesk.core.errors import LlamaDeskError
from llamadesk.core.history import History, StreamingReply
from llamadesk.core.history.models import UNSET, MessageImage
from llamadesk.core.history.models import Message as StoredMessage
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import ResponseFormat, cut_off_sentence, stored_format
from llamadesk.core.token_probs import TokenProb
from llamadesk.ui.chat.model import ChatRow, MessageListModel
from llamadesk.ui.chat.notebook_requests import NotebookRequests
from llamadesk.ui.workers import EngineHost, SerialRunner, Task, TaskContext

log = logging.getLogger(__name__)

Sources = tuple[str, list[dict[str, Any]]]  # a prompt block and its receipt records


def documents_block(query: str, names: list[str], budget: int, tokens_per_char: float) -> Sources:
    """The passages of the collections `names` for `query` within `budget` tokens (core/documents/context.py).
    Runs on the session's retrieval thread: it reads SQLite and may load an embedding model. Raises LlamaDeskError."""
    return prompt_blocks(query, [DocumentsSource(names, skip_missing=True)], budget, tokens_per_char)


def _release_thread_caches() -> None:
    """On the search thread as it ends: its embedding models closed (by the thread that made them), its matrices of
    vectors dropped."""
    from llamadesk.core.documents import embeddings, vectors

    embeddings.release_cached()
    vectors.forget_cached()


class ChatSession(QObject, NotebookRequests):
    """Owns the replies in flight. The window tells it which conversation is shown; it never opens dialogs."""

    busyChanged = Signal(bool)
    replyEnded = Signal(int, object)  # conversation id, GenerationStats (None when the reply failed)
    problem = Signal(str, str)  # title, sentence: for a message box
    notice = Signal(str, int)  # status bar text, milliseconds
    textAppended = Signal(int, int, str)  # conversation id, message id, text: a reply grew (the notebook follows)

    def __init__(self, history: History, host: EngineHost, chat_model: MessageListModel, parent: QObject) -> None:
        super().__init__(parent)
        self.history, self.host, self.chat_model = history, host, chat_model
        self.shown_cid: int | None = None
        # The branch shown, held here; the chat model draws its messages (its rows are these, not copies).
        self.branch: ShownBranch[ChatRow] = ShownBranch(ChatRow)
        self.requests: dict[int, PendingReply] = {}
        self.active_request: int | None = None
        self.planner = Planner()  # the context the prompts must fit (core/conversation/turn.py)
        self.record_probs = False  # ask the engine for each token's probability and alternatives
        # The conversation's tools (a ToolUse, None when none is on): ui/settings/tools_box.py's keeper sets this.
        self.tools_for: Callable[[int], Any] = lambda _cid: None
        self._records: dict[int, list[TokenProb]] = {}  # message id → token records read from its receipt
        # Searching a conversation's documents reads SQLite and may embed the query (loading the embedding model the
        # first time): one thread that lives as long as the session does it, so the GUI never waits and the thread's
        # cached Embedder (an Embedder belongs to the thread that made it) serves every later question.
        self.retrieve: Callable[[str, list[str], int, float], Sources] = documents_block
        self._retrieval = SerialRunner(self, name="documents-search", on_exit=_release_thread_caches)
        self._retrieving: tuple[Task[Sources], int] | None = None  # the search before a reply, its conversation
        worker = host.worker
        worker.tokens.connect(self._on_tokens)
        worker.tokenProbs.connect(self._on_probs)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    @property
    def is_generating(self) -> bool:
        return self.active_request is not None or self._retrieving is not None

    @property
    def busy_cid(self) -> int | None:
        """The conversation the engine works for now (its reply streams, or its documents are searched for one)."""
        if self._retrieving is not None:
            return self._retrieving[1]
        pending = self.requests.get(self.active_request) if self.active_request is not None else None
        return pending.cid if pending is not None else None

    @property
    def is_retrieving(self) -> bool:
        """Searching the conversation's documents before the reply is asked for."""
        return self._retrieving is not None

    @property
    def policy(self) -> OverflowPolicy:
        return self.planner.policy

    @policy.setter
    def policy(self, policy: OverflowPolicy) -> None:
        self.planner.policy = policy

    @property
    def n_ctx(self) -> int:
        return self.planner.n_ctx

    @n_ctx.setter
    def n_ctx(self, n_ctx: int) -> None:
        self.planner.n_ctx = n_ctx

    @property
    def tokens_per_char(self) -> float:
        return self.planner.tokens_per_char

    # --- what is shown ---------------------------------------------------------------------------------------
    def show(self, cid: int | None) -> None:
        """Fills the chat model with the branch shown; a reply still streaming into it shows its text so far."""
        self.shown_cid = cid
        if cid is None:
            self.branch.clear()
            self.chat_model.clear()
            return
        streaming = {p.reply.message_id: p for p in self.requests.values() if p.cid == cid and not p.deleted}
        try:
            self.branch.load(self.history, cid, streaming)
        except LlamaDeskError as exc:
            self.problem.emit("Messages not read", str(exc))
            self.chat_model.clear()
            return
        self.chat_model.sync_rows(self.branch.messages)

    def branch_to(self, cid: int, message_id: int | None) -> list[StoredMessage | BranchMessage]:
        """The messages from the root down to `message_id` (None: the branch shown)."""
        if cid == self.shown_cid:
            return self.branch.to(self.history, message_id)
        return list(stored_branch(self.history, cid, message_id))

    def plan(
        self, cid: int, system_prompt: str, upto: int | None, max_tokens: int, excluded: set[int] | None = None,
        *, open_reply: bool = False, block: str = "",
    ) -> Plan:  # fmt: skip
        """The prompt for a reply after `upto` (None: the end of the branch shown), with the policy applied;
        `open_reply`: `upto` is the reply being continued, sent whole (its reasoning too); `block`: the prompt
        sources' text after your message (core/conversation/sources.py)."""
        branch = self.branch_to(cid, upto)
        previous = last_left_out(branch) if excluded is None else None
        entries = with_block(entries_of(branch, stored_id, open_reply=open_reply), block)
        return self.planner.plan(system_prompt, entries, max_tokens, excluded=excluded, previous=previous)

    def prompt_messages(self, cid: int, system_prompt: str, max_tokens: int = 0) -> list[Message]:
        """[system prompt] + the branch shown, as the next reply would get it (the policy applied)."""
        return self.plan(cid, system_prompt, None, max_tokens).messages

    def calibrate(self, tokens: int, messages: list[Message]) -> None:
        """A real count of `messages` came back: estimates of what fits follow it from now on."""
        self.planner.calibrate(tokens, messages)

    # --- sending -------------------------------------------------------------------------------------------------
    def start(
        self, cid: int, text: str, params: SamplingParams, system_prompt: str, model: str | None,
        *, parent_id: int | object | None = UNSET, images: Sequence[MessageImage] = (),
    ) -> bool:  # fmt: skip
        """Saves your message (under `parent_id`: editing starts a new branch; `images`: already in the history's
        ImageStore) and asks for the reply (after searching the conversation's documents in the background, when it
        uses some)."""
        if self.is_generating:
            return False
        try:
            kwargs: dict[str, Any] = {} if parent_id is UNSET else {"parent_id": parent_id}
            user = self.history.add_message(cid, "user", text, images=images, **kwargs)
            name_new_conversation(self.history, cid, text)
            self.history.update_conversation(cid, model=model)
        except LlamaDeskError as exc:
            self.problem.emit("Message not sent", str(exc))
            return False
        return self._generate(cid, user.id, params, system_prompt)

    def regenerate(self, cid: int, message_id: int, params: SamplingParams, system_prompt: str) -> bool:
        """A new alternative for a reply (or a reply to a user message), beside the ones kept."""
        if self.is_generating:
            return False
        try:
            message = self.history.get_message(message_id)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not regenerated", str(exc))
            return False
        parent = message.id if message.role == "user" else message.parent_id
        if parent is None:
            return False
        return self._generate(cid, parent, params, system_prompt)

    def reproduce(self, cid: int, message_id: int) -> bool:
        """Generates the reply again with its receipt's settings, seed, system prompt and left-out turns."""
        if self.is_generating:
            return False
        try:
            message = self.history.get_message(message_id)
            receipt = message.receipt or {}
            params = SamplingParams.from_dict(receipt.get("sampling")).replace(seed=int(receipt["seed"]))
        except (LlamaDeskError, KeyError, TypeError, ValueError) as exc:
            self.problem.emit("Reply not reproduced", f"The receipt of this reply is incomplete ({exc}).")
            return False
        if message.parent_id is None:
            return False
        if notebook.is_completion(message):
            return self._complete_again(cid, message.parent_id, params, reproduces=message_id)
        try:
            excluded = left_out(receipt, [stored_id(m) for m in self.branch_to(cid, message.parent_id)])
        except LlamaDeskError as exc:
            self.problem.emit("Reply not reproduced", str(exc))
            return False
        system = str(receipt.get("system_prompt", ""))
        return self._generate(cid, message.parent_id, params, system, excluded=excluded, reproduces=message_id)

    def continue_reply(self, cid: int, message_id: int, params: SamplingParams, system_prompt: str) -> bool:
        """Extends a reply that stopped at the token limit, in place: the model sees it as its unfinished turn."""
        if self.is_generating:
            return False
        try:
            message = self.history.get_message(message_id)
            conversation = self.history.get_conversation(cid)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not continued", str(exc))
            return False
        if message.role != "assistant" or conversation.leaf_message_id != message_id:
            self.notice.emit("Only the last reply can be continued.", 5000)
            return False
        completion = notebook.is_completion(message)
        try:
            if completion:
                plan = notebook.continuation_plan(self.history, message)
            else:
                plan = self.plan(cid, system_prompt, message_id, params.max_tokens, open_reply=True)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not continued", str(exc))
            return False
        reply = ReplyWriter.resume(self.history, message).reply
        extra = {} if completion else self._extra(plan, system_prompt)
        mode = notebook.COMPLETION if completion else "continue"
        pending = self._request(cid, reply, plan, params, extra, continued=dict(message.receipt or {}), mode=mode)
        if not completion:
            self._may_refit(pending, message_id, system_prompt, open_reply=True)
        return True

    def response_format(self, cid: int) -> ResponseFormat | None:
        """The conversation's response format (ui/settings/response_format.py keeps it); None for text."""
        try:
            return stored_format(self.history.get_conversation(cid).sampling)
        except LlamaDeskError:
            return None

    def _tools(self, cid: int, mode: str) -> Any:
        """The tools a chat reply may call (the engine thread runs the loop: core/tools/loop.py)."""
        return None if mode == notebook.COMPLETION else self.tools_for(cid)

    def documents_budget(self, cid: int, max_tokens: int) -> int:
        """The tokens the conversation's documents may take in a reply's prompt (0: it uses none)."""
        if not collections_of(self.history.get_conversation(cid).sampling):
            return 0
        return prompt_source_budget(self.planner.n_ctx, max_tokens)

    def _search_documents(
        self, cid: int, parent_id: int, params: SamplingParams, system_prompt: str, excluded: set[int] | None,
        reproduces: int | None,
    ) -> bool | None:  # fmt: skip
        """Starts searching the conversation's collections for your message `parent_id` on the retrieval thread; the
        reply is asked for when the passages arrive (Stop meanwhile: no reply, your message stays). None: the
        conversation uses no collections (or the reply is not to your message), nothing was started."""
        parent = self.history.get_message(parent_id)
        names = collections_of(self.history.get_conversation(cid).sampling)
        if parent.role != "user" or not names:
            return None
        budget = prompt_source_budget(self.planner.n_ctx, params.max_tokens)
        query, tpc, retrieve = parent.content, self.planner.tokens_per_char, self.retrieve

        def work(_ctx: TaskContext) -> Sources:
            return retrieve(query, names, budget, tpc)

        def done(sources: Sources) -> None:
            self._retrieved()
            missing = [n for r in sources[1] for n in r.get("missing", ())]
            if missing:  # deleted since the conversation chose it: the reply goes on without it, and says so
                gone = ", ".join(f"“{n}”" for n in missing)
                self.notice.emit(f"The document collection {gone} no longer exists; this reply is made without it.",
                                 10000)  # fmt: skip
            if not self._generate(cid, parent_id, params, system_prompt, excluded=excluded, reproduces=reproduces,
                                  sources=sources):  # fmt: skip
                self.busyChanged.emit(False)

        def failed(message: str) -> None:  # your message stays; Regenerate searches again
            self._retrieving = None
            self.notice.emit("", 0)
            self.busyChanged.emit(False)
            self.problem.emit("Documents not searched", message)

        task = self._retrieval.run_in_background(work, done, failed, name="documents")
        self._retrieving = (task, cid)
        if cid == self.shown_cid:
            self.show(cid)  # your message, while its documents are searched
        self.busyChanged.emit(True)
        return True

    def _retrieved(self) -> None:
        self._retrieving = None
        self.notice.emit("Generating…", 0)

    def _cancel_retrieval(self) -> None:
        """Stop while the documents are searched: the reply is not asked for, your message stays."""
        if self._retrieving is None:
            return
        task, cid = self._retrieving
        task.discard()  # the search finishes on its thread; what it finds is dropped
        self._retrieving = None
        self.busyChanged.emit(False)
        self.notice.emit("Stopped before the reply began.", 5000)
        if cid == self.shown_cid:
            self.show(cid)

    def _generate(
        self, cid: int, parent_id: int, params: SamplingParams, system_prompt: str,
        *, excluded: set[int] | None = None, reproduces: int | None = None,
        sources: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> bool:  # fmt: skip
        """A reply to the message `parent_id`; `sources`: the prompt sources made for it already (else made here)."""
        try:
            if sources is None and self._search_documents(cid, parent_id, params, system_prompt, excluded,
                                                          reproduces) is not None:  # fmt: skip
                return True  # the reply is asked for when the passages arrive
            block, records = sources or ("", [])
            plan = self.plan(cid, system_prompt, parent_id, params.max_tokens, excluded, block=block)
            reply = self.history.begin_reply(cid, parent_id=parent_id)
        except LlamaDeskError as exc:
            self.problem.emit("Message not sent", str(exc))
            return False
        extra = self._extra(plan, system_prompt)
        if records:
            extra["sources"] = records
        if reproduces is not None:
            extra["reproduces"] = reproduces
        pending = self._request(cid, reply, plan, params, extra)
        if excluded is None:
            self._may_refit(pending, parent_id, system_prompt, block=block)
        return True

    def _may_refit(
        self, pending: PendingReply, upto: int, system_prompt: str, *, open_reply: bool = False, block: str = ""
    ) -> None:
        """Lets the turn plan its prompt again if the engine finds it too long (Turn.refit)."""
        params = pending.params
        assert params is not None
        pending.planner, pending.system_prompt = self.planner, system_prompt
        pending.replan = lambda: self.plan(
            pending.cid, system_prompt, upto, params.max_tokens, open_reply=open_reply, block=block
        )

    def _extra(self, plan: Plan, system_prompt: str) -> dict[str, Any]:
        return self.planner.receipt(plan, system_prompt)

    def _request(
        self, cid: int, reply: StreamingReply, plan: Plan, params: SamplingParams, extra: dict[str, Any],
        continued: dict[str, Any] | None = None, mode: str = "chat",
    ) -> PendingReply:  # fmt: skip
        request_id, cancel = self.host.generate(plan.messages, params, mode=mode, token_probs=self.record_probs,
                                                response_format=self.response_format(cid),
                                                tools=self._tools(cid, mode))  # fmt: skip
        pending = PendingReply(cid, ReplyWriter(reply), list(plan.messages), mode, extra, continued, plan.excluded,
                               len(reply.content), cancel=cancel, params=params)  # fmt: skip
        self._records.pop(reply.message_id, None)
        self.requests[request_id] = pending
        self.active_request = request_id
        self._announce(plan.excluded)
        self._show_new(pending)
        self.busyChanged.emit(True)
        return pending

    def _show_new(self, pending: PendingReply) -> None:
        """Shows a reply just asked for without reading the whole conversation again."""
        cid = pending.cid
        if cid != self.shown_cid:
            return
        try:
            marked = self.branch.after_request(self.history, pending)
        except (LlamaDeskError, ValueError):
            marked = None
        if marked is None:
            self.show(cid)
            return
        self.chat_model.sync_rows(self.branch.messages)
        self.chat_model.marks_changed(marked)

    def _announce(self, excluded: set[int]) -> None:
        if excluded:
            self.notice.emit(f"{len(excluded)} earlier messages were left out of the prompt to fit.", 8000)

    def _fit_again(self, request_id: int, pending: PendingReply, message: str) -> bool:
        """The engine found the prompt too long: the turn plans it again (Turn.refit), and the same reply is asked
        for again with more turns left out."""
        if pending.deleted or pending.params is None or not pending.refit(message):
            return False
        self.requests.pop(request_id, None)
        new_id, pending.cancel = self.host.generate(pending.messages, pending.params, mode=pending.mode,
                                                    token_probs=self.record_probs,
                                                    response_format=self.response_format(pending.cid),
                                                    tools=self._tools(pending.cid, pending.mode))  # fmt: skip
        self.requests[new_id] = pending
        self.active_request = new_id
        self._announce(pending.excluded_ids)
        if pending.cid == self.shown_cid:
            self.show(pending.cid)
        return True

    # --- branches --------------------------------------------------------------------------------------------
    def switch_alternative(self, cid: int, message_id: int, step: int) -> bool:
        """Shows the previous (-1) or next (+1) alternative of a message, with the newest branch below it."""
        try:
            message = self.history.get_message(message_id)
            siblings = self.history.children(cid, message.parent_id)
        except LlamaDeskError as exc:
            self.problem.emit("Alternative not shown", str(exc))
            return False
        ids = [m.id for m in siblings]
        target = ids.index(message_id) + step if message_id in ids else -1
        if not 0 <= target < len(ids):
            return False
        return self.show_branch_of(cid, ids[target])

    def show_branch_of(self, cid: int, message_id: int) -> bool:
        """Makes the branch through `message_id` the one shown (and the one the next message continues)."""
        try:
            self.history.set_leaf(cid, self.history.leaf_for(message_id))
        except LlamaDeskError as exc:
            self.problem.emit("Branch not shown", str(exc))
            return False
        if cid == self.shown_cid:
            self.show(cid)
        return True

    # --- stopping --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._cancel_retrieval()
        if self.active_request is not None:
            self.host.stop(self.active_request)

    def forget_conversation(self, cid: int) -> None:
        """The conversation is being deleted: stop its reply and write nothing more into it."""
        if self._retrieving is not None and self._retrieving[1] == cid:
            self._cancel_retrieval()
        for request_id, pending in self.requests.items():
            if pending.cid == cid:
                pending.deleted = True
                self.host.stop(request_id)

    def abandon_all(self) -> None:
        """At shutdown, after the worker's last signals were delivered: saves what is left as cancelled; a search of
        documents is dropped, and its thread closes its embedding models and ends."""
        self._cancel_retrieval()
        self._retrieval.shutdown()  # its thread closes the embedding models it loaded, then ends
        for request_id in list(self.requests):
            pending = self._end(request_id)
            if pending is not None:
                self._finish(pending, FinishReason.CANCELLED, {})

    # --- engine events -------------------------------------------------------------------------------------------
    def _on_tokens(self, request_id: int, text: str) -> None:
        pending = self.requests.get(request_id)
        if pending is None or pending.deleted:
            return
        if (error := pending.append(text)) is not None and not pending.write_error_shown:
            pending.write_error_shown = True
            self.notice.emit(str(error), 10000)
        if pending.cid == self.shown_cid and self.branch.append_text(pending.reply.message_id, text):
            self.chat_model.row_changed(pending.reply.message_id)
        self.textAppended.emit(pending.cid, pending.reply.message_id, text)

    def _end(self, request_id: int) -> PendingReply | None:
        pending = self.requests.pop(request_id, None)
        if self.active_request == request_id:
            self.active_request = None
            self.busyChanged.emit(False)
        return pending

    def _finish(
        self, pending: PendingReply, reason: FinishReason, receipt: dict[str, Any], error: str | None = None
    ) -> dict[str, Any]:
        """Writes the reply's end through its turn (status from `reason`; `error`: failed with that sentence)."""
        full = pending.receipt(receipt)
        self._records.pop(pending.reply.message_id, None)
        if pending.deleted or pending.reply.finished:
            return full
        try:
            if error is not None:
                pending.writer.fail(error, full)
            else:
                pending.writer.finish(reason, full)
        except LlamaDeskError as exc:
            self.problem.emit("Reply not saved", str(exc))
        return full

    def _on_finished(self, request_id: int, stats: GenerationStats, receipt: dict[str, Any]) -> None:
        pending = self._end(request_id)
        if pending is None:
            return
        reason = stats.finish_reason
        if "tool_calls" in receipt and "tool_steps" in receipt:  # the engine thread's tool loop ran calls
            receipt = dict(receipt)
            pending.tool_records, pending.tool_steps = list(receipt.pop("tool_calls")), receipt.pop("tool_steps") - 1
        if reason == FinishReason.ERROR:
            message = stats.error or "Generation failed."
            self._finish(pending, reason, receipt, error=message)
            self._show_end(pending, status="error", error=message)
            self.notice.emit(message, 15000)
            self.replyEnded.emit(pending.cid, None)
            return
        status = status_for(reason)
        full = self._finish(pending, reason, receipt)
        self._show_end(pending, status=status, finish_reason=reason.value, stats=stats_from_receipt(full),
                       tools=called(full))  # fmt: skip
        self.replyEnded.emit(pending.cid, stats)
        if reason is FinishReason.LENGTH and "response_format" in receipt:  # the JSON never closed
            self.notice.emit(cut_off_sentence(pending.params.max_tokens if pending.params else None), 15000)

    def _on_failed(self, request_id: int, message: str) -> None:
        waiting = self.requests.get(request_id)
        if waiting is not None and self.active_request == request_id and self._fit_again(request_id, waiting, message):
            return
        pending = self._end(request_id)
        if pending is None:
            return
        self._finish(pending, FinishReason.ERROR, {}, error=message)
        self._show_end(pending, status="error", error=message)
        self.notice.emit(message, 15000)
        self.replyEnded.emit(pending.cid, None)

    def _show_end(self, pending: PendingReply, **changes: Any) -> None:
        reply_id = pending.reply.message_id
        if pending.cid == self.shown_cid and not pending.deleted and self.branch.update(reply_id, **changes):
            self.chat_model.row_changed(reply_id)
