"""The OpenAI-compatible wire, shared by the remote engine, the CLI and the Endpoints dialog: listing a server's
models (and guessing its kind), the sampling fields each kind accepts, and one-sentence errors."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx2

from llamadesk.core.endpoints import Endpoint, check_url, get_api_key
from llamadesk.core.errors import GenerationError, LlamaDeskError, ModelLoadError
from llamadesk.core.remote import make_client
from llamadesk.core.sampling import SamplingParams
from llamadesk.core.structured import ResponseFormat

LIST_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 300.0  # a long prompt on a slow server; servers send SSE pings meanwhile
ERROR_BODY_LIMIT = 64 * 1024

# Which SamplingParams each kind of server accepts in a chat completion, and under which name.
OPENAI_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "max_tokens": "max_tokens",
}
_LLAMA = {
    "top_k": "top_k",
    "min_p": "min_p",
    "repeat_penalty": "repeat_penalty",
    "mirostat_mode": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
ACCEPTED: dict[str, dict[str, str]] = {
    "openai": OPENAI_KEYS,
    "ollama": OPENAI_KEYS,
    "llama.cpp": {
        **OPENAI_KEYS,
        **_LLAMA,
        "typical_p": "typical_p",
        "repeat_last_n": "repeat_last_n",
        "mirostat_mode": "mirostat",
    },
    "llama-cpp-python": {**OPENAI_KEYS, **_LLAMA},
    "vllm": {**OPENAI_KEYS, "top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"},
    "lmstudio": {**OPENAI_KEYS, "top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty"},
}
USAGE_IN_STREAM = {"openai", "llama.cpp", "vllm", "ollama"}  # servers known to take stream_options.include_usage
# /v1/models "owned_by" → server kind
_OWNERS = {
    "llamacpp": "llama.cpp",
    "me": "llama-cpp-python",
    "vllm": "vllm",
    "library": "ollama",
    "ollama": "ollama",
    "organization_owner": "lmstudio",
}


class RemoteError(LlamaDeskError):
    """A remote endpoint failed; the message says what happened and what to check."""


class RemoteLoadError(RemoteError, ModelLoadError):
    """The endpoint could not be reached or did not offer the model."""


class RemoteGenerationError(RemoteError, GenerationError):
    """A reply from the endpoint failed."""


def _matters(name: str, params: SamplingParams) -> bool:
    """Whether a value the server ignores changes anything (e.g. top_k 0 or Mirostat's tau with Mirostat off)."""
    value = getattr(params, name)
    neutral = {"top_k": 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0, "mirostat_mode": 0}
    if name in neutral:
        return bool(value != neutral[name])
    if name in ("mirostat_tau", "mirostat_eta"):
        return params.mirostat_mode != 0
    if name == "repeat_last_n":
        return params.repeat_penalty != 1.0 or params.presence_penalty != 0 or params.frequency_penalty != 0
    return True


def response_format_body(kind: str, fmt: ResponseFormat) -> dict[str, Any] | None:
    """The `response_format` to send a server of this kind: OpenAI's shape, except llama-cpp-python's server, which
    takes a schema as {"type": "json_object", "schema": ...} (its pydantic model refuses "json_schema")."""
    wire = fmt.to_openai()
    if kind == "llama-cpp-python" and wire is not None and wire["type"] == "json_schema":
        return {"type": "json_object", "schema": wire["json_schema"]["schema"]}
    return wire


def sampling_body(kind: str, params: SamplingParams, seed: int) -> tuple[dict[str, Any], list[str]]:
    """The request's sampling fields for a server kind, and the settings it would ignore (that matter)."""
    table = ACCEPTED.get(kind, OPENAI_KEYS)
    body: dict[str, Any] = {wire: getattr(params, name) for name, wire in table.items()}
    if kind == "vllm" and body.get("top_k") == 0:
        body["top_k"] = -1  # vLLM's "no limit"
    body["seed"] = seed
    ignored = [n for n in params.to_dict() if n != "seed" and n not in table and _matters(n, params)]
    return body, ignored


@dataclass(frozen=True)
class Listing:
    """What a server offers: model ids, its kind (detected or chosen) and context length when it says."""

    models: tuple[str, ...]
    kind: str
    n_ctx: int | None = None


def _server_message(response: httpx2.Response) -> str:
    try:
        data = json.loads(response.read()[:ERROR_BODY_LIMIT])
    except (ValueError, httpx2.HTTPError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    if message is None and isinstance(data, dict) and isinstance(data.get("detail"), str):
        message = data["detail"]
    return " ".join(str(message).split())[:200] if message else ""


def http_error(endpoint: Endpoint, response: httpx2.Response, model: str = "") -> str:
    status = response.status_code
    said = _server_message(response)
    if status in (401, 403):
        if not endpoint.has_key:
            return f"{endpoint.name} needs an API key (HTTP {status}); add one in Endpoints…."
        return f"{endpoint.name} refused the API key (HTTP {status}); check the key in Endpoints…."
    if status == 404:
        if model:
            return f"{endpoint.name} has no model {model!r} (HTTP 404); choose another of its models."
        return f"{endpoint.url} does not look like an OpenAI-compatible server (no /v1/models there)."
    if 300 <= status < 400:
        return f"{endpoint.name} redirected to {response.headers.get('location', 'elsewhere')}; use that address."
    return f"{endpoint.name} answered HTTP {status}" + (f": {said}" if said else ".")


def transport_error(endpoint: Endpoint, exc: httpx2.HTTPError) -> str:
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return (
            f"The TLS certificate of {endpoint.url} could not be verified; LlamaDesk only talks to servers "
            "with a valid certificate."
        )
    if any(isinstance(c, ssl.SSLError) for c in chain):
        return f"A secure connection to {endpoint.url} could not be made (TLS error)."
    if isinstance(exc, httpx2.TimeoutException):
        return f"{endpoint.name} ({endpoint.url}) did not answer in time; check that the server is running."
    if isinstance(exc, httpx2.ConnectError):
        return f"{endpoint.name} ({endpoint.url}) does not answer; check that the server is running and the address."
    return f"The connection to {endpoint.name} failed ({type(exc).__name__})."


def garbage(endpoint: Endpoint, what: str) -> str:
    return f"{endpoint.name} answered something that is not an OpenAI-compatible {what}; is this the right address?"


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def resolve_key(endpoint: Endpoint, api_key: str | None) -> str | None:
    if api_key is not None:
        return api_key or None
    return get_api_key(endpoint.name) if endpoint.has_key else None


def _check_policy(endpoint: Endpoint, error: type[RemoteError]) -> None:
    try:
        checked = check_url(endpoint.url)
    except LlamaDeskError as exc:
        raise error(str(exc)) from exc
    if checked.warning and not endpoint.allow_http:
        raise error(f"{checked.warning} Confirm it in Endpoints… first.")


def list_models(endpoint: Endpoint, api_key: str | None = None, *, client: httpx2.Client | None = None) -> Listing:
    """GET /v1/models (and /props for llama.cpp's context length); errors are RemoteLoadError sentences.
    `api_key` None takes the keyring's key when the endpoint has one."""
    _check_policy(endpoint, RemoteLoadError)
    own = client is None
    http = client or make_client(read_timeout=LIST_TIMEOUT_S, connect_timeout=LIST_TIMEOUT_S)
    headers = auth_headers(resolve_key(endpoint, api_key))
    try:
        response = http.get(endpoint.api_url("models"), headers=headers)
        if response.status_code != 200:
            raise RemoteLoadError(http_error(endpoint, response))
        try:
            data = response.json()
            items = data["data"]
            models = tuple(str(m["id"]) for m in items)
            owners = {str(m.get("owned_by", "")) for m in items if isinstance(m, dict)}
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteLoadError(garbage(endpoint, "model list")) from exc
        kind = endpoint.kind
        if kind == "auto":
            kind = next((_OWNERS[o] for o in owners if o in _OWNERS), "")
        n_ctx = next((int(m["max_model_len"]) for m in items if isinstance(m.get("max_model_len"), int)), None)
        if kind in ("", "llama.cpp"):
            props = _props(http, endpoint, headers)
            if props is not None:
                kind = "llama.cpp"
                settings = props.get("default_generation_settings")
                n = settings.get("n_ctx") if isinstance(settings, dict) else None
                n_ctx = n if isinstance(n, int) and n > 0 else n_ctx
        return Listing(models, kind or "openai", n_ctx)
    except httpx2.HTTPError as exc:
        raise RemoteLoadError(transport_error(endpoint, exc)) from exc
    finally:
        if own:
            http.close()


def _props(http: httpx2.Client, endpoint: Endpoint, headers: dict[str, str]) -> dict[str, Any] | None:
    """llama.cpp's server describes itself at /props; other servers answer 404 there."""
    try:
        response = http.get(f"{endpoint.url}/props", headers=headers)
        data = response.json() if response.status_code == 200 else None
    except (ValueError, httpx2.HTTPError):
        return None
    return data if isinstance(data, dict) and "default_generation_settings" in data else None
