"""What a quantization code means, in one line a newcomer can read ("Q4_K_M: 4-bit, the usual balance ...").

The codes are llama.cpp's file types; the words are ours, written from llama.cpp's own quantize help (bits per
weight) and the usual advice: K-quants beat the older _0/_1 ones at the same size, and below 4 bits quality drops
fast. A table is all this needs, so it is written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

QUANT_CODES: Final[dict[str, str]] = {
    "Q2_K": "2-bit, the smallest; answers get noticeably worse",
    "Q3_K_S": "3-bit, small; some loss of quality",
    "Q3_K_M": "3-bit, small; some loss of quality",
    "Q3_K_L": "3-bit, a little larger and better than Q3_K_M",
    "IQ4_XS": "4-bit, a compact file that keeps most of the quality",
    "IQ4_NL": "4-bit, a compact file that keeps most of the quality",
    "Q4_0": "4-bit, an older method; Q4_K_M is usually better at the same size",
    "Q4_1": "4-bit, an older method; Q4_K_M is usually better at the same size",
    "Q4_K_S": "4-bit, slightly smaller than Q4_K_M",
    "Q4_K_M": "4-bit, the usual balance of size and quality",
    "Q5_0": "5-bit, an older method; Q5_K_M is usually better",
    "Q5_1": "5-bit, an older method; Q5_K_M is usually better",
    "Q5_K_S": "5-bit, larger than 4-bit and a little better",
    "Q5_K_M": "5-bit, larger than 4-bit and a little better",
    "Q6_K": "6-bit, close to the original quality",
    "Q8_0": "8-bit, nearly the original quality at about twice the size of 4-bit",
    "BF16": "16-bit, the original weights; large and slow on most machines",
    "F16": "16-bit, the original weights; large and slow on most machines",
    "F32": "32-bit, the original weights at full precision; for testing only",
    "MXFP4": "4-bit floating point, the format gpt-oss models are published in",
}


def explain(code: str) -> str:
    """One line for a quantization code; an unknown code still gets a sentence, never an error."""
    key = code.upper()
    words = QUANT_CODES.get(key)
    if words is None:
        return f"{code}: a quantization LlamaDesk has no description for"
    return f"{key}: {words}"


def explain_all(codes: Iterable[str]) -> list[str]:
    """One line per distinct code, in the order given."""
    seen: list[str] = []
    for code in codes:
        if code.upper() not in (s.upper() for s in seen):
            seen.append(code)
    return [explain(c) for c in seen]
