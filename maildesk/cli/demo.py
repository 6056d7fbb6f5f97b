"""`maildesk demo`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo desk in this folder.",
)
def demo(keep: Path | None) -> None:
    """Run the whole flow on SQLite with bundled sample mail; no servers needed."""
    from maildesk.cli.common import echo
    from maildesk.cli.demo_run import run_demo

    run_demo(echo, keep)


COMMANDS = [demo]
