"""`maildesk demo`."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from itertools import count
from pathlib import Path

import click

DEMO_FOLDER = "maildesk-demo"


@click.command()
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo desk in this folder (new or empty).",
)
def demo(keep: Path | None) -> None:
    """Run the whole flow on SQLite with bundled sample mail; no servers needed."""
    from maildesk.cli.common import echo
    from maildesk.cli.demo_run import run_demo

    if keep is not None and keep.is_dir() and any(keep.iterdir()):
        raise click.BadParameter(
            f"{keep} is not empty; give a new or empty folder (the demo writes its own "
            "maildesk.yaml and rules.yaml there)",
            param_hint="--keep",
        )
    summary = run_demo(echo, keep)
    first = summary["tickets"][0]["ref"]
    for line in closing_hint(keep, first, shell_command()):
        echo(line)


def closing_hint(keep: Path | None, ref: str, maildesk: str) -> list[str]:
    """The demo's last lines: commands that work when pasted, on a desk that exists then."""
    if keep is not None:
        config = shlex.quote(str(keep / "maildesk.yaml"))
        return [f"\nSee one ticket in full with: {maildesk} --config {config} tickets show {ref}\n"]
    folder = shlex.quote(_unused_folder())
    return [
        "\nThe demo desk was temporary and is gone. To keep one and see a ticket in full:",
        f"  {maildesk} demo --keep {folder}",
        f"  {maildesk} --config {folder}/maildesk.yaml tickets show {ref}\n",
    ]


def _unused_folder() -> str:
    # Under the current folder when we may write there, else under the home folder.
    base = Path() if os.access(".", os.W_OK) else Path.home()
    names = (DEMO_FOLDER if n == 1 else f"{DEMO_FOLDER}-{n}" for n in count(1))
    return str(next(base / name for name in names if not (base / name).exists()))


def shell_command() -> str:
    """How to run this maildesk from a shell: `maildesk` when that is the one on PATH, else
    the path of the script that is running (as `bash scripts/demo` runs .venv/bin/maildesk)."""
    script = Path(sys.argv[0])
    if script.name != "maildesk" or not script.is_file():
        return f"{shlex.quote(sys.executable)} -m maildesk"
    on_path = shutil.which("maildesk")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "maildesk"
    # Relative below the current folder (".venv/bin/maildesk"), else the whole path.
    resolved, here = script.resolve(), Path.cwd().resolve()
    text = str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)
    return shlex.quote(text if "/" in text else f"./{text}")


COMMANDS = {c.name: c for c in [demo]}
