"""Satisfaction ratings: replies with a digit, signed rating links, storing and reporting them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from maildesk.cli import cli
from maildesk.decide.satisfaction import (
    RatingReply,
    RatingTokenError,
    find_token,
    make_token,
    parse_rating,
    rating_context,
    rating_fields,
    rating_links,
    rating_reply,
    verify_token,
)
from maildesk.outgoing.templates import Renderer
from maildesk.report import Period, report_from_database
from maildesk.store.models import Event, Ticket
from tests.conftest import make_mail

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", RatingReply(5)),
        ("5.\n", RatingReply(5)),
        ("5!", RatingReply(5)),
        ("\n\n  4\n", RatingReply(4)),
        ("4 stars", RatingReply(4)),
        ("5/5", RatingReply(5)),
        ("3 - slow, but fine in the end", RatingReply(3, "slow, but fine in the end")),
        (
            "2: nobody answered for days\nThe printer still smokes.",
            RatingReply(2, "nobody answered for days\nThe printer still smokes."),
        ),
        (
            "1\n\nThird time I ask.\n\nOn Mon, 23 Nov 2026 at 10:00, Support <support@example.com> wrote:\n> Your ticket [MD-1] was resolved.\n> 5 - very happy",
            RatingReply(1, "Third time I ask."),
        ),
        (
            "4\r\nGood.\r\n\r\nOn Mon, 23 Nov 2026 at 10:00 Example Support <\r\nsupport@example.com> wrote:\r\n> quoted",
            RatingReply(4, "Good."),
        ),
        ("5 — thank you!\n\n-- \nJane Doe\nACME Corp", RatingReply(5, "thank you!")),
        (
            "3\n\nFrom: Example Support <support@example.com>\nSent: Monday\nSubject: resolved",
            RatingReply(3),
        ),
        ("5\n\n(rating-token: MD-1.5.1795000000.abcdef)\n", RatingReply(5)),
        ("> 5\nthanks", None),  # the 5 is quoted; the reply itself says "thanks"
        ("1. The printer is on fire again\n2. It smells", None),  # a numbered list
        ("5 users are affected now", None),
        ("10", None),
        ("0", None),
        ("6", None),
        ("Thanks!", None),
        ("", None),
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected


def test_rating_reply_for_the_deciding_step():
    def read(text, resolved=True, ref="MD-7"):
        return rating_reply(text, ref=ref, resolved=resolved, secret=SECRET, now=NOW)

    assert read("4\nThanks") == RatingReply(4, "Thanks")
    assert read("4\nThanks", resolved=False) is None  # an open ticket takes no ratings
    token = make_token("MD-7", 2, SECRET, NOW + timedelta(days=1))
    assert read(f"5\n\n(rating-token: {token})") == RatingReply(2)  # the signed value wins
    assert read(f"5\n\n(rating-token: {token})", ref="MD-8") == RatingReply(5)  # not this ticket
    assert read("5\n\n(rating-token: MD-7.1.99.forged)") == RatingReply(5)
    assert read(f"(rating-token: {token})") == RatingReply(2)


def test_rating_fields_are_what_the_ticket_stores():
    assert rating_fields(RatingReply(2, ""), NOW) == {
        "rating": 2,
        "rating_comment": None,
        "rated_at": NOW,
    }


def test_token_round_trip_and_every_way_it_fails():
    token = make_token("MD-42", 4, SECRET, NOW + timedelta(days=30))
    assert verify_token(token, SECRET, NOW) == ("MD-42", 4)
    ref, rating, expires, signature = token.split(".")
    with pytest.raises(RatingTokenError, match="altered"):
        verify_token(f"{ref}.5.{expires}.{signature}", SECRET, NOW)  # rating changed
    with pytest.raises(RatingTokenError, match="altered"):
        verify_token(f"MD-43.{rating}.{expires}.{signature}", SECRET, NOW)  # other ticket
    with pytest.raises(RatingTokenError, match="another secret"):
        verify_token(token, "other secret", NOW)
    with pytest.raises(RatingTokenError, match="expired on 2026-12-23"):
        verify_token(token, SECRET, NOW + timedelta(days=31))
    with pytest.raises(RatingTokenError, match="incomplete"):
        verify_token(token.rsplit(".", 1)[0], SECRET, NOW)
    # An empty secret (an empty file or variable) would accept anyone's token.
    forged = make_token("MD-42", 1, "", NOW + timedelta(days=3650))
    with pytest.raises(RatingTokenError, match="secret is empty"):
        verify_token(forged, "", NOW)
    # A signature with other characters is refused, not a crash.
    with pytest.raises(RatingTokenError, match="altered"):
        verify_token(f"{ref}.{rating}.{expires}.sign\u00e9d", SECRET, NOW)


def test_mailto_links_write_a_reply_that_parses_and_verifies():
    links = rating_links(
        "MD-7", "Printer on fire", support_address="support@example.com", secret=SECRET, now=NOW
    )
    assert [(k.value, k.label) for k in links] == [
        (1, "Very unhappy"),
        (2, "Unhappy"),
        (3, "Neutral"),
        (4, "Happy"),
        (5, "Very happy"),
    ]
    for link in links:
        url = urlsplit(link.url)
        assert (url.scheme, url.path) == ("mailto", "support@example.com")
        query = parse_qs(url.query)
        assert query["subject"] == ["Re: [MD-7] Printer on fire"]  # threads into the ticket
        body = unquote(query["body"][0])
        assert parse_rating(body) == RatingReply(link.value)
        assert verify_token(find_token(body), SECRET, NOW) == ("MD-7", link.value)


def test_web_links_need_a_secret():
    kwargs = {
        "support_address": "support@example.com",
        "now": NOW,
        "link_base": "https://help.example.com/rate",
    }
    links = rating_links("MD-7", "x", secret=SECRET, **kwargs)
    assert links[2].url.startswith("https://help.example.com/rate?token=MD-7.3.")
    assert rating_links("MD-7", "x", secret=None, **kwargs) == []
    unsigned = rating_links(
        "MD-7", "x", support_address="support@example.com", secret=None, now=NOW
    )
    assert "rating-token" not in unquote(unsigned[0].url)  # a plain reply still counts


def test_rating_partial_renders_the_links():
    renderer = Renderer()
    context = rating_context(
        "MD-7", "Printer", support_address="support@example.com", secret=SECRET, now=NOW
    )
    text = renderer.env.get_template("en/_rating.txt.j2").render(context)
    assert "Reply with a single digit from 1" in text
    assert text.count("mailto:support@example.com") == 5
    html = renderer.env.get_template("en/_rating.html.j2").render(context)
    assert html.count('href="mailto:support@example.com?subject=Re%3A%20%5BMD-7%5D') == 5
    assert renderer.env.get_template("en/_rating.txt.j2").render({}).strip() == ""


@pytest.fixture
def rated_desk(make_desk, monkeypatch, clock):
    """A desk whose MD-1 was resolved (rating links go out with that notice)."""
    from maildesk.common.domain import Status
    from maildesk.store.ticket_updates import change_status

    monkeypatch.setenv("MAILDESK_TEST_RATING_SECRET", SECRET)
    desk = make_desk(extra="satisfaction:\n  secret: {env: MAILDESK_TEST_RATING_SECRET}\n")
    assert desk.pipeline.process_one(make_mail(subject="Printer on fire")).ticket_ref == "MD-1"
    with desk.sessions() as session, session.begin():
        change_status(
            session, 1, Status.RESOLVED, actor="alice@example.com", reason="fixed", now=clock(),
            config=desk.config,
        )  # fmt: skip
    return desk


def test_rate_command_stores_the_rating_and_the_report_counts_it(rated_desk):
    token = make_token("MD-1", 4, SECRET, datetime.now(UTC) + timedelta(days=1))
    result = CliRunner().invoke(
        cli, ["--config", rated_desk.config.source, "rate", token, "--comment", "Fast and friendly"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "MD-1 rated 4"
    with rated_desk.sessions() as s:
        ticket = s.scalars(select(Ticket)).one()
        assert (ticket.rating, ticket.rating_comment) == (4, "Fast and friendly")
        assert ticket.rated_at is not None
        kinds = s.scalars(select(Event.kind).where(Event.ticket_id == ticket.id)).all()
        rated_at = ticket.rated_at
    assert "rating" in kinds and "rating_comment" in kinds
    report = report_from_database(
        rated_desk.engine,
        Period(rated_at - timedelta(days=1), rated_at + timedelta(days=1)),
        now=rated_at + timedelta(days=1),
    )
    assert report.totals.satisfaction.distribution == (0, 0, 0, 1, 0)
    assert [(c.ref, c.rating, c.comment) for c in report.comments] == [
        ("MD-1", 4, "Fast and friendly")
    ]


def test_rate_command_refuses_a_forged_link(rated_desk):
    forged = make_token("MD-1", 5, "guessed", datetime.now(UTC) + timedelta(days=1))
    result = CliRunner().invoke(cli, ["--config", rated_desk.config.source, "rate", forged])
    assert isinstance(result.exception, RatingTokenError)
    with rated_desk.sessions() as s:
        assert s.scalars(select(Ticket.rating)).one() is None


def test_a_link_of_a_ticket_reopened_since_rates_nothing(rated_desk):
    from maildesk.common.domain import Status
    from maildesk.store.ticket_updates import change_status

    with rated_desk.sessions() as session, session.begin():
        change_status(
            session, 1, Status.OPEN, actor="customer@example.org", reason="still broken",
            now=datetime.now(UTC), config=rated_desk.config,
        )  # fmt: skip
    token = make_token("MD-1", 5, SECRET, datetime.now(UTC) + timedelta(days=1))
    result = CliRunner().invoke(cli, ["--config", rated_desk.config.source, "rate", token])
    assert result.exit_code != 0 and "MD-1 is open now" in str(result.exception or result.output)
    with rated_desk.sessions() as s:
        assert s.scalars(select(Ticket.rating)).one() is None
