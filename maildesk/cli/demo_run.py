"""`maildesk demo`: the whole flow on SQLite in a temporary folder, with bundled sample mail."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from maildesk.common.config_file import load_config
from maildesk.common.resources import example_config, example_rules, sample_messages
from maildesk.outgoing.render_jobs import render_entry
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade
from maildesk.store.models import OutboxEntry
from maildesk.store.queries import list_tickets

DEMO_REPLY_SECRET = "maildesk-demo-only-not-a-secret"


def run_demo(echo: Callable[[str], None], keep: Path | None = None) -> dict:
    """Ingest the sample mail into a fresh desk; print what happened; return a summary."""
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="maildesk-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(example_config(), workdir / "maildesk.yaml")
        shutil.copyfile(example_rules(), workdir / "rules.yaml")
        # A fixed reply secret, so the bundled agent reply (07) carries a valid signed
        # reply address; a real desk gets a random one from `maildesk init`.
        (workdir / "reply.key").write_text(DEMO_REPLY_SECRET, encoding="utf-8")
        config = load_config(workdir / "maildesk.yaml")
        engine = make_engine(config.database_url())
        upgrade(engine)
        engine.dispose()
        desk = Desk.build(config)
        try:
            return _ingest_and_report(desk, echo, workdir)
        finally:
            desk.close()
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _ingest_and_report(desk: Desk, echo: Callable[[str], None], workdir: Path) -> dict:
    from maildesk.cli.common import print_table
    from maildesk.cli.tickets import TICKET_COLUMNS
    from maildesk.service.ingest_results import SourceInfo

    echo(f"maildesk demo: SQLite database and blob store in {workdir}\n")
    echo("Ingesting the bundled sample mail:")
    outcomes = []
    for path in sample_messages():
        result = desk.pipeline.process_one(
            path.read_bytes(), SourceInfo(source=f"demo:{path.name}")
        )
        target = result.ticket_ref or (
            f"automatic #{result.automatic_id}"
            if result.automatic_id is not None
            else f"quarantine #{result.quarantine_id}"
        )
        why = f"  ({result.reason})" if result.reason else ""
        echo(f"  {path.name:34} -> {result.outcome:11} {target}{why}")
        outcomes.append(result.outcome)
    with desk.sessions() as session:
        tickets = list(reversed(list_tickets(session)))
        notices = session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)).all()
        echo("\nTickets:")
        print_table(tickets, TICKET_COLUMNS)
        echo(f"\nNotifications queued in the outbox ({len(notices)}; the demo sends none):")
        rows = []
        for n in notices:
            # Rendered for display, not committed.
            render_entry(n, desk.renderer, desk.config, desk.blobs)
            rows.append(
                {"template": n.template, "to": ", ".join(n.recipients), "subject": n.subject}
            )
        print_table(
            rows, [("template", "TEMPLATE"), ("to", "TO"), ("subject", "SUBJECT")], max_width=60
        )
    return {"outcomes": outcomes, "tickets": tickets, "notifications": len(notices)}
