"""Database URLs (`dialect+driver://user:password@host:port/database?key=value`) as
SQLAlchemy's `make_url` reads and `render_as_string` writes them, without importing it:
importing SQLAlchemy costs a short command such as `maildesk tickets list` 250 ms."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from os import PathLike
from urllib.parse import parse_qsl, quote, quote_plus, unquote

# SQLAlchemy's own pattern (sqlalchemy.engine.url._parse_url), so both read a URL alike.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class DbUrl:
    """The parts of a database URL, decoded (a query key may be given more than once)."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: tuple[tuple[str, str], ...] = ()

    @property
    def backend(self) -> str:
        """The dialect without its driver: `postgresql` for `postgresql+psycopg`."""
        return self.drivername.partition("+")[0]

    def replace(self, **changes: object) -> DbUrl:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def libpq(self) -> str:
        """The URL as libpq (psycopg) reads it, query keys such as `host=` for a socket
        folder included: without SQLAlchemy's `+driver`, the password in clear."""
        return self.replace(drivername=self.backend).render(hide_password=False)

    def render(self, *, hide_password: bool = True) -> str:
        """The URL as text, as SQLAlchemy's `render_as_string` writes it (query keys sorted)."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            # sorted() is stable: repeated keys keep their order, as SQLAlchemy keeps them.
            pairs = sorted(self.query, key=lambda pair: pair[0])
            text += "?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
        return text


def parse_url(text: str) -> DbUrl:
    """The parts of a database URL; ValueError when it is not one."""
    match = _URL.match(text)
    if match is None:
        raise ValueError(f"not a database URL (dialect://...): {text!r}")
    parts = match.groupdict()
    username, password, database = (
        None if parts[name] is None else unquote(parts[name])
        for name in ("username", "password", "database")
    )
    return DbUrl(
        drivername=parts["name"],
        username=username,
        password=password,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=int(parts["port"]) if parts["port"] else None,
        database=database,
        query=tuple(parse_qsl(parts["query"])) if parts["query"] is not None else (),
    )


def libpq_conninfo(url: str) -> str | None:
    """The libpq connection string for a PostgreSQL URL; None for other databases."""
    parsed = parse_url(url)
    return parsed.libpq() if parsed.backend == "postgresql" else None


DEFAULT_DATABASE_URL = "sqlite:///maildesk.db"


def absolute_sqlite_url(url: str, base: str | PathLike[str]) -> str:
    """`url` with a relative SQLite file path made relative to `base` (the folder of
    maildesk.yaml); any other URL unchanged."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{os.path.join(base, relative)}"
    return url
