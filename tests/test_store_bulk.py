"""Rows written in bulk get the same defaults as rows the ORM writes."""

from __future__ import annotations

from sqlalchemy import select

from maildesk.store.bulk import Rows
from maildesk.store.models import Event, Participant
from tests.conftest import make_mail


def test_bulk_rows_get_the_models_defaults_on_sqlite(desk, clock):
    desk.pipeline.process_one(make_mail())  # MD-1
    rows = Rows()
    rows.add(Event, ticket_id=1, at=clock(), actor="system", kind="test")  # no reason given
    rows.add(Participant, ticket_id=1, address="x@example.org", role="cc")  # no name, bouncing
    with desk.sessions() as session, session.begin():
        rows.insert(session)
    with desk.sessions() as session:
        event = session.scalars(select(Event).where(Event.kind == "test")).one()
        person = session.scalars(
            select(Participant).where(Participant.address == "x@example.org")
        ).one()
        assert event.reason == ""  # not NULL, which `tickets show --json` would print as null
        assert (person.name, person.bouncing) == ("", False)
