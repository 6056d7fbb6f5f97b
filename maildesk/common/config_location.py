"""Which maildesk.yaml a command uses. Only os is imported: the MTA pipe (`maildesk
ingest -`) finds its spool through this, and each import is paid once per message."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself costs the pipe a few milliseconds
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_CONFIG = "maildesk.yaml"
CONFIG_ENV = "MAILDESK_CONFIG"


def config_file(explicit: str | os.PathLike[str] | None) -> str:
    """The config file to use: --config, then $MAILDESK_CONFIG, then ./maildesk.yaml."""
    return os.fspath(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """`config_file` as a Path."""
    from pathlib import Path

    return Path(config_file(explicit))


def config_named(explicit: str | os.PathLike[str] | None) -> bool:
    """True when the file was named (--config or $MAILDESK_CONFIG), so it must exist."""
    return bool(explicit or os.environ.get(CONFIG_ENV))
