"""A local Hugging Face Hub look-alike for tests and benchmarks (no traffic leaves 127.0.0.1)."""

from fakehub.server import FakeHub, Faults, RemoteEntry, RequestRecord, wait_until

__all__ = ["FakeHub", "Faults", "RemoteEntry", "RequestRecord", "wait_until"]
