"""Recognising automatic mail: bounces from many MTAs, complaints, SES notifications,
auto-replies, and telling them from people's mail (tests/corpus/automatic/SOURCES.md)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from maildesk.common.errors import ParseError
from maildesk.intake.bounce_text import status_code
from maildesk.intake.parse import parse_message
from maildesk.triage.bounce import read_bounce
from maildesk.triage.reply_tokens import ReplyKeys, addressed_to, signed_reply_address
from maildesk.triage.return_path import bounced_ref, return_path
from maildesk.triage.robots import is_robot_address
from maildesk.triage.screen import MailClass, screen_message, second_opinion

CORPUS = Path(__file__).parent / "corpus"
FLUFL = CORPUS / "automatic" / "flufl"
SHAPES = CORPUS / "automatic" / "shapes"
AUTOMATIC = (MailClass.BOUNCE, MailClass.AUTO_REPLY, MailClass.OWN)


def screen_file(path: Path):
    msg = parse_message(path.read_bytes())
    first = screen_message(
        msg, own_domain="example.com", own_addresses=frozenset({"support@example.com"})
    )
    return second_opinion(first, msg)


def report_of(path: Path):
    return read_bounce(parse_message(path.read_bytes()), own_domain="example.com")


def test_bounces_from_many_mtas_are_all_recognised_as_automatic():
    files = sorted(FLUFL.glob("*.txt"))
    assert len(files) == 117
    missed = {p.name for p in files if screen_file(p).kind not in AUTOMATIC}
    # flufl.bounce's own tests say groupwise_03 is a person's mail, not a bounce.
    assert missed == {"groupwise_03.txt"}


def test_bounces_name_the_addresses_that_failed():
    expected = json.loads((FLUFL / "expected.json").read_text())
    wrong = {}
    for name, want in expected.items():
        addresses = set(want["failed"]) | set(want["delayed"])
        if not addresses:
            continue
        report = report_of(FLUFL / name)
        found = {r.address for r in report.recipients}
        if not addresses <= found:
            wrong[name] = sorted(found)
    # These three RFC 3464 reports name the final mailbox, not the address we wrote to.
    assert wrong == {
        "dsn_01.txt": ["userx@sims-ms-daemon"],
        "dsn_04.txt": ["haasm@yogi.urz.example.ch"],
        "dsn_17.txt": ["xxx@example.fi"],
    }


SHAPE_KINDS = {
    "bounce-daemon-no-domain.eml": (MailClass.BOUNCE, "bounce"),
    "bounce-daemon-empty-address.eml": (MailClass.BOUNCE, "bounce"),
    "bounce-post-master.eml": (MailClass.BOUNCE, "bounce"),
    "bounce-list-manager.eml": (MailClass.BOUNCE, "bounce"),
    "complaint-arf-in-mixed.eml": (MailClass.BOUNCE, "complaint"),
    "complaint-hotmail-style.eml": (MailClass.BOUNCE, "complaint"),
    "ses-sns-bounce.eml": (MailClass.BOUNCE, "bounce"),
    "ses-sns-complaint.eml": (MailClass.BOUNCE, "complaint"),
    "auto-reply-apple-vacation.eml": (MailClass.AUTO_REPLY, "auto_reply"),
    "auto-reply-german-subject.eml": (MailClass.AUTO_REPLY, "auto_reply"),
    "person-google-group-post.eml": (MailClass.LIST, ""),
    "person-noreply-shop.eml": (MailClass.PERSON, ""),
}


@pytest.mark.parametrize("name", sorted(SHAPE_KINDS))
def test_the_shapes_the_issue_lists(name):
    screening = screen_file(SHAPES / name)
    assert (screening.kind, screening.subtype) == SHAPE_KINDS[name], screening.reason


@pytest.mark.parametrize(
    ("name", "kind", "recipients", "original"),
    [
        ("bounce-daemon-no-domain.eml", "bounce", [("olga@shop.example", "failed", "5.1.1")], None),
        (
            "bounce-daemon-empty-address.eml",
            "bounce",
            [("ivan@relay.example.net", "failed", "5.2.1")],
            None,
        ),
        (
            "ses-sns-bounce.eml",
            "bounce",
            [("nina@mailbox.example", "failed", "5.1.1")],
            "md-5.a1b2c3d4e5f60718@example.com",
        ),
        (
            "ses-sns-complaint.eml",
            "complaint",
            [("nina@mailbox.example", "complained", "")],
            "md-5.a1b2c3d4e5f60718@example.com",
        ),
        ("complaint-arf-in-mixed.eml", "complaint", [], "md-7.0123456789abcdef@example.com"),
    ],
)
def test_what_a_report_says(name, kind, recipients, original):
    report = report_of(SHAPES / name)
    assert report.kind == kind
    assert [(r.address, r.action, r.status) for r in report.recipients] == recipients
    if original:
        assert report.original_message_id == original


def test_peoples_mail_in_the_hostile_corpus_is_not_automatic():
    names = {p.name: screen_file(p).kind for p in sorted(CORPUS.glob("*.eml"))}
    assert names.pop("dsn-01-bounce.eml") is MailClass.BOUNCE
    assert names.pop("ooo-01-out-of-office.eml") is MailClass.AUTO_REPLY
    assert names.pop("list-01-mailing-list.eml") is MailClass.LIST
    assert set(names.values()) == {MailClass.PERSON}


@pytest.mark.parametrize(
    ("status", "diagnostic", "code"),
    [
        ("5.1.1 (Remote SMTP server has rejected address)", "", "5.1.1"),
        ("5.0.0", "smtp; 550 5.7.1 Message rejected as spam", "5.7.1"),
        ("4.4.7", "smtp; 450 4.7.1 Greylisted, try again later", "4.7.1"),
        ("5.0.0", "smtp; 550 Requested action not taken", "5.0.0"),
        ("5.0.0", "smtp; 421 4.7.0 try later", "5.0.0"),  # another class says nothing of this
        ("", "", ""),
    ],
)
def test_a_generic_status_gives_way_to_the_specific_one_in_the_diagnostic(status, diagnostic, code):
    assert status_code(status, diagnostic) == code


@pytest.mark.parametrize(
    ("address", "robot"),
    [
        ("MAILER-DAEMON", True),
        ("mailer-daemon@mx.example.org", True),
        ("post_master@sms.carrier.example", True),
        ("Postmaster@example.com", True),
        ("no-reply@sns.amazonaws.com", True),
        ("noreply+orders@shop.example", True),
        ("donotreply@bank.example", True),
        ("bounces+123@lists.example.org", True),
        ("", True),
        ("norbert@example.org", False),
        ("replies@example.org", False),
        ("customer@example.org", False),
    ],
)
def test_robot_addresses(address, robot):
    assert is_robot_address(address) is robot


NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_a_signed_return_path_names_its_ticket_and_nothing_else():
    keys = ReplyKeys(b"current-secret")
    path = return_path("Support@Example.com", "MD-42", keys.current)
    assert path.startswith("support+bounces.md-42.") and path.endswith("@example.com")
    assert bounced_ref([path], support="support@example.com", keys=keys, now=NOW) == "MD-42"
    forged = path.replace("md-42", "md-43")
    assert bounced_ref([forged], support="support@example.com", keys=keys, now=NOW) is None
    other = ReplyKeys(b"another desk's secret")
    assert bounced_ref([path], support="support@example.com", keys=other, now=NOW) is None
    assert bounced_ref([path], support="help@example.com", keys=keys, now=NOW) is None
    # An agent's signed reply address is no return path, and the other way round.
    agent = signed_reply_address("support@example.com", "MD-42", "a@example.com", keys.current)
    assert bounced_ref([agent], support="support@example.com", keys=keys, now=NOW) is None


def test_return_paths_of_the_previous_secret_work_until_its_overlap_ends():
    old = return_path("support@example.com", "MD-7", b"old")
    keys = ReplyKeys(b"new", previous=b"old", previous_until=NOW + timedelta(days=1))
    assert bounced_ref([old], support="support@example.com", keys=keys, now=NOW) == "MD-7"
    later = NOW + timedelta(days=2)
    assert bounced_ref([old], support="support@example.com", keys=keys, now=later) is None


def test_every_report_triage_acts_on_was_read_by_the_parser_and_nothing_else_was():
    """The parser reads a report only when the mail may be one (intake.report_signals);
    that must cover every message triage takes for a bounce or complaint."""
    read, wrong = [], []
    for path in sorted(p for p in CORPUS.rglob("*") if p.suffix in (".eml", ".txt")):
        try:
            msg = parse_message(path.read_bytes())
        except ParseError:
            continue  # the reply corpus holds bodies, not messages
        screening = second_opinion(
            screen_message(msg, own_domain="example.com", own_addresses=frozenset()), msg
        )
        if screening.kind is MailClass.BOUNCE:
            (read if msg.delivery is not None else wrong).append(path.name)
        elif msg.delivery is not None:
            wrong.append(f"{path.name} read, but it is {screening.kind}")
    # 115 of flufl.bounce's files, 8 shapes, the hostile corpus's DSN.
    assert len(read) == 124 and wrong == []


def _report(body: str, **headers: str) -> bytes:
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: support@example.com\r\n"
        f"Subject: failure notice\r\nMessage-ID: <trap@mx.example.org>\r\n{head}\r\n{body}\r\n"
    ).encode()


@pytest.mark.parametrize(
    "raw",
    [
        # No ">": with "@" allowed in the local part, each "@" was a new way to fail.
        _report("Your message was not delivered:\r\n<" + "a@" * 25_000),
        _report(
            json.dumps({"notificationType": "Bounce", "mail": {"messageId": "a" * 50_000}}),
            x_amz_sns_message_id="1",
        ),
        _report("Sorry.", Delivered_To="a" * 50_000),  # where it arrived: a return path?
    ],
    ids=["bounce text", "ses message id", "delivered-to"],
)
def test_message_ids_and_addresses_in_50_kb_of_junk_are_read_in_linear_time(raw):
    started = time.perf_counter()
    msg = parse_message(raw)
    report = read_bounce(msg, own_domain="example.com")
    recipients = addressed_to(msg)
    assert time.perf_counter() - started < 0.5  # quadratic patterns took 13-16 s
    assert msg.delivery is not None and report.original_message_id is None
    assert recipients == ["support@example.com"]
