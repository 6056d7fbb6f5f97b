"""Alembic environment: the engine comes from maildesk, not from alembic.ini."""

from typing import Any

from alembic import context

from maildesk.store.models import Base, UTCDateTime

engine = context.config.attributes["engine"]


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    # Autogenerate would write `maildesk.store.models.UTCDateTime(...)` into the revision,
    # tying an old migration to the live models; its column type is a plain DateTime.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
    )
    context.run_migrations()
