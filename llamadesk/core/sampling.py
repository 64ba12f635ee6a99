"""Sampling parameters: one validated value object, the allowed ranges, and their one-line explanations."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llamadesk.core.errors import InvalidSetting

MAX_SEED = 2**32 - 2  # llama.cpp reserves 0xFFFFFFFF for "random"


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric setting, and what it does in one sentence."""

    name: str
    label: str
    minimum: float
    maximum: float
    step: float
    is_int: bool
    help: str

    def check(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidSetting(f"{self.label} must be a number between {self.minimum:g} and {self.maximum:g}.")
        if self.is_int and not float(value).is_integer():
            raise InvalidSetting(f"{self.label} must be a whole number between {self.minimum:g} and {self.maximum:g}.")
        if math.isnan(value) or not (self.minimum <= value <= self.maximum):
            raise InvalidSetting(
                f"{self.label} must be between {self.minimum:g} and {self.maximum:g} (got {value:g})."
            )
        return int(value) if self.is_int else float(value)


RANGES: dict[str, Range] = {
    r.name: r
    for r in (
        Range("temperature", "Temperature", 0.0, 2.0, 0.05, False,
              "Higher values make replies more varied; 0 always picks the most likely token."),
        Range("top_p", "Top-p", 0.0, 1.0, 0.01, False,
              "Keeps the smallest set of tokens whose probabilities add up to this value."),
        Range("top_k", "Top-k", 0, 200, 1, True,
              "Keeps only the k most likely tokens at each step; 0 turns the limit off."),
        Range("min_p", "Min-p", 0.0, 1.0, 0.01, False,
              "Drops tokens less likely than this fraction of the most likely token."),
        Range("typical_p", "Typical-p", 0.0, 1.0, 0.01, False,
              "Keeps tokens whose surprise is close to the average; 1 turns it off."),
        Range("repeat_penalty", "Repeat penalty", 0.5, 2.0, 0.01, False,
              "Values above 1 make the model less likely to repeat recent tokens."),
        Range("repeat_last_n", "Repeat window", 0, 4096, 1, True,
              "How many recent tokens the repeat, presence and frequency penalties look at."),
        Range("presence_penalty", "Presence penalty", -2.0, 2.0, 0.05, False,
              "Positive values push the model towards tokens it has not used yet."),
        Range("frequency_penalty", "Frequency penalty", -2.0, 2.0, 0.05, False,
              "Positive values penalise tokens in proportion to how often they already appeared."),
        Range("mirostat_mode", "Mirostat", 0, 2, 1, True,
              "0 turns Mirostat off; 1 or 2 steer sampling towards a target surprise instead of top-k/top-p."),
        Range("mirostat_tau", "Mirostat tau", 0.0, 10.0, 0.1, False,
              "The target surprise of Mirostat: lower is more focused, higher is more varied."),
        Range("mirostat_eta", "Mirostat eta", 0.0, 1.0, 0.01, False,
              "How fast Mirostat adapts towards its target."),
        Range("max_tokens", "Max tokens", 1, 32768, 1, True,
              "The longest reply, in tokens; generation stops with reason 'length' there."),
    )
}

SEED_HELP = "A fixed seed repeats the same reply for the same prompt and settings; random picks a new one each time."


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. Immutable; construct through `from_dict` or `replace` to validate."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat_mode: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    max_tokens: int = 1024
    seed: int | None = None  # None: a fresh random seed per request, recorded in the receipt

    def __post_init__(self) -> None:
        for name, rng in RANGES.items():
            object.__setattr__(self, name, rng.check(getattr(self, name)))
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
            raise InvalidSetting(f"Seed must be a whole number between 0 and {MAX_SEED}, or random.")

    def replace(self, **changes: Any) -> SamplingParams:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidSetting(f"Unknown sampling setting: {', '.join(sorted(unknown))}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SamplingParams:
        """Builds from stored settings: unknown keys are ignored, missing ones take defaults."""
        if not data:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


PRESETS: dict[str, SamplingParams] = {
    "Precise": SamplingParams(temperature=0.2, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.1),
    "Balanced": SamplingParams(),
    "Creative": SamplingParams(temperature=1.1, top_p=0.98, top_k=100, min_p=0.02, repeat_penalty=1.05),
}
