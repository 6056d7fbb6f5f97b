"""Signed return paths (VERP): which ticket a bounce is about, proven by where it arrived.

Every notification is sent with the envelope sender (SMTP MAIL FROM)
`support+bounces.md-42.<token>@example.com`: the support address plus-tagged with the
ticket's reference and an HMAC of it keyed by the reply secret (`reply_tokens`). Mail
servers send bounces to that address, so a bounce arriving there is about ticket MD-42;
plus-addressing delivers it to the support mailbox with no extra configuration. Nothing
a stranger can write into a message (a subject, an X-Maildesk-Ticket header) names a
ticket for a bounce.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from datetime import datetime

from maildesk.triage.reply_tokens import ReplyKeys, token

TAG = "bounces"
# Signs return paths, never an agent's replies: an agent's address always has an "@".
_PURPOSE = "return-path"
_VERP = re.compile(
    r"^(?P<local>[^+@\s]+)\+" + TAG + r"\.(?P<ref>[a-z][a-z0-9]*-\d{1,12})\.(?P<token>[a-z2-7]{16})"
    r"@(?P<domain>[^@\s]+)$"
)


def return_path(support: str, ref: str, key: bytes) -> str:
    """The envelope sender of notifications about ticket `ref`."""
    local, _, domain = support.lower().partition("@")
    return f"{local}+{TAG}.{ref.lower()}.{token(key, ref, _PURPOSE)}@{domain}"


def bounced_ref(
    recipients: Iterable[str], *, support: str, keys: ReplyKeys | None, now: datetime
) -> str | None:
    """The ticket reference (upper case) of the first recipient that is a return path we
    signed for it, or None. `recipients`: triage.reply_tokens.addressed_to(msg)."""
    if keys is None:
        return None
    wanted = support.lower()
    for address in recipients:
        match = _VERP.match(address.strip().lower())
        if not match or f"{match['local']}@{match['domain']}" != wanted:
            continue
        ref = match["ref"]
        for key in keys.accepted(now):
            if hmac.compare_digest(match["token"], token(key, ref, _PURPOSE)):
                return ref.upper()
    return None
