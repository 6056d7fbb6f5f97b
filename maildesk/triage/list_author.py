"""Who wrote a post that a list rewrote for DMARC: the person, not the list.

A Google Group, or Mailman with `dmarc_moderation_action: munge_from`, relays a post
with From rewritten to the list's own address (`"'Anna Novak' via Support"
<support@googlegroups.com>`, `Anna Novak via Support <support@lists.example.org>`) and
the author's address in `X-Original-From` (Google) or `Reply-To` (both). Without this,
every customer of the group would be one requester: the group.

Only From that is the list's own address is taken as rewritten (its `List-Post`
mailto address, or the address its `List-Id` names when the display name ends in
" via NAME"); a person's post through a list keeps its From. The author found here is
only ever a sender: what says an agent wrote a message is a signed reply address or a
trusted Authentication-Results header, and on a rewritten post the latter vouches for
the list, never for the author (`decide.agent_identity`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from maildesk.intake.header_values import address_list
from maildesk.intake.message import Address, ParsedMessage
from maildesk.triage.screen import MailClass, Screening

_MAILTO = re.compile(r"<\s*mailto:([^>?\s]+)", re.IGNORECASE)
_LIST_ID = re.compile(r"<([^<>\s]+)>\s*$")
_VIA = re.compile(r"\s+via\s+\S.*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ListAuthor:
    """The author of a post whose From the list rewrote, and where they were read from."""

    author: Address
    header: str  # "X-Original-From" or "Reply-To"
    list_from: Address  # the From the list wrote, as received


def original_author(msg: ParsedMessage) -> ListAuthor | None:
    """The post's real author when its list rewrote From to the list's address, else None."""
    sender = msg.sender
    if sender is None or (msg.header("List-Id") is None and msg.header("List-Post") is None):
        return None
    lists = _posting_addresses(msg)
    if sender.address not in lists:
        if not (_VIA.search(sender.name) and _named_by_list_id(msg, sender.address)):
            return None
        lists.add(sender.address)
    for header, candidates in (
        ("X-Original-From", address_list(msg.header("X-Original-From"))),
        ("Reply-To", msg.reply_to),
    ):
        others = [a for a in candidates if a.address not in lists]
        if len(others) == 1:
            author = others[0]
            if not author.name:
                author = Address(_person_name(sender.name), author.address)
            return ListAuthor(author, header, sender)
    return None


def with_author(msg: ParsedMessage, found: ListAuthor) -> ParsedMessage:
    """`msg` with its author as sender; its headers (and the stored raw mail) keep the
    list's From."""
    return replace(msg, sender=found.author)


def posted_by(screening: Screening, msg: ParsedMessage, found: ListAuthor) -> Screening:
    """The screening of `msg` (already its author's) marked relayed. A person's post is
    a person's mail, answered like any other; anything else the screening found (an
    auto-reply, our own mail coming back) stays what it is."""
    relayed = replace(screening, relayed_by=found.list_from.address, author_header=found.header)
    if screening.kind is not MailClass.LIST:
        return relayed
    suppress = msg.header("X-Auto-Response-Suppress") is not None
    reason = relay_note(relayed, found.author.address)
    return replace(relayed, kind=MailClass.PERSON, reason=reason, suppress_reply=suppress)


def relay_note(screening: Screening, author: str) -> str:
    """What the ticket's events say of relayed mail (empty for any other)."""
    if not screening.relayed_by:
        return ""
    return (
        f"author {author} taken from {screening.author_header}: "
        f"list {screening.relayed_by} rewrote From"
    )


def _posting_addresses(msg: ParsedMessage) -> set[str]:
    """The mailto addresses of List-Post (`<https://…>, <mailto:list@host>`)."""
    return {m.lower() for m in _MAILTO.findall(msg.header("List-Post") or "") if "@" in m}


def _named_by_list_id(msg: ParsedMessage, address: str) -> bool:
    """Whether List-Id names `address`: `<support.googlegroups.com>` is the list
    support@googlegroups.com (and `<support.lists.example.org>` support@lists.example.org)."""
    found = _LIST_ID.search(msg.header("List-Id") or "")
    return bool(found) and found.group(1).lower() == address.replace("@", ".", 1)


def _person_name(list_name: str) -> str:
    """`'Anna Novak' via Support` -> `Anna Novak`; "" for a From that names only the list."""
    if not _VIA.search(list_name):
        return ""
    return _VIA.sub("", list_name).strip().strip("'\"").strip()
