"""Every message we send is valid on the wire, and names and subjects survive the trip.

For every template, language and hostile input the bytes handed to SMTP (and kept in
outbox.raw) parse back under policy.strict with no defects, have lines of at most 998
octets (header lines at most 78 characters), encoded words of at most 75 characters,
CRLF line ends only and 7-bit transfer encodings; the subject and the names read back
as they were written.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maildesk.common.config import TicketsConfig
from maildesk.decide.template_context import TEMPLATES, sample_context
from maildesk.intake.header_values import MAX_NAME, clip
from maildesk.intake.message import Address
from maildesk.intake.parse import MAX_SUBJECT
from maildesk.outgoing.compose import Envelope, compose
from maildesk.outgoing.header_text import clean_text
from maildesk.outgoing.render_jobs import DeskSender, RenderJob, render_notice
from maildesk.outgoing.rendered import Rendered
from maildesk.outgoing.templates import Renderer
from tests.wirecheck import mailboxes_of, parse, subject_of, wire_problems

LONG_WORD_SUBJECT = "x" * 1000  # a Subject of one 1,000-character word
CYRILLIC_NAME = "Ж" * 500  # a 500-character Cyrillic display name

# Names and subjects a customer can send us (after intake: one line, no NUL).
HOSTILE = {
    "1000-character word": LONG_WORD_SUBJECT,
    "500 Cyrillic letters": CYRILLIC_NAME,
    "1000 characters with spaces": ("Lorem ipsum dolor sit amet " * 40)[:1000].strip(),
    "Cyrillic words": "Не работает принтер на третьем этаже, " * 20,
    "encoded-word lookalike": "=?utf-8?q?hello=0D=0ABcc:_eve@evil.example?=",
    "lookalike among Cyrillic": "Привет =?utf-8?b?0JY=?= мир",
    "Hebrew RTL with marks": "\u202eשלום עולם\u202c \u200fבדיקה" * 30,
    "Arabic": "مرحبا بالعالم " * 40,
    "CJK without spaces": "漢字仮名交じり文" * 120,
    "emoji and ZWJ sequences": "👩\u200d💻🇺🇦🏳️\u200d🌈👍🏽" * 80,
    "every script": "Ελληνικά ქართული Հայերեն देवनागरी ไทย ᚠᚢᚦ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ",
    "control characters": "a\x01b\x07c\x1bd\x7fe\x0bf\x0cg",
    "quotes and specials": 'Doe, John "The Boss" <boss@evil.example> (x) \\ ; : [y]',
    "quotes that quoting doubles": '"' * 50 + "\\" * 30,
    "77 letters then é": "a" * 77 + "é" + "b" * 200,
    "spaces everywhere": "a  b   c    d",
    "plain": "Printer on fire",
}
NAMED = ["1000-character word", "500 Cyrillic letters"]


def envelope(subject: str, name: str, **changes) -> Envelope:
    values = {
        "sender": Address(f"{name} via Example Support", "support@example.com"),
        "to": [Address(name, "customer@example.org"), Address("Bob", "bob@example.org")],
        "cc": [Address(name, "cc@example.net")],
        "reply_to": Address("Example Support", "support@example.com"),
        "subject": f"Re: [MD-1] {subject}",
        "message_id": "md-1.0123456789abcdef0123@example.com",
        "in_reply_to": "c1@example.org",
        "references": ["c1@example.org"],
        "date": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        "auto_submitted": "auto-replied",
        "ticket_ref": "MD-1",
        "loop_token": "example.com",
        "thread_root": bytes(22),
        "language": "ru",
    }
    return Envelope(**{**values, **changes})


def assert_valid_and_faithful(raw: bytes, subject: str, name: str) -> None:
    assert wire_problems(raw) == [], raw[:2000]
    assert subject_of(raw) == clean_text(f"Re: [MD-1] {subject}")
    cleaned = clean_text(name)
    assert mailboxes_of(raw, "To") == [
        (cleaned, "customer@example.org"),
        ("Bob", "bob@example.org"),
    ]
    assert mailboxes_of(raw, "Cc") == [(cleaned, "cc@example.net")]
    assert mailboxes_of(raw, "From") == [
        (clean_text(f"{name} via Example Support"), "support@example.com")
    ]


@pytest.mark.parametrize("case", NAMED)
def test_named_cases_fold_into_valid_lines(case):
    """The 1,000-character Subject and the 500-character Cyrillic name of the issue."""
    raw = compose(envelope(HOSTILE[case], HOSTILE[case]), Rendered("s", "Hello", "<p>Hello</p>"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert_valid_and_faithful(raw, HOSTILE[case], HOSTILE[case])


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_subjects_and_names(case):
    value = HOSTILE[case]
    body = Rendered("s", f"{value}\n{value}\r\nend", f"<p>{value}</p>")
    raw = compose(envelope(value, value), body)
    assert_valid_and_faithful(raw, value, value)
    message = parse(raw)
    text = message.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n") == f"{value}\n{value}\nend\n"


def test_a_lookalike_typed_as_text_stays_text():
    typed = "=?utf-8?q?Hello?="
    raw = compose(envelope(typed, typed), Rendered("s", "body", None))
    assert subject_of(raw) == f"Re: [MD-1] {typed}"
    assert mailboxes_of(raw)[0][0] == typed
    assert str(parse(raw)["Subject"]) == f"Re: [MD-1] {typed}"  # the email package agrees


def test_plain_text_stays_readable():
    raw = compose(envelope("Printer on fire", "Jane Doe"), Rendered("s", "body", None))
    assert b"\r\nSubject: Re: [MD-1] Printer on fire\r\n" in raw
    assert b"\r\nTo: Jane Doe <customer@example.org>, Bob <bob@example.org>\r\n" in raw
    assert b"Content-Transfer-Encoding: 7bit" in raw


def test_internationalised_addresses_with_hostile_names():
    env = envelope(
        CYRILLIC_NAME,
        CYRILLIC_NAME,
        to=[Address(CYRILLIC_NAME, "жанна@пример.рф"), Address("Bob", "bob@example.org")],
    )
    raw = compose(env, Rendered("s", "Привет", None))
    assert wire_problems(raw) == []
    assert mailboxes_of(raw) == [(CYRILLIC_NAME, "жанна@пример.рф"), ("Bob", "bob@example.org")]


def test_bodies_get_a_seven_bit_encoding_per_part():
    long_line = "word " * 400
    raw = compose(
        envelope("s", "n"), Rendered("s", "plain ascii\n", f"<p>{long_line}Привет\x00</p>")
    )
    assert wire_problems(raw) == []
    plain, html = parse(raw).iter_parts()
    assert plain["Content-Transfer-Encoding"] == "7bit"
    assert html["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert html.get_content().replace("\r\n", "\n") == f"<p>{long_line}Привет\x00</p>\n"


def test_a_part_that_quotes_the_boundary_gets_another():
    from maildesk.outgoing import compose as composing

    quoted = f"--{composing._BOUNDARY}\nContent-Type: text/html\n\n<script>x</script>\n"
    raw = compose(envelope("s", "n"), Rendered("s", quoted, "<p>fine</p>"))
    assert wire_problems(raw) == []
    plain, html = parse(raw).iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == quoted
    assert html.get_content().strip() == "<p>fine</p>"


# Every template in every language, with hostile text wherever the customer's text goes.
LANGUAGES = ["en", "ru"]
TICKETS = TicketsConfig(support_address="support@example.com", support_name="Example Support")
SENDER = DeskSender.of(TICKETS)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _job(template: str, language: str, value: str) -> RenderJob:
    context = sample_context(SimpleNamespace(tickets=TICKETS), template)  # type: ignore[arg-type]
    context["ticket"] |= {"subject": value, "requester_name": value, "language": language}
    context["message"] = {"from": f"{value} <customer@example.org>", "subject": value}
    context["body"] = f"{value}\n\n{value}"
    context["ticket"]["created_at"] = context["ticket"]["created_at"].isoformat()
    if context.get("agent"):
        context["agent"]["name"] = value
    headers = {
        "to": [[value, "customer@example.org"]],
        "cc": [[value, "cc@example.net"]],
        "in_reply_to": "c1@example.org",
        "references": ["c1@example.org"],
        "on_behalf_of": [value, "agent@example.com"] if context.get("agent") else None,
    }
    created = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    return RenderJob(template, language, context, headers, "md-1.abc@example.com", created, True)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_and_language_with_hostile_input(renderer, template, language):
    for case, value in HOSTILE.items():
        notice = render_notice(_job(template, language, value), renderer, SENDER)
        raw = notice.raw
        assert wire_problems(raw) == [], (case, raw[:1500])
        assert subject_of(raw) == notice.subject, case
        if "{{ ticket.subject }}" in _subject_block(renderer, template, language):
            # templates collapse white space in subjects, as intake does
            assert " ".join(clean_text(value).split()) in subject_of(raw), case
        assert mailboxes_of(raw, "To") == [(clean_text(value), "customer@example.org")], case


def _subject_block(renderer: Renderer, template: str, language: str) -> str:
    source = renderer.source_of(template, language)
    return source.read_text(encoding="utf-8").split("{% endblock %}", 1)[0] if source else ""


# Generated names and subjects: any Unicode text, with the pieces that broke us before.
_pieces = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(
        ["=?utf-8?q?x?=", "=?", "?=", '"' * 40, "\\", ",", "<>", "Ж" * 90, "a" * 90, "🇺🇦", "  "]
    ),
)
_texts = st.lists(_pieces, max_size=30).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_texts, name=_texts, other=_texts)
def test_property_generated_names_and_subjects(subject, name, other):
    env = envelope(subject, name, cc=[Address(other, "cc@example.net")])
    raw = compose(env, Rendered("s", f"{subject}\n{name}", f"<p>{other}</p>"))
    assert wire_problems(raw) == []
    assert subject_of(raw) == clean_text(f"Re: [MD-1] {subject}")
    assert mailboxes_of(raw, "To")[0] == (clean_text(name), "customer@example.org")
    assert mailboxes_of(raw, "Cc") == [(clean_text(other), "cc@example.net")]


def test_headers_encoded_once_are_reused_only_for_the_same_text():
    # A ticket's notifications share subject and names, so folded headers are kept
    # (header_text._encoded); each message must still read back as its own.
    subject = "Принтер не печатает — " + "очень " * 20
    for name in ("Иван Петров", "Иван Петров", "Анна Петрова", "Иван Петров"):
        raw = compose(envelope(subject, name), Rendered("s", "text", None))
        assert wire_problems(raw) == []
        assert subject_of(raw) == clean_text(f"Re: [MD-1] {subject}")
        assert mailboxes_of(raw, "To")[0] == (name, "customer@example.org")


# The limits intake applies (documented in the README) leave valid text behind.
@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("x" * 1500, "x" * (MAX_SUBJECT - 1) + "…"),
        ("e\u0301" * 600, "e\u0301" * 499 + "…"),  # never an accent without its letter
        ("👍🏽" * 600, "👍🏽" * 499 + "…"),  # nor a skin tone without its hand
        ("a" + "🇺🇦" * 600, "a" + "🇺🇦" * 499 + "…"),  # nor half a flag
        ("a" * 998 + " " + "b" * 10, "a" * 998 + "…"),
    ],
)
def test_subject_limit_cuts_between_characters(text, kept):
    assert clip(text, MAX_SUBJECT) == kept
    assert len(clip(text, MAX_SUBJECT)) <= MAX_SUBJECT


def test_name_limit():
    assert clip("Ж" * 500, MAX_NAME) == "Ж" * (MAX_NAME - 1) + "…"
    assert clip("Ж" * MAX_NAME, MAX_NAME) == "Ж" * MAX_NAME


@pytest.mark.parametrize("extra", ["Bcc: eve@evil.example", "a line without a name"])
def test_a_header_line_nobody_set_stops_the_message(monkeypatch, extra):
    from maildesk.outgoing.compose import ComposeError
    from maildesk.outgoing.header_text import FoldedHeader

    def injected(self, *, policy):
        return f"{self.name}: x{policy.linesep}{extra}{policy.linesep}"

    monkeypatch.setattr(FoldedHeader, "fold", injected)
    with pytest.raises(ComposeError):
        compose(envelope("s", "n"), Rendered("s", "body", None))


# Files: attached, shown inline, forwarded; hostile names; what a part holds never ends it.
def _files(name: str) -> list:
    from maildesk.outgoing.file_parts import FilePart

    return [
        FilePart(f"{name}.pdf", "application/pdf", bytes(range(256)) * 40),
        FilePart(name, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, "pic1@example.org", True),
        FilePart("no type", "not a type", b"x"),
        FilePart("bad cid.png", "image/png", b"y", "a b\r\nBcc: eve@evil.example", True),
    ]


@pytest.mark.parametrize("case", HOSTILE)
def test_files_with_hostile_names_are_valid_and_read_back(case):
    value = HOSTILE[case]
    body = Rendered("s", "text", f'<p>{value}</p><img src="cid:pic1@example.org">')
    files = _files(value)
    raw = compose(envelope(value, value), body, files)
    assert wire_problems(raw) == [], (case, raw[:3000])
    message = parse(raw)
    attached = {p.get_filename(): p.get_content() for p in message.iter_attachments()}
    assert attached[clean_text(f"{value}.pdf")] == files[0].source
    assert attached["no type"] == b"x"
    assert attached["bad cid.png"] == b"y"  # its Content-ID could not be repeated safely
    (shown,) = [p for p in message.get_body(("related",)).iter_parts() if p["Content-ID"]]
    assert (shown["Content-ID"], shown.get_content()) == ("<pic1@example.org>", files[1].source)
    assert b"\r\nBcc:" not in raw


def _forwarded(text: bytes) -> list:
    from maildesk.outgoing.file_parts import FilePart

    return [FilePart("Fwd.eml", "message/rfc822", text)]


def test_a_forwarded_message_goes_as_it_is_with_crlf_line_ends():
    inner = b"From: a@example.org\nSubject: hi\nMessage-ID: <x@example.org>\n\nline one\nline two\n"
    raw = compose(envelope("s", "n"), Rendered("s", "text", "<p>x</p>"), _forwarded(inner))
    assert wire_problems(raw) == []
    assert inner.replace(b"\n", b"\r\n") in raw
    (part,) = [p for p in parse(raw).walk() if p.get_content_type() == "message/rfc822"]
    assert str(part.get_content()["Subject"]) == "hi"


@pytest.mark.parametrize(
    "inner",
    [
        "From: Жанна <a@example.org>\nSubject: 8-bit\n\nПривет\n".encode(),
        b"From: a@example.org\nSubject: long\n\n" + b"z" * 2000 + b"\n",
    ],
)
def test_a_forwarded_message_that_cannot_travel_as_7bit_goes_as_an_eml_file(inner):
    raw = compose(envelope("s", "n"), Rendered("s", "text", None), _forwarded(inner))
    assert wire_problems(raw) == []
    (part,) = list(parse(raw).iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("application/octet-stream", "Fwd.eml")
    assert part.get_content() == inner


def test_a_forwarded_message_that_quotes_our_boundary_gets_another():
    from maildesk.outgoing import compose as composing

    inner = f"Subject: ours\n\n--{composing._BOUNDARY}\n--{composing._BOUNDARY}.m--\n".encode()
    raw = compose(envelope("s", "n"), Rendered("s", "text", "<p>x</p>"), _forwarded(inner))
    assert wire_problems(raw) == []
    message = parse(raw)
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "multipart/alternative",
        "message/rfc822",
    ]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", ["new_ticket", "customer_reply", "agent_reply", "attachments"])
def test_templates_with_files_html_and_hostile_names(renderer, template, language):
    for case, value in HOSTILE.items():
        job = _job(template, language, value)
        job.context["body_html"] = f'<p><b>{value}</b></p><img src="cid:pic1@example.org">'
        listed = {"name": value, "size": "3 KB", "reason": "blocked"}
        job.context["files"] = {"attached": [{"name": value, "size": "1 KB"}], "withheld": [listed]}
        job.context.setdefault("part", 1)
        job.context.setdefault("parts", 1)
        notice = render_notice(replace(job, files=tuple(_files(value))), renderer, SENDER)
        assert wire_problems(notice.raw) == [], (case, notice.raw[:1500])
        message = parse(notice.raw)
        shown = 'src="cid:pic1@example.org"' in message.get_body(("html",)).get_content()
        assert shown == (template != "attachments"), case  # the file list has no HTML body
        names = {clean_text(p.get_filename()) for p in message.iter_attachments()}
        assert names >= {clean_text(f"{value}.pdf"), "no type"}, case


def test_the_render_child_renders_without_pydantic_or_the_database_layer():
    # What a child is sent is plain values (DeskSender), so it never imports the config
    # models: that kept pydantic (about 11 MB) in every daemon's render process.
    from pathlib import Path

    from maildesk.common.config import Config
    from maildesk.outgoing.render_jobs import (
        ChildRenderer,
        RenderedNotice,
        RenderSettings,
        shared_pool,
    )

    settings = RenderSettings.of(Config(tickets=TICKETS))
    (notice,) = ChildRenderer(settings).render_many([_job("ack", "en", "Printer")])
    assert isinstance(notice, RenderedNotice) and "Printer" in notice.subject
    pids = [child.process.pid for child in shared_pool().idle]
    assert pids, "the render child is gone"
    for pid in pids:
        mapped = Path(f"/proc/{pid}/maps").read_text()
        assert "pydantic_core" not in mapped and "sqlalchemy" not in mapped


def test_a_new_render_child_has_jinja_before_its_first_job():
    # Imported before the child says it is ready, not against the first job's time limit.
    from pathlib import Path

    from maildesk.common.children import ChildPool

    pool = ChildPool("maildesk.outgoing.render_jobs:_render_job", "renderer", max_idle=1)
    try:
        pool.prestart(1)
        (child,) = pool.idle
        assert "markupsafe" in Path(f"/proc/{child.process.pid}/maps").read_text()
    finally:
        pool.close()
