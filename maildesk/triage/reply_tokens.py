"""Signed reply addresses: proof that an agent's reply came back through our own mail.

Every notification to an agent carries a Reply-To such as
`support+md-42.k7qv3mzt2xw4hdra@example.com`: the support address, plus the ticket's
reference and an HMAC of (agent, ticket) keyed by the desk's reply secret. A reply that
comes back to that address from that agent is the agent's; a guessed or copied token
fails for any other ticket or sender. Secrets rotate with an overlap: the previous
secret's tokens are accepted until a configured moment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from maildesk.intake.message import ParsedMessage

if TYPE_CHECKING:  # imported in the render child (compose -> screen), which has no pydantic
    from maildesk.common.config import TicketsConfig

TOKEN_BYTES = 10  # 80 bits, 16 base32 characters: short enough for a 64-character local part
_TAGGED = re.compile(r"^(?P<local>[^+@]+)\+(?P<tag>[^@]+)@(?P<domain>[^@]+)$")
_DELIVERY_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
# Words between address delimiters; those with an "@" inside are addresses. (Not one
# pattern `word@word`: with "@" in both classes it backtracks quadratically on long runs.)
_ADDR_WORD = re.compile(r"[^\s<>,;:\"()]+")
_SIGNED_TAG = re.compile(r"^(?P<ref>[a-z][a-z0-9]*-\d{1,12})\.(?P<token>[a-z2-7]{16})$")
FORWARD_TAG = "fwd"  # `support+fwd.<token>@`: an agent's own intake address (never a ref)
_FORWARD_TAG = re.compile(r"^fwd\.(?P<token>[a-z2-7]{16})$")


@dataclass(frozen=True)
class ReplyKeys:
    """The reply secret in force, and the previous one while its overlap lasts."""

    current: bytes
    previous: bytes | None = None
    previous_until: datetime | None = None

    def accepted(self, now: datetime) -> list[bytes]:
        """The secrets whose tokens are valid at `now`."""
        keys = [self.current]
        if self.previous and (self.previous_until is None or now < self.previous_until):
            keys.append(self.previous)
        return keys


def load_reply_keys(tickets: TicketsConfig) -> ReplyKeys | None:
    """The configured reply secrets (read now), or None when none is configured."""
    if tickets.reply_secret is None:
        return None
    previous = tickets.previous_reply_secret
    until = tickets.previous_reply_secret_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return ReplyKeys(
        current=tickets.reply_secret.read("reply secret").encode(),
        previous=previous.read("previous reply secret").encode() if previous else None,
        previous_until=until,
    )


def addressed_to(msg: ParsedMessage) -> list[str]:
    """Every address the message was sent to: To, Cc and what the delivering MTA recorded
    (Delivered-To, X-Original-To, Envelope-To), so a Bcc to the reply address counts."""
    found = [a.address for a in msg.recipients]
    for name in _DELIVERY_HEADERS:
        for value in msg.header_all(name):
            words = _ADDR_WORD.findall(value)
            found.extend(w.lower() for w in words if "@" in w[1:-1])
    return list(dict.fromkeys(found))


def base_address(address: str) -> str:
    """`support+anything@example.com` -> `support@example.com` (plus-addressing removed)."""
    match = _TAGGED.match(address.lower())
    return f"{match['local']}@{match['domain']}" if match else address.lower()


def token(key: bytes, ref: str, agent: str) -> str:
    """The token that signs replies of `agent` about ticket `ref`."""
    message = f"{ref.lower()}\n{agent.lower()}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def signed_reply_address(support: str, ref: str, agent: str, key: bytes) -> str:
    """The Reply-To of a notification to `agent` about `ref`."""
    local, _, domain = support.lower().partition("@")
    return f"{local}+{ref.lower()}.{token(key, ref, agent)}@{domain}"


@dataclass(frozen=True)
class ReplyCheck:
    """Whether a message came through its sender's signed address for a ticket, and why not."""

    signed: bool
    reason: str


def check_reply(
    recipients: Iterable[str],
    *,
    support: str,
    ref: str,
    agent: str,
    keys: ReplyKeys | None,
    now: datetime,
    merged_here: Callable[[str], bool] | None = None,
) -> ReplyCheck:
    """Did `agent`'s message about `ref` come to the signed address we gave them for it
    (or for a ticket `merged_here` says was merged into it)?"""
    tags = _signed_tags(recipients, support)
    if keys is None:
        return ReplyCheck(False, "no reply secret is configured, so no reply can be verified")
    if not tags:
        return ReplyCheck(False, "it was not sent to the reply address of a notification")
    for tag_ref, tag_token in tags:
        if tag_ref != ref.lower() and not (merged_here is not None and merged_here(tag_ref)):
            continue
        for key in keys.accepted(now):
            if hmac.compare_digest(tag_token, token(key, tag_ref, agent)):
                return ReplyCheck(True, f"sent to the signed reply address for {tag_ref.upper()}")
    return ReplyCheck(False, f"its reply address is not the one we gave {agent} for {ref.upper()}")


def _signed_tags(recipients: Iterable[str], support: str) -> list[tuple[str, str]]:
    """(ref, token) of every recipient that is a signed form of the support address."""
    found = []
    wanted = support.lower()
    for address in recipients:
        match = _TAGGED.match(address.strip().lower())
        if not match or f"{match['local']}@{match['domain']}" != wanted:
            continue
        signed = _SIGNED_TAG.match(match["tag"])
        if signed:
            found.append((signed["ref"], signed["token"]))
    return found


def quotes_signed_address(text: str, support: str) -> bool:
    """Whether `text` holds one of the desk's signed addresses (a reply or forwarding
    address, as the footer of a notification to agents carries them)."""
    local, _, domain = support.lower().partition("@")
    pattern = rf"{re.escape(local)}\+([a-z0-9.\-]+)@{re.escape(domain)}"
    for match in re.finditer(pattern, text.lower()):
        tag = match[1]
        if _SIGNED_TAG.match(tag) or _FORWARD_TAG.match(tag):
            return True
    return False


def forwarding_address(support: str, agent: str, key: bytes) -> str:
    """`agent`'s personal intake address: a customer's mail the agent forwards to it opens
    the ticket for that customer (signed like a reply address, for no ticket)."""
    local, _, domain = support.lower().partition("@")
    return f"{local}+{FORWARD_TAG}.{token(key, FORWARD_TAG, agent)}@{domain}"


def check_forward(
    recipients: Iterable[str], *, support: str, agent: str, keys: ReplyKeys | None, now: datetime
) -> ReplyCheck:
    """Did `agent`'s message come to the forwarding address we gave them?"""
    if keys is None:
        return ReplyCheck(False, "no reply secret is configured, so no forward can be verified")
    tokens = []
    for address in recipients:
        match = _TAGGED.match(address.strip().lower())
        if match and f"{match['local']}@{match['domain']}" == support.lower():
            signed = _FORWARD_TAG.match(match["tag"])
            tokens += [signed["token"]] if signed else []
    if not tokens:
        return ReplyCheck(False, "it was not sent to your forwarding address")
    for candidate in tokens:
        for key in keys.accepted(now):
            if hmac.compare_digest(candidate, token(key, FORWARD_TAG, agent)):
                return ReplyCheck(True, "sent to your signed forwarding address")
    return ReplyCheck(False, f"its forwarding address is not the one we gave {agent}")
