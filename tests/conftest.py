"""Shared fixtures: a desk on SQLite in a temp folder, a controllable clock, mail builders."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from maildesk.common.config_file import load_config
from maildesk.common.resources import example_rules
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade

pytest_plugins = ["tests.servers"]

SUPPORT = "support@example.com"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def write_config(
    directory: Path,
    *,
    database_url: str | None = None,
    extra: str = "",
    support: str = SUPPORT,
    prefix: str = "MD",
) -> Path:
    """A maildesk.yaml in `directory` with SQLite there (or `database_url`)."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "rules.yaml").exists():
        shutil.copyfile(example_rules(), directory / "rules.yaml")
    url = database_url or "sqlite:///maildesk.db"
    key = directory / "reply.key"
    if not key.exists():  # signs agents' reply addresses, as `maildesk init` makes it
        key.write_text(secrets.token_hex(32), encoding="utf-8")
    storage = "" if "storage:" in extra else "storage:\n  path: data\n"
    (directory / "maildesk.yaml").write_text(
        f"""
database:
  url: {url}
{storage}tickets:
  prefix: {prefix}
  support_address: {support}
  support_name: Example Support
  reply_secret: {{file: reply.key}}
rules: rules.yaml
{extra}
""",
        encoding="utf-8",
    )
    return directory / "maildesk.yaml"


@pytest.fixture
def make_desk(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Desk]]:
    """Build desks on fresh SQLite databases (or a given URL), closed after the test."""
    desks: list[Desk] = []

    def build(
        name: str = "desk",
        *,
        database_url: str | None = None,
        extra: str = "",
        rules: str | None = None,
        support: str = SUPPORT,
        prefix: str = "MD",
    ) -> Desk:
        directory = tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        if rules is not None:
            (directory / "rules.yaml").write_text(rules, encoding="utf-8")
        path = write_config(
            directory, database_url=database_url, extra=extra, support=support, prefix=prefix
        )
        config = load_config(path)
        engine = make_engine(config.database_url())
        upgrade(engine)
        engine.dispose()
        desk = Desk.build(config, clock=clock)
        desks.append(desk)
        return desk

    yield build
    for desk in desks:
        desk.close()


@pytest.fixture
def desk(make_desk: Callable[..., Desk]) -> Desk:
    return make_desk()


_counter = iter(range(1, 10**9))


def make_mail(
    *,
    sender: str = "Customer <customer@example.org>",
    to: str = SUPPORT,
    cc: str | None = None,
    subject: str = "Help please",
    body: str = "Something is broken.",
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    """A well-formed message as bytes; `message_id=None` leaves the header out."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    if message_id == "auto":
        message_id = f"<test-{next(_counter)}@example.org>"
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    for filename, ctype, data in attachments or []:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


@pytest.fixture
def desk_dir(tmp_path: Path) -> Path:
    """A desk made by `maildesk init` (SQLite, example rules and templates)."""
    from click.testing import CliRunner

    from maildesk.cli import cli

    result = CliRunner().invoke(cli, ["init", str(tmp_path / "desk")])
    assert result.exit_code == 0, result.output
    return tmp_path / "desk"


def run_maildesk(desk_dir: Path, *args: str, input: str | bytes | None = None):
    """Run the maildesk command against the desk in `desk_dir`."""
    from click.testing import CliRunner

    from maildesk.cli import cli

    return CliRunner().invoke(
        cli, ["--config", str(desk_dir / "maildesk.yaml"), *args], input=input
    )
