"""Decoding real-world charsets, encodings and attachments."""

from __future__ import annotations

import base64

from maildesk.intake.parse import parse_message


def _raw(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode("ascii") + b"\r\n" + body


def test_koi8r_body_and_rfc2047_subject_and_name():
    subject = "=?koi8-r?B?" + base64.b64encode("Счёт не пришёл".encode("koi8-r")).decode() + "?="
    name = "=?koi8-r?Q?" + "".join(f"={b:02X}" for b in "Иван".encode("koi8-r")) + "?="
    raw = _raw(
        f"From: {name} <ivan@example.ru>\nTo: support@example.com\nSubject: {subject}\n"
        "Content-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n",
        "Добрый день, счёт не пришёл.".encode("koi8-r"),
    )
    msg = parse_message(raw)
    assert msg.subject == "Счёт не пришёл"
    assert msg.sender.name == "Иван"
    assert msg.text == "Добрый день, счёт не пришёл."


def test_windows_1251_quoted_printable():
    import quopri

    body = quopri.encodestring("Привет, мир".encode("cp1251"))
    raw = _raw(
        "From: a@example.ru\nSubject: x\nContent-Type: text/plain; charset=windows-1251\n"
        "Content-Transfer-Encoding: quoted-printable\n",
        body,
    )
    assert parse_message(raw).text.strip() == "Привет, мир"


def test_iso_8859_2_body():
    raw = _raw(
        "From: a@example.pl\nSubject: =?iso-8859-2?Q?Pilne=3A_b=B3=B1d?=\n"
        "Content-Type: text/plain; charset=iso-8859-2\nContent-Transfer-Encoding: 8bit\n",
        "Zażółć gęślą jaźń".encode("iso-8859-2"),
    )
    msg = parse_message(raw)
    assert msg.subject == "Pilne: błąd"
    assert msg.text == "Zażółć gęślą jaźń"


def test_iso_2022_jp_seven_bit_body_is_decoded():
    # mail-parser 4.8 returns this body undecoded; we must not.
    raw = _raw(
        "From: a@example.jp\nSubject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n",
        "お問い合わせです".encode("iso-2022-jp"),
    )
    msg = parse_message(raw)
    assert msg.subject == "こんにちは"
    assert msg.text == "お問い合わせです"


def test_raw_utf8_header_without_encoding():
    raw = "From: Jürgen <j@example.de>\r\nSubject: Grüße aus Köln\r\n\r\nHallo".encode()
    msg = parse_message(raw)
    assert msg.subject == "Grüße aus Köln"
    assert msg.sender.name == "Jürgen"


def test_rfc2231_filename():
    raw = _raw(
        "From: a@example.ru\nSubject: file\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n",
        b"--XX\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--XX\r\n"
        b"Content-Type: text/csv\r\nContent-Disposition: attachment; "
        b"filename*=utf-8''%D0%B4%D0%B0%D0%BD%D0%BD%D1%8B%D0%B5.csv\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--XX--\r\n",
    )
    msg = parse_message(raw)
    assert [(a.filename, a.data) for a in msg.attachments] == [("данные.csv", b"hello")]
    assert msg.text.strip() == "see file"


def test_unknown_charset_falls_back_without_crashing():
    raw = _raw(
        "From: a@b.example\nSubject: x\nContent-Type: text/plain; charset=x-klingon\n",
        "naïve".encode(),
    )
    assert parse_message(raw).text == "naïve"


def test_html_only_message_gets_text_and_sanitised_html():
    raw = _raw(
        "From: a@b.example\nSubject: x\nContent-Type: text/html; charset=utf-8\n",
        b"<p>Hello<script>alert(1)</script></p><p onclick='x()'>World</p>",
    )
    msg = parse_message(raw)
    assert "Hello" in msg.text and "World" in msg.text and "alert" not in msg.text
    assert "<script" not in msg.html and "onclick" not in msg.html


def test_multipart_alternative_keeps_one_text_and_one_html():
    raw = _raw(
        "From: a@b.example\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=B\n",
        b"--B\r\nContent-Type: text/plain\r\n\r\nplain version\r\n--B\r\nContent-Type: text/html\r\n\r\n"
        b"<p>html version</p>\r\n--B--\r\n",
    )
    msg = parse_message(raw)
    assert msg.text.strip() == "plain version"
    assert "html version" in msg.html
    assert msg.attachments == []


def test_attached_email_is_kept_as_eml_attachment():
    inner = b"From: x@y.example\r\nSubject: Original\r\n\r\ninner body\r\n"
    raw = _raw(
        "From: a@b.example\nSubject: fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n",
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: message/rfc822\r\n\r\n"
        + inner
        + b"\r\n--B--\r\n",
    )
    msg = parse_message(raw)
    assert msg.text.strip() == "see attached"
    assert msg.attachments[0].filename == "Original.eml"
    assert b"inner body" in msg.attachments[0].data


def test_ids_and_addresses_are_normalised():
    raw = _raw(
        'From: "Doe, John" <John.Doe@Example.COM>\nTo: a@x.example, "B" <b@x.example>\n'
        "Message-ID:   <abc@host>  \nIn-Reply-To: <p@host>\nReferences: <r1@host>\n <r2@host>\nSubject: s\n",
        b"body",
    )
    msg = parse_message(raw)
    assert msg.sender.address == "john.doe@example.com" and msg.sender.name == "Doe, John"
    assert [a.address for a in msg.to] == ["a@x.example", "b@x.example"]
    assert (msg.message_id, msg.in_reply_to, msg.references) == (
        "abc@host",
        ["p@host"],
        ["r1@host", "r2@host"],
    )


def test_an_attached_message_is_read_with_its_carrier_one_level_deep():
    from email.message import EmailMessage

    def mail(sender: str, subject: str, attached: EmailMessage | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, "support@example.com", subject
        msg.set_content(f"{subject} text")
        if attached is not None:
            msg.add_attachment(attached)  # message/rfc822
        return msg

    innermost = mail("eve@example.net", "Innermost")
    original = mail("Dana <dana@example.org>", "Printer", innermost)
    forward = parse_message(mail("alice@example.com", "Fwd: Printer", original).as_bytes())
    inner = forward.attached_message
    assert inner is not None and inner.from_addr == "dana@example.org"
    assert inner.subject == "Printer" and "Printer text" in inner.text
    assert inner.attached_message is None  # read once, not down every level
    assert parse_message(innermost.as_bytes()).attached_message is None
