"""Mail in the charsets customers' mailers really send, declared or not."""

from __future__ import annotations

import email.policy
import hashlib
from email import message_from_bytes

from maildesk.intake.header_values import decode_header_value
from maildesk.intake.parse import parse_message

POLISH = (
    "Dzień dobry,\n\nod wczoraj nie mogę zalogować się do swojego konta. Po wpisaniu hasła "
    "pojawia się komunikat o błędzie. Proszę o pomoc.\n\nZ poważaniem\nJan Kowalski\n"
)
RUSSIAN = "Здравствуйте! Не открывается личный кабинет, пишет «ошибка 502». Спасибо.\n"


def mail(body: bytes, content_type: str = "text/plain", headers: bytes = b"") -> bytes:
    return (
        b"From: Jan <jan@example.pl>\nTo: support@example.com\nSubject: pomoc\n"
        + headers
        + b"MIME-Version: 1.0\nContent-Type: "
        + content_type.encode()
        + b"\nContent-Transfer-Encoding: 8bit\n\n"
        + body
    )


def test_undeclared_windows_1250_and_iso_8859_2_polish_read_as_polish():
    assert parse_message(mail(POLISH.encode("cp1250"))).text == POLISH
    assert parse_message(mail(POLISH.encode("iso8859_2"))).text == POLISH


def test_undeclared_western_and_cyrillic_mail_still_read_right():
    french = "Bonjour, je n'arrive plus à me connecter à mon compte. Merci, François\n"
    assert parse_message(mail(french.encode("cp1252"))).text == french
    assert parse_message(mail(RUSSIAN.encode("cp1251"))).text == RUSSIAN
    plain = RUSSIAN.replace("«", '"').replace("»", '"')  # KOI8-R has no guillemets
    assert parse_message(mail(plain.encode("koi8-r"))).text == plain


def test_a_few_bad_bytes_in_utf8_leave_the_rest_of_the_text_as_it_is():
    broken = RUSSIAN.encode().replace("кабинет".encode(), "каби".encode() + b"\xff\xfe")
    text = parse_message(mail(broken, "text/plain; charset=utf-8")).text
    assert text == RUSSIAN.replace("кабинет", "каби\ufffd\ufffd")
    undeclared = parse_message(mail(broken)).text
    assert undeclared.startswith("Здравствуйте! Не открывается личный каби\ufffd")


def test_raw_utf8_file_names_and_headers_are_read_as_utf8():
    raw = (
        b"From: =?utf-8?q?Jan?= <jan@example.pl>\nTo: support@example.com\n"
        + "Subject: Faktura za marzec — błąd\n".encode()
        + b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
        + "--XX\nContent-Type: text/plain; charset=utf-8\n\nW załączniku.\n--XX\n".encode()
        + 'Content-Type: application/pdf; name="Faktura łódź №5.pdf"\n'.encode()
        + 'Content-Disposition: attachment; filename="Faktura łódź №5.pdf"\n'.encode()
        + b"Content-Transfer-Encoding: base64\n\nJVBERi0=\n--XX--\n"
    )
    msg = parse_message(raw)
    assert msg.subject == "Faktura za marzec — błąd"
    assert [a.filename for a in msg.attachments] == ["Faktura łódź №5.pdf"]


def test_an_8bit_header_the_stdlib_hands_over_as_a_header_object_keeps_its_text():
    raw = "Subject: Счёт за март\n\nbody\n".encode()
    parsed = message_from_bytes(raw, policy=email.policy.compat32)
    assert decode_header_value(parsed.get("Subject")) == "Счёт за март"


def test_white_space_before_a_header_colon_is_obsolete_syntax_not_a_broken_message():
    raw = b"From : Jan <jan@example.pl>\nSubject : Faktura\nTo: support@example.com\n\nTekst: x\n"
    msg = parse_message(raw)
    assert (msg.from_addr, msg.subject, msg.text) == ("jan@example.pl", "Faktura", "Tekst: x\n")
    assert msg.sha256 == hashlib.sha256(raw).hexdigest()  # the hash of what arrived
