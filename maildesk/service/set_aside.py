"""Keeping automatic mail that matches no ticket apart from the agents' queue.

The batch planner asks `decide.inbound.sets_aside`; when it says so, the message is
stored here (raw bytes in the blob store, a row in `automatic_mail`) in the batch's
transaction instead of becoming a ticket, and its result says `automatic`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from maildesk.intake.message import ParsedMessage
from maildesk.intake.message_reader import MessageReader
from maildesk.intake.raw_mail import IncomingMail
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.store.automatic import keep_automatic, kept_keys
from maildesk.store.blobs import insert_blobs
from maildesk.store.bounce_flags import our_notifications
from maildesk.store.writer import add_receipt
from maildesk.triage.bounce import BounceReport
from maildesk.triage.screen import MailClass, Screening

if TYPE_CHECKING:
    from maildesk.service.batch_entry import BatchEntry


def automatic_kind(screening: Screening, report: BounceReport | None) -> str:
    """bounce, delay, complaint, delivery, auto_reply, receipt or own."""
    if screening.kind is MailClass.OWN:
        return "own"
    if report is not None:
        if report.kind != "bounce":
            return report.kind
        if report.recipients and not report.failed:
            return "delay"
    return screening.subtype or screening.kind.value


def report_details(report: BounceReport | None) -> dict[str, Any]:
    """What a report says, for `maildesk automatic show`."""
    if report is None:
        return {}
    return {
        "original_message_id": report.original_message_id,
        "recipients": [
            {
                "address": r.address,
                "action": r.action,
                "status": r.status,
                "diagnostic": r.diagnostic,
            }
            for r in report.recipients
        ],
    }


def set_aside(
    session: Session,
    reader: MessageReader,
    mail: IncomingMail,
    msg: ParsedMessage,
    screening: Screening,
    report: BounceReport | None,
    source: SourceInfo,
    now: datetime,
) -> IngestResult:
    """Store `msg` as automatic mail (no ticket) and record its receipt."""
    raw_sha256 = reader.keep_raw(mail, msg, lambda sha, data: insert_blobs(session, {sha: data}))
    kind = automatic_kind(screening, report)
    entry = keep_automatic(
        session,
        msg,
        kind=kind,
        reason=screening.reason,
        raw_sha256=raw_sha256,
        source=source.source,
        details=report_details(report),
        now=now,
    )
    if source.receipt:
        add_receipt(session, source.receipt, msg.dedup_key, "automatic", now)
    return IngestResult(
        "automatic", automatic_id=entry.id, automatic_kind=kind, reason=screening.reason
    )


def keep_once(
    session: Session,
    reader: MessageReader,
    entry: BatchEntry,
    msg: ParsedMessage,
    receipts: set[tuple[str, int, int]],
    kept: dict[str, int],
    now: datetime,
) -> IngestResult:
    """Set `msg` aside, or report it a duplicate of the automatic mail kept as `kept[key]`.
    `receipts` and `kept` are the batch's, updated for the messages after it."""
    assert entry.screening is not None
    receipt = entry.source.receipt
    earlier = kept.get(msg.dedup_key)
    if earlier is not None:
        if receipt and receipt not in receipts:
            add_receipt(session, receipt, msg.dedup_key, "duplicate", now)
            receipts.add(receipt)
        reason = f"already kept as automatic mail {earlier}"
        return IngestResult("duplicate", automatic_id=earlier, reason=reason)
    result = set_aside(
        session, reader, entry.mail, msg, entry.screening, entry.bounce, entry.source, now
    )
    assert result.automatic_id is not None
    kept[msg.dedup_key] = result.automatic_id
    if receipt:
        receipts.add(receipt)
    return result


def returned_and_kept(session: Session, entries: list[BatchEntry]) -> dict[str, int]:
    """Mark the bounces that return notifications we sent (`returns_ours`); return the
    batch's automatic mail already kept: dedup key -> automatic mail id."""
    originals = {e.bounce.original_message_id for e in entries if e.bounce}
    ours = our_notifications(session, [i for i in originals if i])
    for entry in entries:
        entry.returns_ours = bool(entry.bounce and entry.bounce.original_message_id in ours)
    keys = [
        e.parsed.dedup_key
        for e in entries
        if e.screening and e.screening.automatic and isinstance(e.parsed, ParsedMessage)
    ]
    return kept_keys(session, keys)
