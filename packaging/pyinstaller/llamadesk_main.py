"""PyInstaller entry point: the frozen app runs the same `llamadesk` command as the installed package."""

from __future__ import annotations

import sys

from llamadesk.cli import main

if __name__ == "__main__":
    sys.exit(main())
