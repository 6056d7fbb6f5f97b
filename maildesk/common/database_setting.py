"""The database URL of maildesk.yaml, read with YAML alone when that is all it takes.

Short read-only commands (`maildesk tickets list`) need nothing else, and building the
config's pydantic models would cost them 100-125 ms, a third of their time. When the
`database` section is a plain URL (or left out) it is read here; anything else (a
password from a secret, a mistake anywhere in the file) is left to the whole config,
which validates it and says what is wrong.
"""

from __future__ import annotations

from pathlib import Path

from maildesk.common.db_url import DEFAULT_DATABASE_URL, absolute_sqlite_url, parse_url
from maildesk.common.redact import remember_secret


def plain_database_url(path: Path) -> str | None:
    """The database URL maildesk.yaml at `path` sets, as Config.database_url() gives it;
    None when only the whole config can tell (or say what is wrong)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None
    section = data.get("database", {})
    if not isinstance(section, dict) or set(section) - {"url"}:
        return None
    url = section.get("url", DEFAULT_DATABASE_URL)
    if not isinstance(url, str):
        return None
    try:
        remember_secret(parse_url(url).password, "database URL")
    except ValueError:
        return None
    return absolute_sqlite_url(url, path.resolve().parent)
