"""`maildesk init`, `maildesk check` and `maildesk db upgrade|status`."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import click

from maildesk.cli.common import CliContext, echo, pass_cli
from maildesk.common.errors import FileProblems, MaildeskError
from maildesk.common.redact import redact
from maildesk.common.resources import default_templates_dir, example_config, example_rules


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, force: bool) -> None:
    """Write a working maildesk.yaml, rules.yaml and templates/ into DIRECTORY."""
    from maildesk.common.config_file import load_config
    from maildesk.store.db import make_engine, upgrade

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the desk's mail goes here
    written = []
    for source, target in ((example_config(), "maildesk.yaml"), (example_rules(), "rules.yaml")):
        path = directory / target
        if path.exists() and not force:
            echo(f"kept existing {path}")
            continue
        _write_private(path, source.read_bytes())
        written.append(path)
    templates = directory / "templates"
    if not templates.exists() or force:
        shutil.copytree(default_templates_dir(), templates, dirs_exist_ok=True)
        written.append(templates)
        config_file = directory / "maildesk.yaml"
        text = config_file.read_text(encoding="utf-8")
        text = text.replace("# templates: templates", "templates: templates")
        _write_private(config_file, text.encode("utf-8"))
    key = directory / "reply.key"
    if not key.exists():  # signs agents' reply addresses (tickets.reply_secret)
        write_secret_file(key)
        written.append(key)
    config = load_config(directory / "maildesk.yaml")
    engine = make_engine(config.database_url())
    upgrade(engine)
    engine.dispose()
    for path in written:
        echo(f"wrote {path}")
    echo(f"database ready: {redact(config.database.url)}")
    echo("next: edit maildesk.yaml and rules.yaml, then `maildesk check`")


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600, also when it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


def write_secret_file(path: Path) -> None:
    """A new random secret in a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")


@click.command()
@pass_cli
def check(cli: CliContext) -> None:
    """Validate the config, the rules, the templates and the database schema."""
    problems = 0
    try:
        config = cli.config()
        echo(f"ok   config {config.source}")
    except FileProblems as exc:
        echo(str(exc), err=True)
        raise SystemExit(1) from None
    for name, check_fn in _checks():
        try:
            message = check_fn(config)
            echo(f"ok   {name}: {message}")
        except FileProblems as exc:
            problems += len(exc.problems)
            echo(f"FAIL {name}:\n{redact(str(exc))}", err=True)
        except MaildeskError as exc:
            problems += 1
            echo(f"FAIL {name}: {redact(str(exc))}", err=True)
    if problems:
        raise SystemExit(1)


def _checks() -> list:
    from maildesk.service.checks import CHECKS

    return CHECKS


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command("upgrade")
@pass_cli
def db_upgrade(cli: CliContext) -> None:
    """Create or migrate the database schema to the newest revision."""
    from maildesk.store.db import make_engine, schema_revisions, upgrade

    engine = make_engine(cli.config().database_url())
    before, head = schema_revisions(engine)
    upgrade(engine)
    engine.dispose()
    echo(f"database at revision {head}" + ("" if before == head else f" (was {before or 'empty'})"))


@db.command("status")
@pass_cli
def db_status(cli: CliContext) -> None:
    """Show the schema revision of the database and the newest one."""
    from maildesk.store.db import make_engine, schema_revisions

    engine = make_engine(cli.config().database_url())
    current, head = schema_revisions(engine)
    engine.dispose()
    echo(f"database revision {current or '(none)'}; newest {head}")
    if current != head:
        echo("run `maildesk db upgrade`")
        raise SystemExit(1)


COMMANDS = {c.name: c for c in [init, check, db]}
