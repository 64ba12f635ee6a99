"""Subcommands of the `llamadesk` command: each module adds its parser and runs it (`add_parser`, `run`)."""

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_LOAD, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
