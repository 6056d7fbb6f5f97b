"""Which maildesk.yaml a command uses. Standard library only: the MTA pipe
(`maildesk ingest -`) finds its spool through this without loading the config model."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = "maildesk.yaml"
CONFIG_ENV = "MAILDESK_CONFIG"


def config_path(explicit: str | Path | None) -> Path:
    """The config file to use: --config, then $MAILDESK_CONFIG, then ./maildesk.yaml."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def config_named(explicit: str | Path | None) -> bool:
    """True when the file was named (--config or $MAILDESK_CONFIG), so it must exist."""
    return bool(explicit or os.environ.get(CONFIG_ENV))
