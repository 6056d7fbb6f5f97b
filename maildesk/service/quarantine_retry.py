"""`maildesk quarantine retry`: a held message through the pipeline again."""

from __future__ import annotations

from maildesk.common.errors import NotFound
from maildesk.service.desk import Desk
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.store.quarantine import get_entry


def retry_entry(desk: Desk, entry_id: int) -> IngestResult:
    """Re-run a held entry; on success it is marked released with its ticket."""
    with desk.sessions() as session:
        entry = get_entry(session, entry_id)
        if entry.status != "held":
            raise NotFound(
                f"quarantine entry {entry_id} was already released to {entry.ticket_ref}"
            )
        raw = desk.blobs.open(entry.raw_sha256, session)
        source = entry.source
    with raw:  # streamed: a big quarantined message is never read into memory whole
        result = desk.pipeline.process_file(raw, SourceInfo(source=f"{source} (retry)"))
    with desk.sessions() as session, session.begin():
        entry = get_entry(session, entry_id)
        if result.stored:
            entry.status = "released"
            entry.ticket_ref = result.ticket_ref
    return result
