"""Shared CLI plumbing: lazy config/Desk loading, logging, and every line of output.

Commands print only through `echo`, `fail`, `print_table` and `print_json` (ruff bans
click.echo elsewhere): what they print comes from mail and from servers, so secrets
are redacted and control characters are made harmless here, once.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click

from maildesk.common.redact import redact

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from maildesk.common.config import Config

# C0 controls except tab and newline, DEL and C1 controls: an encoded-word Subject can
# carry ESC ] ... BEL, which retitles the terminal (or worse) when printed raw.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# json.dumps escapes U+0000-U+001F itself; DEL and C1 controls it leaves raw.
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f]")


def setup_logging(level: str | None) -> None:
    logging.basicConfig(
        level=getattr(logging, (level or "warning").upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


class CliContext:
    """What every command needs, loaded only when a command asks for it."""

    def __init__(self, config_path_arg: str | None):
        self.config_path_arg = config_path_arg
        self._config: Config | None = None
        self._desk: Any = None
        self._engine: Engine | None = None
        self._readers: sessionmaker[Session] | None = None

    @property
    def path(self) -> Path:
        from maildesk.common.config_location import config_path

        return config_path(self.config_path_arg)

    def config(self) -> Config:
        from maildesk.common.config_file import load_config

        if self._config is None:
            explicit = self.config_path_arg is not None
            self._config = load_config(
                self.path, missing_ok=not explicit and not self.path.exists()
            )
            if not self.path.exists():
                echo(
                    f"note: {self.path} not found; using built-in defaults (run `maildesk init`)",
                    err=True,
                )
        return self._config

    def desk(self, *, check_schema: bool = True) -> Any:
        from maildesk.service.desk import Desk

        if self._desk is None:
            self._desk = Desk.build(self.config(), check_schema=check_schema)
        return self._desk

    def database_url(self) -> str:
        """The database URL: read with YAML alone when the file sets no more than that
        (see common.database_setting), else from the whole, validated config."""
        if self._config is None and self.path.exists():
            from maildesk.common.database_setting import plain_database_url

            url = plain_database_url(self.path)
            if url is not None:
                return url
        return self.config().database_url()

    def read_session(self) -> Session:
        """A read-only session on the (schema-checked) database, for commands that only
        show things: they need no rules, templates or pipeline."""
        if self._desk is not None:
            return self._desk.read_session()
        if self._readers is None:
            from maildesk.store.db import (
                make_engine,
                make_read_sessionmaker,
                require_current_schema,
            )

            self._engine = make_engine(self.config().database_url())
            require_current_schema(self._engine)
            self._readers = make_read_sessionmaker(self._engine)
        return self._readers()

    def close(self) -> None:
        if self._desk is not None:
            self._desk.close()
        if self._engine is not None:
            self._engine.dispose()


pass_cli = click.make_pass_decorator(CliContext)


def terminal_safe(text: str) -> str:
    """`text` with each control character shown as its Unicode picture (ESC as ␛, DEL
    as ␡; C1 controls, which have none, as �), so a terminal only displays it."""
    return _CONTROLS.sub(_picture, text)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def echo(message: Any = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line of text: secrets redacted, control characters made visible."""
    click.echo(terminal_safe(redact(str(message))), err=err, nl=nl)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print `Error: message` to stderr, as click does, and exit."""
    echo(f"Error: {message}", err=True)
    raise SystemExit(exit_code)


def json_text(data: Any) -> str:
    """`data` as indented JSON: strings redacted, every control character escaped."""
    text = json.dumps(
        _redacted(data), ensure_ascii=False, indent=2, default=lambda v: redact(str(v))
    )
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _redacted(data: Any) -> Any:
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: _redacted(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_redacted(value) for value in data]
    return data


def print_json(data: Any) -> None:
    click.echo(json_text(data))


def print_rows(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    *,
    as_json: bool,
    empty: str,
    max_width: int = 40,
) -> None:
    """A listing: rows as a JSON array, or as a table, or `empty` when there are none."""
    if as_json:
        print_json(rows)
    elif rows:
        print_table(rows, columns, max_width=max_width)
    else:
        echo(empty)


def show_kept_mail(
    cli: CliContext,
    entry_id: int,
    raw: bool,
    get: Callable[[Session, int], Any],
    row: Callable[[Any], dict[str, Any]],
) -> None:
    """One kept message (quarantined, automatic): its row as JSON, or with `raw` its bytes."""
    desk = cli.desk()
    with desk.read_session() as session:
        entry = get(session, entry_id)
        if raw:
            write_bytes(desk.blobs.open(entry.raw_sha256, session))
            return
        print_json(row(entry))


def print_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], *, max_width: int = 40
) -> None:
    """A plain aligned table; long cells are cut with an ellipsis."""

    def cell(value: Any) -> str:
        text = "" if value is None else terminal_safe(redact(str(value)))
        text = " ".join(text.split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [[title for _, title in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for index, row in enumerate(table):
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            echo("  ".join("-" * w for w in widths))


def write_bytes(data: bytes | BinaryIO) -> None:
    """Write raw bytes (or a stream of them, in chunks) to standard output, unchanged:
    what `--raw` options print (a terminal shows them as they are)."""
    out = sys.stdout.buffer
    if isinstance(data, bytes | bytearray):
        out.write(data)
    else:
        with data:
            shutil.copyfileobj(data, out, 1 << 20)
    out.flush()
