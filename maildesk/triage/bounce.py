"""Read a bounce (delivery status notification): which of our messages failed, for whom.

Pure: a parsed message in, a BounceReport out. The report's bytes were read by the
parser (`intake.delivery_status`, within its time and memory limits: RFC 3464 fields,
ARF, SES notifications, flufl.bounce's scan of free-text bounces); this picks what
concerns us: the returned message's id and ticket, or, for a bounce that only quotes
it as text, the first Message-ID of our own domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maildesk.intake.message import ParsedMessage, Recipient

__all__ = ["BounceReport", "Recipient", "read_bounce"]


@dataclass(frozen=True)
class BounceReport:
    """What a bounce says about a message we sent."""

    original_message_id: str | None = None
    ticket_ref: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    kind: str = "bounce"  # bounce, complaint (ARF, SES) or delivery (SES: it arrived)

    @property
    def failed(self) -> list[Recipient]:
        return [r for r in self.recipients if r.failed]

    def summary(self) -> str:
        """One line for the event log: who failed and why."""
        if not self.recipients:
            return "delivery failed (no per-recipient report)"
        return "; ".join(
            f"{r.address}: {r.action or 'failed'} {r.status} {r.diagnostic}".strip()
            for r in self.recipients
        )


def read_bounce(msg: ParsedMessage, *, own_domain: str) -> BounceReport:
    """The report in a bounce; empty fields where the bounce does not say (or the
    message was not read as one: only mail that may be a report is)."""
    status = msg.delivery
    if status is None:
        return BounceReport()
    recipients = list(status.recipients)
    if status.quoted_id or status.quoted_ref:
        message_id, ref = status.quoted_id, status.quoted_ref
    else:
        message_id, ref = status.text_ids.get(own_domain.lower()), status.text_ref
    # An SES notification names the message it is about in its JSON.
    return BounceReport(status.reported_id or message_id, ref, recipients, status.kind)
