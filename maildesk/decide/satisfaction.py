"""Customer satisfaction: rating replies, signed rating links, and the fields a rating sets.

Pure: no database, no clock of its own. The "resolved" notification invites a rating
in two ways:

- Reply with a single digit from 1 (bad) to 5 (great) as the first line; anything after
  it (same line after a dash or colon, and the lines below) is the comment. Quoted text
  and signatures are ignored. `parse_rating` reads such a reply.
- Click one of five links, each carrying a signed token `REF.RATING.EXPIRES.SIGNATURE`
  (HMAC-SHA256 with the configured secret, base64url, 128 bits). By default the links
  are `mailto:` links that write that reply for the customer; with `link_base` set they
  point to `<link_base>?token=...` for a web page that runs `maildesk rate TOKEN`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from maildesk.common.errors import MaildeskError

LABELS = {1: "Very unhappy", 2: "Unhappy", 3: "Neutral", 4: "Happy", 5: "Very happy"}
MAX_COMMENT = 2000

# "5", "5.", "5!", "5/5", "4 stars", "3 - slow but fine", "2: nobody answered"; not
# "1. The printer..." (a numbered list) nor "5 users are affected".
_RATING_LINE = re.compile(
    r"^\s*(?P<rating>[1-5])(?:\s*/\s*5|\s*stars?|\s*out of 5)?\s*"
    r"(?:[.!]?\s*$|[-–—:,;!]\s*(?P<rest>.*)$)",
    re.IGNORECASE,
)
# Where a reply's own text ends: a quoted original or a signature below it.
_QUOTE_HEADER = re.compile(
    r"^\s*(?:On\s.+wrote:|Am\s.+schrieb.*:|Le\s.+a écrit\s?:|El\s.+escribió:|"
    r"-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Ursprüngliche Nachricht\s*-{2,}|"
    r"_{10,}|From:\s.+|Von:\s.+|-- ?)$",
    re.IGNORECASE,
)
_TOKEN_LINE = re.compile(r"\(?\s*rating-token:\s*(?P<token>[A-Za-z0-9_.\-]+?)\s*\)?\s*$")


class RatingTokenError(MaildeskError):
    """A rating link's token is malformed, altered, or expired."""


@dataclass(frozen=True)
class RatingReply:
    """A rating from 1 to 5 and the comment that came with it ("" if none)."""

    rating: int
    comment: str = ""


def own_lines(text: str) -> list[str]:
    """The lines the sender wrote: up to a quoted original or signature, minus '>' quotes."""
    lines = []
    raw = text.replace("\r\n", "\n").split("\n")
    for index, line in enumerate(raw):
        following = raw[index + 1] if index + 1 < len(raw) else ""
        # Gmail wraps a long "On ..., X <x@example.com> wrote:" over two lines.
        if _QUOTE_HEADER.match(line) or _QUOTE_HEADER.match(f"{line} {following}"):
            break
        if line.lstrip().startswith(">"):
            continue
        lines.append(line.rstrip())
    return lines


def parse_rating(text: str) -> RatingReply | None:
    """The rating in a reply whose first own line starts with a digit 1–5; None otherwise."""
    lines = [line for line in own_lines(text) if not _TOKEN_LINE.match(line)]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    match = _RATING_LINE.match(lines[0])
    if match is None:
        return None
    rest = [match.group("rest") or "", *lines[1:]]
    comment = "\n".join(rest).strip()
    return RatingReply(int(match.group("rating")), comment[:MAX_COMMENT])


def find_token(text: str) -> str | None:
    """The `rating-token: ...` a mailto rating link put in the reply, if any."""
    for line in own_lines(text):
        match = _TOKEN_LINE.search(line)
        if match:
            return match.group("token")
    return None


def rating_reply(
    text: str, *, ref: str, resolved: bool, secret: str | None, now: datetime
) -> RatingReply | None:
    """The rating in a requester's reply to ticket `ref`, for the deciding step.

    Only a resolved (or closed) ticket takes ratings, so "2 more questions" on an open
    ticket stays a message. A valid `rating-token` for this ticket (from a mailto rating
    link) wins over the digit, which the customer may have edited; an invalid one is
    ignored and the digit counts as in any reply.
    """
    if not resolved:
        return None
    reply = parse_rating(text)
    token = find_token(text) if secret else None
    if token and secret:
        try:
            token_ref, rating = verify_token(token, secret, now)
        except RatingTokenError:
            return reply
        if token_ref.upper() == ref.upper():
            return RatingReply(rating, reply.comment if reply else "")
    return reply


def rating_fields(reply: RatingReply, now: datetime) -> dict[str, Any]:
    """The ticket fields a rating sets (for `Change`s in the deciding step)."""
    return {"rating": reply.rating, "rating_comment": reply.comment or None, "rated_at": now}


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def make_token(ref: str, rating: int, secret: str, expires: datetime) -> str:
    """A token that proves `rating` for ticket `ref` was offered by us, until `expires`."""
    if rating not in LABELS:
        raise ValueError(f"rating must be 1 to 5, not {rating}")
    payload = f"{ref}.{rating}.{int(expires.timestamp())}"
    return f"{payload}.{_signature(secret, payload)}"


def verify_token(token: str, secret: str, now: datetime) -> tuple[str, int]:
    """(ticket ref, rating) from a valid token; RatingTokenError saying what is wrong."""
    if not secret.strip():  # an empty key signs nothing: anyone could make the token
        raise RatingTokenError("the satisfaction secret is empty; rating links cannot be checked")
    parts = token.strip().split(".")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        raise RatingTokenError("this rating link is incomplete; copy the whole link")
    ref, rating, expires, signature = parts
    expected = _signature(secret, f"{ref}.{rating}.{expires}")
    if not hmac.compare_digest(signature.encode(errors="replace"), expected.encode()):
        raise RatingTokenError(
            "this rating link was altered or signed with another secret; it is not accepted"
        )
    if int(rating) not in LABELS:
        raise RatingTokenError(f"rating {rating} is not between 1 and 5")
    until = datetime.fromtimestamp(int(expires), UTC)
    if now > until:
        raise RatingTokenError(f"this rating link expired on {until:%Y-%m-%d}")
    return ref, int(rating)


@dataclass(frozen=True)
class RatingLink:
    value: int
    label: str
    url: str


def rating_links(
    ref: str,
    subject: str,
    *,
    support_address: str,
    secret: str | None,
    now: datetime,
    days: float = 30,
    link_base: str | None = None,
) -> list[RatingLink]:
    """Five links, one per rating: web links with `link_base` (needs a secret), else mailto."""
    expires = now + timedelta(days=days)
    links = []
    for value, label in LABELS.items():
        token = make_token(ref, value, secret, expires) if secret else None
        if link_base:
            if token is None:
                return []  # an unsigned web link could be forged; offer the reply instead
            separator = "&" if "?" in link_base else "?"
            url = f"{link_base}{separator}{urlencode({'token': token})}"
        else:
            body = f"{value}\n\n" + (f"(rating-token: {token})\n" if token else "")
            url = (
                f"mailto:{support_address}?subject={quote(f'Re: [{ref}] {subject}')}"
                f"&body={quote(body)}"
            )
        links.append(RatingLink(value, label, url))
    return links


def rating_context(ref: str, subject: str, **link_options: Any) -> dict[str, Any]:
    """The `rating` variable for the resolved notification (see templates/en/_rating.*);
    `link_options` are those of `rating_links`."""
    links = rating_links(ref, subject, **link_options)
    return {
        "rating": {
            "links": [{"value": k.value, "label": k.label, "url": k.url} for k in links],
            "labels": LABELS,
        }
    }
