"""Per-token probabilities: the top-k recorder against a plain softmax, and through real llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest

from llamadesk.core.engines.api import Done, Token
from llamadesk.core.engines.local import LlamaCppEngine
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.token_probs import MAX_RECORDS, TokenProb, TopKRecorder, receipt_field, records_from_receipt

HELLO = [{"role": "user", "content": "hello model"}]


def test_recorder_matches_a_full_softmax_and_leaves_the_scores_alone() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, 1000).astype(np.float32)
    # the processor sees a strided view of llama.cpp's candidate array (id, logit, p)
    packed = np.zeros(1000, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
    packed["logit"] = logits
    view = packed["logit"]
    recorder = TopKRecorder(lambda t: f"t{t}", k=5)
    returned = recorder(None, view)
    assert returned is view and np.array_equal(packed["logit"], logits)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = np.argsort(-probs)
    chosen = int(order[2])
    record = recorder.take(chosen, 7, "x")
    assert record is not None and record.offset == 7 and record.text == "x"
    assert record.p == pytest.approx(float(probs[chosen]), rel=1e-5)
    expected = [int(t) for t in order[:6] if int(t) != chosen][:5]
    assert [text for text, _p in record.alternatives] == [f"t{t}" for t in expected]
    assert [p for _t, p in record.alternatives] == pytest.approx([float(probs[t]) for t in expected], rel=1e-5)
    assert recorder.take(chosen, 8, "y") is None, "one record per step"


def test_receipt_field_is_compact_capped_and_reads_back() -> None:
    records = [TokenProb(i, "a", 0.123456, (("b", 0.5),)) for i in range(MAX_RECORDS + 5)]
    stored = receipt_field(records)
    assert stored["truncated"] is True and len(stored["tokens"]) == MAX_RECORDS
    assert stored["tokens"][0] == [0, "a", 0.1235, [["b", 0.5]]]
    back = records_from_receipt({"token_probs": stored})
    assert back[1] == TokenProb(1, "a", 0.1235, (("b", 0.5),))
    assert records_from_receipt({"token_probs": {"tokens": [["bad"], [1, "x", "nan?", []]]}}) == []
    assert records_from_receipt({}) == [] and records_from_receipt(None) == []


def test_stream_records_one_probability_per_token(engine: LlamaCppEngine) -> None:
    params = SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=10, seed=1)
    text, records, done = "", [], None
    for event in engine.stream(HELLO, params, token_probs=True):
        if isinstance(event, Token):
            text += event.text
            records.extend(event.probs)
        else:
            done = event
    assert isinstance(done, Done)
    assert len(records) == done.stats.generated_tokens > 0
    for record in records:
        assert 0 < record.p <= 1 and len(record.alternatives) == 5
        assert all(record.p >= p for _t, p in record.alternatives), "greedy picks the most likely token"
        assert [p for _t, p in record.alternatives] == sorted((p for _t, p in record.alternatives), reverse=True)
    assert [r.offset for r in records] == sorted(r.offset for r in records)
    assert records_from_receipt(done.receipt) == [TokenProb.from_json(r.to_json()) for r in records]
    # without the option: no records, no receipt field, same text
    plain = [e for e in engine.stream(HELLO, params)]
    assert all(not e.probs for e in plain if isinstance(e, Token))
    assert "token_probs" not in plain[-1].receipt  # type: ignore[union-attr]
    assert "".join(e.text for e in plain if isinstance(e, Token)) == text
