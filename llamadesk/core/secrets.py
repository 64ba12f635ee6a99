"""The Hugging Face token, kept in the OS keyring (never in a file or a log); HF_TOKEN overrides it per session."""

from __future__ import annotations

import logging
import os
import re
from types import ModuleType

from llamadesk.core.errors import LlamaDeskError

log = logging.getLogger(__name__)

SERVICE = "LlamaDesk"
HF_TOKEN_KEY = "huggingface-token"
ENV_TOKEN = "HF_TOKEN"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.]{8,256}$")


class SecretStoreError(LlamaDeskError):
    """The OS keyring is missing or refused the request."""


def keyring_module() -> ModuleType:
    """The keyring module, imported only when a token is wanted (its backends probe the desktop on import)."""
    try:
        import keyring
    except ImportError as exc:
        raise SecretStoreError("The keyring package is missing, so tokens cannot be stored; reinstall LlamaDesk.") \
            from exc
    return keyring


def get_hf_token() -> str | None:
    """$HF_TOKEN, else the keyring's token, else None; a broken keyring means no token (logged, not raised)."""
    env = os.environ.get(ENV_TOKEN, "").strip()
    if env:
        return env
    try:
        keyring = keyring_module()
        value = keyring.get_password(SERVICE, HF_TOKEN_KEY)
    except Exception as exc:  # any backend failure: behave as "no token", the Hub then answers for itself
        log.warning("The system keyring could not be read (%s); continuing without a Hub token.", type(exc).__name__)
        return None
    return value or None


def set_hf_token(token: str) -> None:
    token = token.strip()
    if not _TOKEN_RE.match(token):
        raise SecretStoreError("That does not look like a Hugging Face token (copy it from your Hub settings).")
    try:
        keyring_module().set_password(SERVICE, HF_TOKEN_KEY, token)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise SecretStoreError(
            f"The system keyring refused to store the token ({type(exc).__name__}); set {ENV_TOKEN} for this "
            "session instead."
        ) from exc


def delete_hf_token() -> bool:
    """Forgets the stored token; False when there was none."""
    try:
        keyring = keyring_module()
        if keyring.get_password(SERVICE, HF_TOKEN_KEY) is None:
            return False
        keyring.delete_password(SERVICE, HF_TOKEN_KEY)
    except SecretStoreError:
        raise
    except Exception as exc:
        raise SecretStoreError(f"The system keyring could not remove the token ({type(exc).__name__}).") from exc
    return True
