"""Quarantine: messages that could not be processed, kept raw with the reason."""

from __future__ import annotations

import email.parser
import email.policy
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.common.errors import NotFound
from maildesk.intake.header_values import decode_header_value
from maildesk.intake.raw_mail import IncomingMail
from maildesk.store.blobs import BlobStore, insert_blobs
from maildesk.store.models import QuarantineEntry


def quarantine_message(
    session: Session,
    blobs: BlobStore,
    raw: bytes | IncomingMail,
    source: str,
    stage: str,
    reason: str,
    now: datetime,
) -> QuarantineEntry:
    """Store `raw` and a quarantine row; the same bytes held twice make one entry."""
    mail = raw if isinstance(raw, IncomingMail) else IncomingMail.from_bytes(raw)
    digest = mail.store(blobs, lambda sha, data: insert_blobs(session, {sha: data}))
    entry = session.scalars(
        select(QuarantineEntry).where(
            QuarantineEntry.raw_sha256 == digest, QuarantineEntry.status == "held"
        )
    ).first()
    if entry is not None:
        entry.attempts += 1
        entry.reason = reason
        entry.stage = stage
        return entry
    subject, sender = _peek_headers(mail.head())
    entry = QuarantineEntry(
        received_at=now,
        source=source,
        raw_sha256=digest,
        raw_size=mail.size,
        reason=reason[:4000],
        stage=stage,
        status="held",
        attempts=1,
        subject=subject,
        from_addr=sender,
    )
    session.add(entry)
    session.flush()
    return entry


def _peek_headers(raw: bytes) -> tuple[str, str]:
    """Subject and From for display, best effort on bytes that failed to parse (the
    header block only: the body of a message the parser gave up on is not walked here)."""
    try:
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        msg = parser.parsebytes(raw[:65536])
        return (
            decode_header_value(msg.get("Subject", ""))[:500],
            decode_header_value(msg.get("From", ""))[:320],
        )
    except Exception:
        return "", ""


def get_entry(session: Session, entry_id: int) -> QuarantineEntry:
    entry = session.get(QuarantineEntry, entry_id)
    if entry is None:
        raise NotFound(
            f"quarantine entry {entry_id} does not exist; see `maildesk quarantine list`"
        )
    return entry
