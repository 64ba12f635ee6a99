"""Typed errors of the core; each message is one sentence a user can act on."""

from __future__ import annotations

import errno


class LlamaDeskError(Exception):
    """Base of every error the core raises on purpose; str(err) is shown to the user as is."""


class InvalidSetting(LlamaDeskError, ValueError):
    """A setting (sampling value, context length, ...) is outside its allowed range."""


class ModelLoadError(LlamaDeskError):
    """A model could not be loaded (missing file, not GGUF, truncated, unsupported, out of memory)."""


class GenerationError(LlamaDeskError):
    """Generation failed after the model was loaded."""


class TemplateError(LlamaDeskError):
    """The chat template could not be rendered."""


class StructuredOutputError(LlamaDeskError, ValueError):
    """A response format (JSON, a JSON schema) cannot constrain replies: an invalid or too demanding schema."""


class HistoryError(LlamaDeskError):
    """The conversation history could not be read or written."""


class StarterModelError(LlamaDeskError):
    """The starter model could not be fetched or verified."""


class StorageError(LlamaDeskError):
    """A file or folder of LlamaDesk's own (data, settings, logs, cache) could not be written."""


def storage_sentence(path: object, exc: OSError) -> str:
    """One sentence for a failed write to `path`: a full disk (or a used-up quota) is named as such."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding {path} is full; free some space and try again."
    return f"{path} could not be written ({exc.strerror or exc}); check the disk and the folder's permissions."
