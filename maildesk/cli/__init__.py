"""Stage 10, cli: the `maildesk` command. May import every package.

`main` is the console script. It hands an MTA's `maildesk ingest -` to `mta_pipe`,
which spools the message without importing click or the pipeline, and everything
else to the click group in `app` (imported here only when used, so `from maildesk.cli
import cli` still works).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs an MTA's `ingest -` a few milliseconds
if TYPE_CHECKING:
    from typing import Any


def main() -> None:
    """Entry point of the `maildesk` command."""
    from maildesk.cli.mta_pipe import fast_ingest

    code = fast_ingest(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from maildesk.cli.app import run

    run()


def __getattr__(name: str) -> Any:
    if name in ("cli", "COMMANDS", "LazyGroup"):
        from maildesk.cli import app

        return getattr(app, name)
    raise AttributeError(f"module 'maildesk.cli' has no attribute {name!r}")
