"""Shared CLI plumbing: lazy config/Desk loading, logging, table output."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from maildesk.common.config import Config, config_path, load_config


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

    @property
    def path(self) -> Path:
        return config_path(self.config_path_arg)

    def config(self) -> Config:
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

    def close(self) -> None:
        if self._desk is not None:
            self._desk.close()


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
