"""Shared CLI plumbing: lazy config/Desk loading, logging, table output."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from maildesk.common.config import Config


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
        from maildesk.common.config import load_config

        if self._config is None:
            explicit = self.config_path_arg is not None
            self._config = load_config(
                self.path, missing_ok=not explicit and not self.path.exists()
            )
            if not self.path.exists():
                click.echo(
                    f"note: {self.path} not found; using built-in defaults (run `maildesk init`)",
                    err=True,
                )
        return self._config

    def desk(self, *, check_schema: bool = True) -> Any:
        from maildesk.service.desk import Desk

        if self._desk is None:
            self._desk = Desk.build(self.config(), check_schema=check_schema)
        return self._desk

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


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def print_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], *, max_width: int = 40
) -> None:
    """A plain aligned table; long cells are cut with an ellipsis."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = " ".join(text.split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [[title for _, title in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for index, row in enumerate(table):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))
