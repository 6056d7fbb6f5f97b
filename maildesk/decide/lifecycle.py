"""The ticket lifecycle: new -> open -> pending -> resolved -> closed, and back.

Pure rules about when a ticket reopens, closes itself, or stays as it is.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from maildesk.common.domain import Status

# Which status an agent may set from which; anything else is explained and refused.
ALLOWED: dict[Status, set[Status]] = {
    Status.NEW: {Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED},
    Status.OPEN: {Status.PENDING, Status.RESOLVED, Status.CLOSED},
    Status.PENDING: {Status.OPEN, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.OPEN, Status.PENDING, Status.CLOSED},
    Status.CLOSED: {Status.OPEN},
}

_THANKS = re.compile(
    r"^\W*(?:"
    r"thanks?(?: you)?(?: (?:a lot|so much|very much))?|thx|ty|many thanks|cheers|perfect|great"
    r"|danke(?: schön| sehr)?|vielen dank|merci(?: beaucoup)?|gracias|grazie|dzięki|dziękuję"
    r"|спасибо(?: большое)?|благодарю|дякую|ok,? thanks"
    r")\W*$",
    re.IGNORECASE,
)


def transition_problem(current: Status, wanted: Status) -> str:
    """Why an agent may not move a ticket from `current` to `wanted`, or '' if allowed."""
    if wanted == current:
        return ""
    if wanted in ALLOWED[current]:
        return ""
    allowed = ", ".join(sorted(s.value for s in ALLOWED[current]))
    return f"a {current.value} ticket cannot become {wanted.value} (allowed: {allowed})"


_FINISHED = (Status.RESOLVED, Status.CLOSED)
_IN_WORK = (Status.NEW, Status.OPEN, Status.PENDING)


def reopens(old: Status, new: Status) -> bool:
    """True when the change takes a finished ticket back into work (counted as a reopen)."""
    return old in _FINISHED and new in _IN_WORK


def status_stamps(old: Status, new: Status, now: datetime) -> dict[str, datetime | None]:
    """The timestamps a status change sets: resolved/closed now, or cleared on reopening."""
    if reopens(old, new):
        return {"resolved_at": None, "closed_at": None}
    if new is Status.RESOLVED:
        return {"resolved_at": now}
    if new is Status.CLOSED:
        return {"closed_at": now}
    return {}


def is_just_thanks(text: str) -> bool:
    """True when a reply says nothing but thanks (a short line or two, any language)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or len(lines) > 3 or sum(len(line) for line in lines) > 120:
        return False
    return bool(_THANKS.match(lines[0])) and all(len(line) < 40 for line in lines[1:])


def customer_reply_status(
    current: Status, text: str, *, thanks_keeps_resolved: bool
) -> Status | None:
    """The status a customer's reply moves a ticket to, or None to leave it."""
    if current in (Status.PENDING, Status.CLOSED):
        return Status.OPEN
    if current is Status.RESOLVED:
        if thanks_keeps_resolved and is_just_thanks(text):
            return None
        return Status.OPEN
    return None


def auto_close_due(resolved_at: datetime | None, now: datetime, days: float) -> bool:
    """True when a resolved ticket has waited `days` without reopening."""
    return days > 0 and resolved_at is not None and now - resolved_at >= timedelta(days=days)
