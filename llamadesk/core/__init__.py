"""Plain-Python core of LlamaDesk: no Qt here, importable and testable without a display."""
