"""The `maildesk` click group: wiring only; each group of commands lives in its own module.

Commands import what they use inside their functions, so `maildesk --help` loads little
(an MTA's `maildesk ingest -` does not even get here: see `maildesk.cli.mta_pipe`).
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from maildesk.cli.common import CliContext, echo, setup_logging
from maildesk.common.errors import MaildeskError

# Every command, the module that defines it, and its one-line help for `maildesk --help`.
# A command's module is imported only when that command runs, so `maildesk --help` and an
# MTA's `maildesk ingest -` do not pay for the rest (tests/test_cli_startup.py checks).
COMMANDS: dict[str, tuple[str, str]] = {
    "automatic": ("automatic", "Bounces and auto-replies that matched no ticket, kept apart."),
    "blobs": ("blobs", "Stored messages and attachments: move blob files into the database."),
    "check": ("setup", "Validate the config, the rules, the templates and the secrets."),
    "db": ("setup", "Database schema migrations."),
    "demo": ("demo", "Run the whole flow on SQLite with bundled sample mail."),
    "ingest": ("ingest", "Ingest .eml files, a Maildir, or spool one message from stdin."),
    "init": ("setup", "Write a working maildesk.yaml, rules.yaml and templates/."),
    "kb": ("kb", "Knowledge-base articles: suggestions and #kb NAME."),
    "outbox": ("outbox", "Notifications: waiting, sent, failed; resend them."),
    "quarantine": ("quarantine", "Messages that could not be processed, with the reason."),
    "rate": ("satisfaction", "Record the rating in a rating link's TOKEN."),
    "report": ("report", "Figures: tickets created and resolved, response times, SLA."),
    "rules": ("rules", "Check rules.yaml and try messages against it."),
    "run": ("daemon", "Run the daemon in the foreground: ingest every mailbox."),
    "status": ("daemon", "Show each mailbox: state, owner, last success, backlog, error."),
    "tickets": ("tickets", "List, search and show tickets."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, listed from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"maildesk.cli.{COMMANDS[cmd_name][0]}")
        found: click.Command = module.COMMANDS[cmd_name]
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
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


def run() -> None:
    """Run the CLI, turning our errors into a message and exit code 1."""
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
