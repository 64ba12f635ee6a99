"""`python -m llamadesk` runs the same entry point as the `llamadesk` command."""

import sys

from llamadesk.cli import main

sys.exit(main())
