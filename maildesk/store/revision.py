"""The schema revision this maildesk needs, and the check every command makes against it.

It imports nothing heavy: `maildesk tickets list` checks the revision without SQLAlchemy.
"""

from __future__ import annotations

from maildesk.common.errors import SchemaOutOfDate

# The newest migration in migrations/versions; tests/test_migrations.py checks it is
# Alembic's head, so a new migration must update it.
HEAD_REVISION = "0010_answered_mail"


def recorded_revision(versions: list[str]) -> str | None:
    """The revision from the rows of `alembic_version` (None: no maildesk schema)."""
    return versions[0] if len(versions) == 1 else ",".join(sorted(versions)) or None


def require_revision(current: str | None, where: str) -> None:
    """Raise SchemaOutOfDate unless `current` is HEAD_REVISION; `where` names the database
    (its URL without the password)."""
    if current != HEAD_REVISION:
        state = "has no maildesk schema" if current is None else f"is at revision {current}"
        raise SchemaOutOfDate(
            f"the database {where} {state}, but this maildesk needs {HEAD_REVISION}; "
            "run `maildesk db upgrade` first"
        )
