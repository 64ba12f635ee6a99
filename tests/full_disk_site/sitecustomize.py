"""Started with a child process by tests/full_disk.py where no tmpfs can be mounted: its writes meet a full disk."""

import os
from pathlib import Path

if os.environ.get("LLAMADESK_TEST_FULL_DISK"):
    import full_disk

    full_disk.install(Path(os.environ["LLAMADESK_TEST_FULL_DISK"]))
