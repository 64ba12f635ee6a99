"""The remote engine against llama-cpp-python's own server (on loopback, on a generated model) and against servers
that misbehave: listing, streaming, Stop, errors as sentences, the URL policy, ignored sampling values, API keys."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from file_keyring import MemoryKeyring
from remote_server import GarbageServer, LlamaServer, free_port

from llamadesk.core.endpoints import Endpoint, EndpointError, EndpointStore, check_url, remote_options
from llamadesk.core.engines.api import Done, FinishReason, StreamEvent, Token
from llamadesk.core.engines.remote import RemoteEngine
from llamadesk.core.engines.remote_api import list_models, sampling_body
from llamadesk.core.errors import GenerationError, LlamaDeskError, ModelLoadError
from llamadesk.core.sampling import SamplingParams

pytestmark = pytest.mark.usefixtures("no_proxy")
MESSAGES = [{"role": "user", "content": "Hello there"}]
STOP_WITHIN_S = 2.0


def local(url: str, **kw: object) -> Endpoint:
    return Endpoint("box", url, allow_http=True, **kw)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Iterator[RemoteEngine]:
    e = RemoteEngine()
    yield e
    e.close()


def connections_to(port: int) -> list[object]:
    return [c for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr.port == port
            and c.status == psutil.CONN_ESTABLISHED]  # fmt: skip


# -- against llama-cpp-python's server -----------------------------------------------------------------------------
def test_lists_the_servers_models_and_knows_its_kind(llama_server: LlamaServer) -> None:
    listing = list_models(local(llama_server.url + "/v1/"))
    assert listing.models == (llama_server.model_id,)
    assert listing.kind == "llama-cpp-python"


def test_streams_a_reply_with_figures_and_a_receipt(llama_server: LlamaServer, engine: RemoteEngine) -> None:
    info = engine.load(remote_options(local(llama_server.url), n_ctx=512))
    assert info.endpoint == llama_server.url and info.file_name == llama_server.model_id
    assert info.server_kind == "llama-cpp-python" and info.template_name == "server"
    params = SamplingParams(temperature=0.0, max_tokens=8, typical_p=0.5, seed=42)
    events = list(engine.stream(MESSAGES, params))
    text = "".join(e.text for e in events if isinstance(e, Token))
    done = events[-1]
    assert isinstance(done, Done) and text.strip()
    assert done.stats.finish_reason is FinishReason.LENGTH  # the endless model never ends by itself
    assert 1 <= done.stats.generated_tokens <= 8 and done.stats.ttft_s > 0 and done.stats.seed == 42
    receipt = done.receipt
    assert receipt["endpoint"] == llama_server.url and receipt["model"] == llama_server.model_id
    # llama-cpp-python's server has no typical-p, and a fixed window for the repeat penalty
    assert receipt["ignored_sampling"] == ["typical_p", "repeat_last_n"]
    assert receipt["sent_sampling"]["top_k"] == params.top_k and "typical_p" not in receipt["sent_sampling"]
    assert receipt["seed"] == 42 and receipt["token_counts"] == "estimated"


def test_stop_mid_stream_closes_the_connection(llama_server: LlamaServer, engine: RemoteEngine) -> None:
    engine.load(remote_options(local(llama_server.url)))
    cancel = threading.Event()
    stream = engine.stream(MESSAGES, SamplingParams(max_tokens=2000, seed=1), cancel)
    tokens = 0
    for event in stream:
        if isinstance(event, Token):
            tokens += 1
            if tokens == 3:
                cancel.set()
                stopped_at = time.monotonic()
        else:
            done = event
    assert time.monotonic() - stopped_at < STOP_WITHIN_S
    assert done.stats.finish_reason is FinishReason.CANCELLED and done.stats.generated_tokens < 2000
    port = int(llama_server.url.rsplit(":", 1)[1])
    assert connections_to(port) == []  # the stream's connection was closed, not kept for later
    # and the engine goes on working after a Stop
    again = list(engine.stream(MESSAGES, SamplingParams(max_tokens=3)))
    assert isinstance(again[-1], Done) and again[-1].stats.finish_reason is FinishReason.LENGTH


def test_a_missing_model_is_one_sentence(llama_server: LlamaServer, engine: RemoteEngine) -> None:
    with pytest.raises(ModelLoadError, match=r"has no model 'nope'; it offers .*tiny-endless"):
        engine.load(remote_options(local(llama_server.url), "nope"))
    assert engine.info is None


def test_server_down_is_one_sentence(engine: RemoteEngine) -> None:
    with pytest.raises(ModelLoadError, match=r"^box \(http://127\.0\.0\.1:\d+\) does not answer; check that"):
        engine.load(remote_options(local(f"http://127.0.0.1:{free_port()}")))


def test_the_server_going_away_before_a_reply_is_one_sentence(tmp_path: Path, endless_remote_model: Path) -> None:
    server = LlamaServer(endless_remote_model, tmp_path / "server.log")
    engine = RemoteEngine()
    try:
        engine.load(remote_options(local(server.url)))
        server.stop()
        with pytest.raises(GenerationError, match="does not answer; check that the server is running"):
            list(engine.stream(MESSAGES, SamplingParams(max_tokens=3)))
    finally:
        server.stop()
        engine.close()


# -- against servers that misbehave ----------------------------------------------------------------------------
def test_garbage_instead_of_a_model_list_is_one_sentence(garbage_server: GarbageServer, engine: RemoteEngine) -> None:
    with pytest.raises(ModelLoadError, match="not an OpenAI-compatible model list; is this the right address"):
        engine.load(remote_options(local(garbage_server.url)))


def test_garbage_in_the_stream_ends_the_reply_with_a_sentence(engine: RemoteEngine) -> None:
    with GarbageServer("bad-stream") as server:
        engine.load(remote_options(local(server.url)))
        events = []
        with pytest.raises(GenerationError, match=r"not an OpenAI-compatible stream \(not JSON\)"):
            for event in engine.stream(MESSAGES, SamplingParams()):
                events.append(event)
    assert events[0] == Token("Hel")
    done = events[-1]
    assert isinstance(done, Done) and done.stats.finish_reason is FinishReason.ERROR
    assert "not JSON" in str(done.receipt["error"])


def test_a_server_error_is_its_own_sentence(engine: RemoteEngine) -> None:
    with GarbageServer("error") as server:
        engine.load(remote_options(local(server.url)))
        with pytest.raises(GenerationError, match=r"^box answered HTTP 500: the GPU caught fire$"):
            list(engine.stream(MESSAGES, SamplingParams()))


def stop_once_streaming(engine: RemoteEngine, server: GarbageServer) -> list[StreamEvent]:
    """Streams from `server`, presses Stop as soon as it has the request, and checks that the stream ended within
    STOP_WITHIN_S of that; returns the events."""
    engine.load(remote_options(local(server.url)))
    cancel = threading.Event()
    stopped: list[float] = []

    def press_stop() -> None:
        server.streaming.wait(10)
        stopped.append(time.monotonic())
        cancel.set()

    presser = threading.Thread(target=press_stop)
    presser.start()
    events = list(engine.stream(MESSAGES, SamplingParams(), cancel))
    presser.join()
    assert time.monotonic() - stopped[0] < STOP_WITHIN_S
    return events


def test_stop_while_the_server_is_silent_returns_at_once(engine: RemoteEngine) -> None:
    """A server still reading a long prompt sends nothing: Stop must not wait for its next byte."""
    with GarbageServer("silent") as server:
        events = stop_once_streaming(engine, server)
        done = events[-1]
        assert isinstance(done, Done) and done.stats.finish_reason is FinishReason.CANCELLED
        assert events[0] == Token("Hel") and done.stats.error is None


def test_stop_before_the_server_sent_its_headers_returns_at_once(engine: RemoteEngine) -> None:
    """The socket is shut down also while the request waits for the response headers."""
    with GarbageServer("hold") as server:
        events = stop_once_streaming(engine, server)
        [done] = events
        assert isinstance(done, Done) and done.stats.finish_reason is FinishReason.CANCELLED
        assert done.stats.error is None


def test_an_openai_server_gets_only_its_keys_and_reports_usage(engine: RemoteEngine) -> None:
    with GarbageServer("ok") as server:
        engine.load(remote_options(local(server.url, kind="openai")))
        params = SamplingParams(temperature=0.3, top_k=40, min_p=0.05, repeat_penalty=1.1, seed=7)
        events = list(engine.stream(MESSAGES, params))
    body = server.bodies[-1]
    assert body["model"] == "garbage-model" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert {k for k in body if k not in ("model", "messages", "stream", "stream_options")} == {
        "temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed"}  # fmt: skip
    done = events[-1]
    assert isinstance(done, Done)
    assert "".join(e.text for e in events if isinstance(e, Token)) == "Hello, world"
    assert done.stats.finish_reason is FinishReason.STOP
    assert (done.stats.prompt_tokens, done.stats.generated_tokens) == (11, 3)  # the server's usage, not a count
    assert done.receipt["ignored_sampling"] == ["top_k", "min_p", "repeat_penalty", "repeat_last_n"]


def test_sampling_tables_per_server_kind() -> None:
    params = SamplingParams(top_k=0, min_p=0.0, repeat_penalty=1.0, mirostat_mode=2, typical_p=0.9)
    body, ignored = sampling_body("llama.cpp", params, 5)
    assert body["mirostat"] == 2 and body["typical_p"] == 0.9 and body["seed"] == 5 and ignored == []
    body, ignored = sampling_body("openai", params, 5)
    assert ignored == ["typical_p", "mirostat_mode", "mirostat_tau", "mirostat_eta"]  # neutral values are not listed
    body, _ = sampling_body("vllm", SamplingParams(top_k=0, repeat_penalty=1.2), 5)
    assert body["top_k"] == -1 and body["repetition_penalty"] == 1.2


# -- URL policy and keys ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://8.8.8.8:8080", "http://[2001:4860:4860::8888]/v1", "ftp://127.0.0.1"])
def test_plain_http_to_a_public_address_is_refused(url: str) -> None:
    with pytest.raises(EndpointError):
        check_url(url)
    with pytest.raises(EndpointError):
        EndpointStore().add("public", url, confirm_http=True)
    assert EndpointStore().endpoints() == []


def test_http_to_private_addresses_needs_a_confirmed_warning(engine: RemoteEngine) -> None:
    assert check_url("https://api.example.com/v1/").url == "https://api.example.com" and not check_url(
        "https://api.example.com").warning  # fmt: skip
    for url in ("http://192.168.1.20:11434", "http://10.0.0.5:8000", "http://172.16.3.4", "http://[fd00::5]:80",
                "http://[fe80::1]:80", "http://box.localhost:8080"):  # fmt: skip
        assert "plain http" in check_url(url).warning, url
    store = EndpointStore()
    with pytest.raises(EndpointError, match=r"plain http.*Confirm"):
        store.add("lan", "http://192.168.1.20:11434")
    saved = store.add("lan", "http://192.168.1.20:11434/v1", kind="ollama", confirm_http=True)
    assert saved.allow_http and saved.url == "http://192.168.1.20:11434" and store.get("LAN") == saved
    with pytest.raises(ModelLoadError, match="plain http"):  # an endpoint whose warning was never confirmed
        engine.load(remote_options(Endpoint("lan", "http://192.168.1.20:11434")))


THIS_COMPUTER = ["http://127.0.0.1:8080", "http://127.1.2.3:11434/v1", "http://localhost:1234/v1", "http://LOCALHOST:1",
                 "http://[::1]:8080", "http://[::ffff:127.0.0.1]:8080"]  # fmt: skip


@pytest.mark.parametrize("url", THIS_COMPUTER)
def test_plain_http_to_this_computer_needs_no_warning(url: str) -> None:
    # Ollama, LM Studio and llama-server listen on loopback: nothing crosses a network, so there is nothing to confirm.
    checked = check_url(url)
    assert checked.warning == ""
    saved = EndpointStore().add("local", url)
    assert not saved.allow_http and saved.url == checked.url and EndpointStore().get("local") == saved


def test_the_api_key_goes_to_the_keyring_and_never_to_a_file(
    memory_keyring: MemoryKeyring, llamadesk_home: Path, engine: RemoteEngine, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-TopSecret0123456789"
    caplog.set_level("DEBUG")
    with GarbageServer("ok", api_key=secret) as server:
        store = EndpointStore()
        with pytest.raises(ModelLoadError, match="needs an API key"):
            engine.load(remote_options(store.add("keyed", server.url, confirm_http=True)))
        with pytest.raises(ModelLoadError, match="refused the API key"):
            engine.load(
                remote_options(store.add("keyed", server.url, confirm_http=True, api_key="sk-wrong", replace="keyed"))
            )
        endpoint = store.add("keyed", server.url, confirm_http=True, api_key=secret, replace="keyed")
        assert endpoint.has_key and memory_keyring.store == {("LlamaDesk", "endpoint-key:keyed"): secret}
        engine.load(remote_options(endpoint))
        assert isinstance(list(engine.stream(MESSAGES, SamplingParams()))[-1], Done)
        renamed = store.add("renamed", server.url, confirm_http=True, replace="keyed")  # the key moves along
        assert memory_keyring.store == {("LlamaDesk", "endpoint-key:renamed"): secret} and renamed.has_key
    for path in llamadesk_home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in caplog.text
    store.remove("renamed")
    assert memory_keyring.store == {} and store.endpoints() == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_certificate_that_cannot_be_verified_is_refused(tmp_path: Path, engine: RemoteEngine) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    with GarbageServer("ok", tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        with pytest.raises(LlamaDeskError, match=r"TLS certificate of https://127\.0\.0\.1:\d+ could not be verified"):
            engine.load(remote_options(Endpoint("selfsigned", server.url)))
