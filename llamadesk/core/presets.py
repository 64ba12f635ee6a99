"""Sampling presets: built-in Precise / Balanced / Creative and the user's own, kept as JSON; export and import."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from llamadesk.core.errors import InvalidSetting, LlamaDeskError
from llamadesk.core.sampling import PRESETS, RANGES, SamplingParams

FORMAT: Final = "llamadesk-presets"
VERSION: Final = 1
NAME_MAX: Final = 60
MAX_PRESETS: Final = 500
MAX_FILE_BYTES: Final = 1_000_000
#: What a preset sets. Reply length and seed are yours: choosing a preset never changes them.
PRESET_FIELDS: Final = tuple(name for name in RANGES if name != "max_tokens")

log = logging.getLogger(__name__)


class PresetError(InvalidSetting):
    """A preset name, file or value was refused; the message says which and why."""


def check_name(name: object) -> str:
    """A preset's name, tidied: 1 to 60 printable characters, not the name of a built-in."""
    if not isinstance(name, str):
        raise PresetError("A preset name must be text.")
    tidy = " ".join(name.split())
    if not tidy:
        raise PresetError("A preset needs a name.")
    if len(tidy) > NAME_MAX:
        raise PresetError(f"A preset name can have at most {NAME_MAX} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in tidy):
        raise PresetError("A preset name cannot contain control or invisible characters.")
    if tidy.casefold() in (b.casefold() for b in PRESETS):
        raise PresetError(f"“{tidy}” is a built-in preset; choose another name.")
    return tidy


def preset_values(params: SamplingParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in PRESET_FIELDS}


def apply_preset(current: SamplingParams, preset: SamplingParams) -> SamplingParams:
    """The preset's knobs with your reply length and seed."""
    return current.replace(**preset_values(preset))


def _check_values(values: object, where: str) -> SamplingParams:
    if not isinstance(values, Mapping):
        raise PresetError(f"{where} must be an object of sampling values.")
    unknown = sorted(set(values) - set(PRESET_FIELDS))
    if unknown:
        raise PresetError(f"{where} has an unknown setting “{unknown[0]}”.")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        rng = RANGES[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise PresetError(f"{where}.{name} must be a finite number.")
        try:
            checked[name] = rng.check(value)
        except InvalidSetting as exc:
            raise PresetError(f"{where}.{name}: {exc}") from exc
    return SamplingParams(**checked)


def parse_document(text: str) -> dict[str, SamplingParams]:
    """Reads an exported presets document; raises PresetError naming the first fault."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PresetError(f"it is not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}).") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PresetError(f"it is not a LlamaDesk presets file (\"format\" must be \"{FORMAT}\").")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PresetError("its \"version\" must be a whole number.")
    if version > VERSION:
        raise PresetError(f"it was written by a newer LlamaDesk (version {version}); update LlamaDesk to read it.")
    presets = data.get("presets")
    if not isinstance(presets, dict):
        raise PresetError("its \"presets\" must be an object of name → values.")
    if len(presets) > MAX_PRESETS:
        raise PresetError(f"it holds more than {MAX_PRESETS} presets.")
    out: dict[str, SamplingParams] = {}
    for name, values in presets.items():
        where = f"presets[{json.dumps(name, ensure_ascii=False)}]"
        try:
            tidy = check_name(name)
        except PresetError as exc:
            raise PresetError(f"{where}: {exc}") from exc
        out[tidy] = _check_values(values, where)
    return out


def _refuse_constant(name: str) -> Any:
    raise PresetError(f"it contains {name}, which is not a number a setting can take.")


def document(presets: Mapping[str, SamplingParams]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "presets": {n: preset_values(p) for n, p in presets.items()}}


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".presets-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PresetStore:
    """The user's presets in `path` (config/presets.json) beside the built-ins. A damaged file is set aside
    (renamed .bad) rather than lost, and the store starts empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._user: dict[str, SamplingParams] = {}
        self.load_problem = ""
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            self.load_problem = f"Your presets could not be read from {self.path}: {exc}."
            log.warning("%s", self.load_problem)
            return
        try:
            self._user = parse_document(text)
        except PresetError as exc:
            bad = self.path.with_suffix(".json.bad")
            self.load_problem = f"Your presets file was damaged ({exc}); it was kept as {bad.name}."
            log.warning("%s", self.load_problem)
            with contextlib.suppress(OSError):
                os.replace(self.path, bad)

    # --- reading -------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [*PRESETS, *self.user_names()]

    def user_names(self) -> list[str]:
        return sorted(self._user, key=str.casefold)

    def is_builtin(self, name: str) -> bool:
        return name in PRESETS

    def get(self, name: str) -> SamplingParams | None:
        return PRESETS.get(name) or self._user.get(name)

    def matching(self, params: SamplingParams) -> str | None:
        """The first preset whose knobs equal `params` (reply length and seed aside), built-ins first."""
        values = preset_values(params)
        for name in self.names():
            preset = self.get(name)
            if preset is not None and preset_values(preset) == values:
                return name
        return None

    # --- changing ------------------------------------------------------------------------------------------
    def save(self, name: str, params: SamplingParams) -> str:
        """Saves (or overwrites) a user preset; returns the tidied name."""
        tidy = check_name(name)
        if tidy not in self._user and len(self._user) >= MAX_PRESETS:
            raise PresetError(f"You can keep at most {MAX_PRESETS} presets; delete some first.")
        changed = {**self._user, tidy: SamplingParams(**preset_values(params))}
        self._store(changed)
        return tidy

    def delete(self, name: str) -> None:
        if name not in self._user:
            raise PresetError(f"There is no preset of yours called “{name}”.")
        self._store({k: v for k, v in self._user.items() if k != name})

    def _store(self, presets: dict[str, SamplingParams]) -> None:
        try:
            _write_atomically(self.path, document(presets))
        except OSError as exc:
            raise LlamaDeskError(f"Presets could not be saved to {self.path}: {exc.strerror or exc}.") from exc
        self._user = presets

    # --- files -----------------------------------------------------------------------------------------------
    def export(self, path: Path, names: Iterable[str] | None = None) -> int:
        """Writes the chosen presets (default: all of yours; built-ins can be named too); returns how many."""
        chosen = list(self.user_names() if names is None else names)
        presets = {n: p for n in chosen if (p := self.get(n)) is not None}
        if not presets:
            raise PresetError("There are no presets to export; save one first.")
        try:
            _write_atomically(path, document(presets))
        except OSError as exc:
            raise LlamaDeskError(f"Presets could not be written to {path}: {exc.strerror or exc}.") from exc
        return len(presets)

    def import_file(self, path: Path) -> list[str]:
        """Adds the presets of an exported file, all or nothing; same names are replaced. Returns the names."""
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise PresetError(f"Nothing was imported from {path.name}: it is larger than a presets file can be.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PresetError(f"Nothing was imported from {path.name}: it could not be read ({exc}).") from exc
        try:
            found = parse_document(text)
        except PresetError as exc:
            raise PresetError(f"Nothing was imported from {path.name}: {exc}") from exc
        merged = {**self._user, **found}
        if len(merged) > MAX_PRESETS:
            raise PresetError(f"Nothing was imported from {path.name}: you would have more than {MAX_PRESETS} presets.")
        self._store(merged)
        return sorted(found, key=str.casefold)


# --- per-model settings ------------------------------------------------------------------------------------------
MAX_REMEMBERED_MODELS: Final = 200


def model_key(path: str | os.PathLike[str]) -> str:
    """Which model settings belong to: the file's name, so a model moved to another folder keeps them."""
    return Path(path).name


# llama.cpp's GGUF keys for the sampling a model's publisher recommends (gguf-py's Keys.General.SAMPLING_*).
GGUF_SAMPLING_KEYS: Final = {
    "general.sampling.temp": "temperature", "general.sampling.top_k": "top_k", "general.sampling.top_p": "top_p",
    "general.sampling.min_p": "min_p", "general.sampling.penalty_repeat": "repeat_penalty",
    "general.sampling.penalty_last_n": "repeat_last_n", "general.sampling.mirostat": "mirostat_mode",
    "general.sampling.mirostat_tau": "mirostat_tau", "general.sampling.mirostat_eta": "mirostat_eta",
}


def model_defaults(metadata: Mapping[str, Any] | None = None) -> SamplingParams:
    """What "Reset to the model's defaults" puts back: LlamaDesk's defaults, with the sampling the model's file
    recommends (general.sampling.*) where it names a value LlamaDesk accepts; a bad value is left out, not an error."""
    values: dict[str, Any] = {}
    for key, name in GGUF_SAMPLING_KEYS.items():
        if metadata is None or key not in metadata:
            continue
        try:
            value = RANGES[name].check(metadata[key])
        except InvalidSetting as exc:
            log.info("Ignoring the model's %s: %s", key, exc)
            continue
        values[name] = round(value, 6) if isinstance(value, float) else value  # float32 in the file
    return SamplingParams().replace(**values)


def model_defaults_of(path: str | os.PathLike[str]) -> SamplingParams:
    """model_defaults() for a GGUF file, read from its header; an unreadable header gives LlamaDesk's defaults."""
    from llamadesk.core.gguf_header import read_header  # on use: the GGUF reader pulls in numpy

    try:
        return model_defaults(read_header(path).metadata)
    except (LlamaDeskError, OSError) as exc:
        log.info("No sampling defaults from %s: %s", path, exc)
        return SamplingParams()


class ModelSettingsStore:
    """The sampling settings last used with each model (config/model_settings.json), as LM Studio keeps them: load
    the model again and they come back. A damaged file is set aside (.bad) and the store starts empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._models: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            models = data.get("models") if isinstance(data, dict) else None
            if not isinstance(models, dict):
                raise ValueError("no models object")
            self._models = {str(k): v for k, v in models.items() if isinstance(v, dict)}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            log.warning("Model settings in %s could not be read (%s); starting afresh", path, exc)
            with contextlib.suppress(OSError):
                os.replace(path, path.with_suffix(".json.bad"))

    def get(self, key: str) -> SamplingParams | None:
        """The settings last used with the model, or None (never used, or stored values no longer valid)."""
        values = self._models.get(key)
        if values is None:
            return None
        try:
            return SamplingParams.from_dict(values)
        except LlamaDeskError as exc:
            log.warning("Ignoring the stored settings of %s: %s", key, exc)
            return None

    def remember(self, key: str, params: SamplingParams) -> None:
        """Keeps `params` for the model (the most recent last; the oldest are dropped past MAX_REMEMBERED_MODELS)."""
        values = params.to_dict()
        if self._models.get(key) == values:
            return
        models = {k: v for k, v in self._models.items() if k != key}
        models[key] = values
        while len(models) > MAX_REMEMBERED_MODELS:
            models.pop(next(iter(models)))
        try:
            _write_atomically(self.path, {"format": "llamadesk-model-settings", "version": 1, "models": models})
        except OSError as exc:
            raise LlamaDeskError(f"Model settings could not be saved to {self.path}: {exc.strerror or exc}.") from exc
        self._models = models
