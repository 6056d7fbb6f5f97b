"""Mail a Google Group or a Mailman list rewrote for DMARC: the person who wrote it is the
requester, not the list (triage.list_author, applied in service.entry_screening)."""

from __future__ import annotations

import pytest

from maildesk.intake.message import Address
from maildesk.intake.parse import parse_message
from maildesk.triage.list_author import original_author
from tests.conftest import make_mail

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
