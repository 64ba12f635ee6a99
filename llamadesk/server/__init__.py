"""LlamaDesk as an OpenAI-compatible local server (off by default): /v1/models and /v1/chat/completions.

app.py the HTTP app (Starlette) · protocol.py the wire format · backend.py what it serves from (a job queue on the
one engine) · runner.py uvicorn in a thread · recording.py requests in the history under the "server" label.
The GUI's backend is ui/server_bridge.py; the CLI's is backend.EngineThreadBackend (`llamadesk serve`).
"""
