"""The prompt plan of a turn: overflow policies leave out whole turns, record them as spans, and keep what they
left out while the rest fits (so the engine reuses the start of the prompt)."""

from __future__ import annotations

import pytest

from llamadesk.core.conversation.plan import Entry, OverflowPolicy, ids_in_spans, plan_prompt


def test_plans_leave_out_whole_turns_and_record_them_as_spans() -> None:
    entries = [Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i) for i in range(10)]
    fits = plan_prompt("sys", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=10_000, reserve=10)
    assert fits.excluded == set() and len(fits.messages) == 11 and fits.spans == []
    oldest = plan_prompt("sys", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=200, reserve=10,
                         tokens_per_char=0.5)  # fmt: skip
    assert oldest.messages[0] == {"role": "system", "content": "sys"}
    assert oldest.spans == [[0, 8]] and oldest.excluded == {100 + i for i in range(8)}
    middle = plan_prompt("", entries, policy=OverflowPolicy.DROP_MIDDLE, n_ctx=300, reserve=10, tokens_per_char=0.5)
    assert middle.spans == [[2, 8]] and len(middle.messages) == 4
    stop = plan_prompt("", entries, policy=OverflowPolicy.STOP, n_ctx=100, reserve=10, tokens_per_char=0.5)
    assert stop.excluded == set() and len(stop.messages) == 10
    again = plan_prompt("", entries, policy=OverflowPolicy.STOP, n_ctx=0, reserve=0, excluded={100, 101})
    assert len(again.messages) == 8 and again.spans == [[0, 2]]  # a reproduction leaves out the same
    ids = [100 + i for i in range(10)]
    assert ids_in_spans(ids, [[0, 2], [5, 6]]) == {100, 101, 105}
    assert ids_in_spans(ids, "nonsense") == set() and ids_in_spans(ids, [[0], ["a", 2]]) == set()


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_middle"])
def test_turns_left_out_stay_left_out_so_the_start_of_the_prompt_is_reused(policy: str) -> None:
    def history_of_sends(sticky: bool) -> list[set[int]]:
        entries: list[Entry] = []
        sent: list[set[int]] = []
        for i in range(60):
            entries.append(Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i))
            if i % 2 == 0:  # a prompt after each of your messages
                plan = plan_prompt("sys", entries, policy=OverflowPolicy(policy), n_ctx=1000, reserve=100,
                                   tokens_per_char=0.5, previous=sent[-1] if sent and sticky else None)  # fmt: skip
                assert plan.estimated_tokens <= 900
                sent.append(plan.excluded)
        return sent

    sent = history_of_sends(sticky=True)
    overflowing = [i for i, left in enumerate(sent) if left]
    changes = [i for i in overflowing[1:] if sent[i] != sent[i - 1]]
    assert len(overflowing) >= 20 and len(changes) <= len(overflowing) // 3  # a new prompt start every 3+ turns
    assert all(sent[i - 1] <= sent[i] for i in range(1, len(sent)))  # what was left out stays out
    fresh = history_of_sends(sticky=False)
    assert sum(fresh[i] != fresh[i - 1] for i in overflowing[1:]) == len(overflowing) - 1  # without: every turn


def test_what_another_policy_left_out_is_not_kept() -> None:
    entries = [Entry(100 + i, "user" if i % 2 == 0 else "assistant", "x" * 100, i) for i in range(20)]
    middle = plan_prompt("", entries, policy=OverflowPolicy.DROP_MIDDLE, n_ctx=800, reserve=10, tokens_per_char=0.5)
    assert 100 not in middle.excluded and 102 in middle.excluded
    oldest = plan_prompt("", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=800, reserve=10, tokens_per_char=0.5,
                         previous=middle.excluded)  # fmt: skip
    assert oldest.excluded == plan_prompt(
        "", entries, policy=OverflowPolicy.DROP_OLDEST, n_ctx=800, reserve=10, tokens_per_char=0.5
    ).excluded
    assert 100 in oldest.excluded
