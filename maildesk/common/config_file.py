"""Reading maildesk.yaml: every problem at once, each with file, line and a fix.

The sections themselves are the models in `common.config`; this turns a YAML file
into a validated Config, with relative paths made relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from maildesk.common.config import Config
from maildesk.common.config_problems import problems_from
from maildesk.common.db_url import absolute_sqlite_url
from maildesk.common.errors import ConfigError
from maildesk.common.yamlfile import load_yaml_file


def load_config(path: Path, *, missing_ok: bool = False) -> Config:
    """Load and validate maildesk.yaml; raise ConfigError listing every problem."""
    if missing_ok and not path.exists():
        return _resolve_paths(Config(), Path.cwd())
    doc, problems = load_yaml_file(path)
    if problems:
        raise ConfigError(str(path), problems)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [doc.problem((), "the file must be a mapping of sections")])
    try:
        config = Config.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(str(path), problems_from(exc, doc, Config)) from None
    return _resolve_paths(config, path.resolve().parent)


def _resolve_paths(config: Config, base: Path) -> Config:
    """Every relative path in the config (files, folders, SQLite URL) made relative to `base`."""
    config = _absolutize(config, base)
    url = absolute_sqlite_url(config.database.url, base)
    if url != config.database.url:
        database = config.database.model_copy(update={"url": url})
        config = config.model_copy(update={"database": database})
    return config


def _absolutize(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, list):
        return [_absolutize(v, base) for v in value]
    if isinstance(value, BaseModel):
        updates = {
            name: _absolutize(getattr(value, name), base) for name in type(value).model_fields
        }
        return value.model_copy(update=updates)
    return value
