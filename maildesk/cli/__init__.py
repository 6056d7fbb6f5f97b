"""The `maildesk` command: wiring only; each group of commands lives in its own module.

Commands import what they use inside their functions, so `maildesk --help` and an
MTA's `maildesk ingest -` load little. May import every package.
"""

from __future__ import annotations

import sys
import traceback

import click

from maildesk.cli.common import CliContext, echo, setup_logging
from maildesk.common.errors import MaildeskError


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="MAILDESK_CONFIG",
    help="Config file (default ./maildesk.yaml, or $MAILDESK_CONFIG).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
@click.version_option(package_name="maildesk")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """maildesk: an email help desk that runs as a daemon."""
    setup_logging("debug" if verbose else None)
    ctx.obj = CliContext(config_path)
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from maildesk.cli import (
        daemon,
        demo,
        ingest,
        kb,
        outbox,
        quarantine,
        report,
        rules,
        satisfaction,
        setup,
        tickets,
    )

    modules = (
        setup,
        ingest,
        daemon,
        tickets,
        quarantine,
        outbox,
        rules,
        report,
        satisfaction,
        kb,
        demo,
    )
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Entry point: run the CLI, turning our errors into a message and exit code 1."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # its message may quote stored text
        echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MaildeskError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception:  # a bug: show the traceback, but never a secret in it
        echo(traceback.format_exc(), err=True)
        sys.exit(1)
