"""Outgoing mail: nothing in a subject or a name adds a header; templates escape what they echo."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from maildesk.intake.message import Address
from maildesk.outgoing.compose import Envelope, compose
from maildesk.outgoing.render_jobs import render_entry
from maildesk.outgoing.rendered import Rendered
from maildesk.store.models import OutboxEntry
from tests.conftest import make_mail

EVIL = [
    "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?=",
    "=?utf-8?q?=3D=3Futf-8=3Fq=3Fx=3D0D=3D0ABcc:=5Fv@evil.example=3F=3D?=",  # nested
    "x\r\nBcc: victim@evil.example",
    "x\u2028Bcc: victim@evil.example",
    "x\x85Bcc: victim@evil.example\x0b\x0c",
]
SET_HEADERS = {
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "precedence",
    "x-maildesk-loop",
    "x-maildesk-ticket",
    "thread-topic",
    "thread-index",
    "content-language",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode().lower()
        for line in head.split(b"\r\n")
        if line[:1] not in b" \t"
    ]


@pytest.mark.parametrize("evil", EVIL)
def test_compose_never_emits_an_extra_header(evil):
    envelope = Envelope(
        sender=Address(evil, "support@example.com"),
        to=[Address(evil, "customer@example.org")],
        cc=[],
        reply_to=Address("Support", "support@example.com"),
        subject=f"[MD-1] {evil}",
        message_id="md-1.abc@example.com",
        in_reply_to=f"{evil}@x.example",
        references=["ok@x.example", evil],
        date=datetime(2026, 11, 23, tzinfo=UTC),
        auto_submitted="auto-replied",
        ticket_ref="MD-1",
        loop_token="example.com",
    )
    raw = compose(envelope, Rendered("s", "body", None))
    names = _header_names(raw)
    assert "bcc" not in names and len(names) == len(set(names))
    assert set(names) <= SET_HEADERS
    sent = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in sent["To"].addresses] == ["customer@example.org"]
    assert sent["References"] == "<ok@x.example>"


@pytest.mark.parametrize("evil", EVIL)
def test_requester_subject_and_name_never_add_headers_to_notifications(desk, evil):
    raw = (
        f'From: "{evil}" <eve@evil.example>\r\nTo: support@example.com\r\nSubject: {evil}\r\n'
        "Message-ID: <inj@evil.example>\r\n\r\nhello\r\n"
    ).encode()
    assert desk.pipeline.process_one(raw).outcome == "created"
    with desk.sessions() as s:
        raws = [
            render_entry(e, desk.renderer, desk.config, desk.blobs)
            for e in s.scalars(select(OutboxEntry))
        ]
    assert raws
    for raw in raws:
        names = _header_names(raw)
        assert "bcc" not in names and len(names) == len(set(names)), raw[:600]
        sent = email.message_from_bytes(raw, policy=email.policy.default)
        recipients = [a.addr_spec for h in ("To", "Cc") for a in getattr(sent[h], "addresses", ())]
        assert "victim@evil.example" not in recipients and len(recipients) == 1
        assert "\n" not in sent["Subject"]


def test_template_variables_are_escaped_in_html_and_kept_literal(desk):
    desk.pipeline.process_one(
        make_mail(subject="<img src=x onerror=alert(1)> {{ 7*7 }}", sender="A <a@example.org>")
    )
    with desk.sessions() as s:
        ack = s.scalars(select(OutboxEntry).where(OutboxEntry.template == "ack")).one()
    sent = email.message_from_bytes(
        render_entry(ack, desk.renderer, desk.config, desk.blobs), policy=email.policy.default
    )
    html = sent.get_body(("html",)).get_content()
    text = sent.get_body(("plain",)).get_content()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7*7 }}" in text and "49" not in text


def test_notifications_never_echo_raw_requester_html(desk):
    raw = (
        b"From: a@example.org\r\nTo: support@example.com\r\nSubject: html only\r\n"
        b"Message-ID: <h1@example.org>\r\nContent-Type: text/html\r\n\r\n"
        b"<p>Refund <b>now</b></p><script>steal()</script><img src=x onerror=alert(1)>"
    )
    desk.pipeline.process_one(raw)
    with desk.sessions() as s:
        entries = s.scalars(select(OutboxEntry).where(OutboxEntry.template == "new_ticket"))
        notes = [render_entry(e, desk.renderer, desk.config, desk.blobs) for e in entries]
    assert notes
    for note in notes:
        assert b"Refund now" in note
        assert b"<script" not in note and b"steal()" not in note and b"onerror" not in note
