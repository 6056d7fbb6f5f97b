"""Mail a Google Group or a Mailman list rewrote for DMARC: the person who wrote it is the
requester, not the list (triage.list_author, applied in service.entry_screening)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from maildesk.intake.message import Address
from maildesk.intake.parse import parse_message
from maildesk.store.models import Event, Message, Ticket
from maildesk.triage.list_author import original_author
from tests.conftest import make_mail
from tests.mailflow import parse, send_all

ANNA = "anna@customer.example"
GROUP = "support@example.com"  # the desk's support address is a Google Group
MAILMAN = "support@lists.example.org"


def google(author: str = f"Anna Novak <{ANNA}>", **mail) -> bytes:
    """A post as a Google Group relays it from a domain with a strict DMARC policy."""
    name = author.split(" <")[0]
    headers = {
        "Reply-To": GROUP,
        "X-Original-From": author,
        "List-ID": "<support.example.com>",
        "List-Post": f"<https://groups.google.com/a/example.com/group/support/post>, "
        f"<mailto:{GROUP}>",
        "Precedence": "list",
        "Mailing-list": f"list {GROUP}; contact support+owners@example.com",
        **mail.pop("headers", {}),
    }
    return make_mail(
        sender=f"\"'{name}' via Support\" <{GROUP}>", to=GROUP, headers=headers, **mail
    )


def mailman(**mail) -> bytes:
    """A post as Mailman relays it with `dmarc_moderation_action: munge_from`."""
    headers = {
        "Reply-To": f"Anna Novak <{ANNA}>",
        "List-Id": f"Support <{MAILMAN.replace('@', '.')}>",
        "List-Post": f"<mailto:{MAILMAN}>",
        "X-Mailman-Version": "2.1.39",
    }
    return make_mail(
        sender=f"Anna Novak via Support <{MAILMAN}>", to=MAILMAN, headers=headers, **mail
    )


# --- recognising the rewrite (pure) ---


def test_google_group_author_is_x_original_from():
    found = original_author(parse_message(google()))
    assert found is not None
    assert (found.author, found.header) == (Address("Anna Novak", ANNA), "X-Original-From")
    assert found.list_from.address == GROUP


def test_mailman_author_is_the_single_reply_to():
    found = original_author(parse_message(mailman()))
    assert found is not None
    assert (found.author.address, found.header) == (ANNA, "Reply-To")


def test_the_name_comes_from_the_rewritten_from_when_the_header_has_none():
    raw = google(headers={"X-Original-From": ANNA})
    found = original_author(parse_message(raw))
    assert found is not None and found.author == Address("Anna Novak", ANNA)


def test_via_with_the_list_id_address_is_enough_without_list_post():
    raw = make_mail(
        sender=f"Anna Novak via Support <{MAILMAN}>",
        headers={"List-Id": "<support.lists.example.org>", "Reply-To": ANNA},
    )
    found = original_author(parse_message(raw))
    assert found is not None and found.author.address == ANNA


@pytest.mark.parametrize(
    ("sender", "headers"),
    [
        # A person's post through a list keeps its From, whatever X-Original-From says.
        ("Ben <ben@customer.example>", {"List-Post": f"<mailto:{GROUP}>", "X-Original-From": ANNA}),
        # Not list mail: anyone can write X-Original-From.
        (GROUP, {"X-Original-From": ANNA}),
        # From is not the list's address.
        (
            "Anna via Support <other@example.net>",
            {"List-Id": "<support.lists.example.org>", "Reply-To": ANNA},
        ),
        # The list's own address in From but nothing names the author.
        (MAILMAN, {"List-Post": f"<mailto:{MAILMAN}>", "Reply-To": MAILMAN}),
        # More than one address in Reply-To: whose is it?
        (
            MAILMAN,
            {"List-Post": f"<mailto:{MAILMAN}>", "Reply-To": f"{ANNA}, ben@customer.example"},
        ),
        # " via " in the name, but List-Id names another list.
        (
            f"Anna via Support <{MAILMAN}>",
            {"List-Id": "<other.lists.example.org>", "Reply-To": ANNA},
        ),
    ],
)
def test_no_author_unless_the_list_rewrote_from(sender, headers):
    assert original_author(parse_message(make_mail(sender=sender, headers=headers))) is None


# --- through the desk ---


def mail_to(sink, address: str) -> list:
    return [parse(r.data) for r in sink.received if address in r.rcpt_tos]


def requesters(desk) -> list[tuple[str, str]]:
    with desk.sessions() as s:
        return [(t.ref, t.requester) for t in s.scalars(select(Ticket).order_by(Ticket.id))]


def events(desk, kind: str) -> list[str]:
    with desk.sessions() as s:
        return list(s.scalars(select(Event.reason).where(Event.kind == kind).order_by(Event.id)))


def test_a_google_group_post_is_annas_ticket_and_her_next_post_threads_in(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    raw = google(subject="VPN down", message_id="<a1@customer.example>")
    first = desk.pipeline.process_one(raw)
    assert first.outcome == "created"
    assert requesters(desk) == [("MD-1", ANNA)]
    send_all(desk)
    (ack,) = mail_to(smtp_sink, ANNA)
    assert "[MD-1]" in str(ack["Subject"])
    assert all(GROUP not in r.rcpt_tos for r in smtp_sink.received)  # nothing to the group
    assert events(desk, "list_author") == [
        f"author {ANNA} taken from X-Original-From: list {GROUP} rewrote From"
    ]
    with desk.sessions() as s:
        stored = s.get(Message, first.message_pk)
        assert stored.from_addr == ANNA
        kept = desk.blobs.get(stored.raw_sha256)
    assert kept == raw  # the raw mail keeps the list's From
    # Anna answers her own post on the group (so through the group again).
    again = desk.pipeline.process_one(
        google(
            subject="Re: VPN down",
            body="Still down this morning.",
            in_reply_to="<a1@customer.example>",
            references="<a1@customer.example>",
        )
    )
    assert (again.outcome, again.ticket_ref) == ("added", "MD-1")
    assert requesters(desk) == [("MD-1", ANNA)]


def test_a_mailman_munged_post_is_annas_ticket(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config(), support=MAILMAN)
    desk.pipeline.process_one(mailman(subject="Login fails", message_id="<m1@customer.example>"))
    assert requesters(desk) == [("MD-1", ANNA)]
    send_all(desk)
    assert len(mail_to(smtp_sink, ANNA)) == 1
    assert all(MAILMAN not in r.rcpt_tos for r in smtp_sink.received)
    assert events(desk, "list_author") == [
        f"author {ANNA} taken from Reply-To: list {MAILMAN} rewrote From"
    ]
    again = desk.pipeline.process_one(
        mailman(subject="Re: Login fails", in_reply_to="<m1@customer.example>")
    )
    assert (again.outcome, again.ticket_ref) == ("added", "MD-1")


def test_a_persons_post_through_a_list_is_unchanged(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(
        make_mail(
            sender="Ben <ben@customer.example>",
            headers={"List-Id": "<support.example.com>", "X-Original-From": ANNA},
        )
    )
    assert requesters(desk) == [("MD-1", "ben@customer.example")]
    assert events(desk, "list_author") == []
    send_all(desk)
    assert mail_to(smtp_sink, "ben@customer.example") == []  # list mail: no acknowledgement
    assert mail_to(smtp_sink, ANNA) == []


def test_our_own_mail_relayed_back_by_the_group_is_still_ours(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    result = desk.pipeline.process_one(google(author=f"Support <{GROUP}>"))
    assert (result.outcome, result.automatic_kind) == ("automatic", "own")
    assert requesters(desk) == []
    assert send_all(desk) == 0


def test_the_groups_address_with_no_author_named_is_still_our_own(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    raw = google(headers={"X-Original-From": GROUP})  # Reply-To is the group too
    result = desk.pipeline.process_one(raw)
    assert result.outcome == "automatic" and send_all(desk) == 0
