"""The hostile-mail corpus: real-world mail (tests/corpus/*.eml) and generated malformations.

Each case says what a user of the desk would notice: the decoded subject, sender and
text, the attachment names kept, or the reason it was quarantined. Big and repetitive
messages are generated here rather than committed.
"""

from __future__ import annotations

import base64
import binascii
import random
import struct
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"

# The corpus desk's limits (see test_corpus.py): small, so the generated messages stay small.
MAX_MESSAGE = 3 * 1024 * 1024
MAX_ATTACHMENT = 1024 * 1024
PROCESSING_SECONDS = 3


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    subject: str | None = None
    sender: str | None = None  # the requester's address; "" = none could be read
    text: tuple[str, ...] = ()  # must appear in the stored text
    not_text: tuple[str, ...] = ()  # must not appear in the stored text
    attachments: tuple[str, ...] | None = None  # the stored attachment names, sorted
    dropped: tuple[str, ...] = ()  # attachments not kept (over the limit)
    quarantine: str | None = None  # part of the quarantine reason
    oversized: bool = False
    html_absent: tuple[str, ...] = ()  # must not appear in the stored HTML
    automatic: str | None = None  # kept apart as this kind of automatic mail, no ticket


def _eml(name: str, **expect: object) -> Case:
    return Case(name, (CORPUS / name).read_bytes(), **expect)  # type: ignore[arg-type]


def file_cases() -> list[Case]:
    """Mail as Outlook, Gmail, Apple Mail, Thunderbird and others really send it."""
    return [
        _eml(
            "outlook-01-plain-html-cp1251.eml",
            subject="Не приходят счета на почту",
            sender="o.smirnova@vesna.example",
            text=("Уже неделю не приходят счета",),
            attachments=(),
        ),
        _eml(
            "outlook-02-tnef-winmail.eml",
            subject="Contract draft for review",
            text=("please find the contract draft",),
            attachments=("Contract draft v3.docx", "terms.pdf"),
        ),
        _eml(
            "outlook-03-reply-thread-index.eml",
            subject="RE: [MD-1] Contract draft for review",
            sender="mark.evans@contoso.example",
            text=("any update on this?",),
        ),
        _eml(
            "outlook-04-calendar-invite.eml",
            text=("Does Tuesday work?",),
            attachments=("attachment-1.ics",),
        ),
        _eml(
            "outlook-05-inline-image-related.eml",
            text=("shows this error when I press Save",),
            attachments=("image001.png",),
            html_absent=("onerror", "document.cookie"),
        ),
        _eml(
            "outlook-06-korean-ks_c_5601.eml",
            subject="로그인 오류 문의",
            text=("로그인이 되지 않습니다",),
        ),
        _eml(
            "outlook-07-doe-john-latin1.eml",
            subject="Rechnung für Oktober fehlt",
            sender="j.mueller@beispiel.example",
            text=("Grüße, Jürgen Müller",),
        ),
        _eml(
            "outlook-08-html-only-script.eml",
            subject="Contact form: refund request",
            text=("Order #77 arrived damaged",),
            not_text=("steal()",),
            html_absent=("<script", "onclick", "javascript:", "<form", "onload", "http-equiv"),
        ),
        _eml(
            "gmail-01-alternative-base64.eml",
            subject="No puedo exportar el informe 😕",
            sender="lucia.fernandez@gmail.example",
            text=("sale una página en blanco",),
            html_absent=("javascript:",),
        ),
        _eml(
            "gmail-02-pdf-and-inline.eml",
            text=("The VAT on invoice 2026-118 is wrong",),
            attachments=("invoice-2026-118.pdf", "vat.png"),
        ),
        _eml("gmail-03-forwarded-inline.eml", text=("Your order #5531 has shipped",)),
        _eml(
            "gmail-04-split-encoded-words.eml",
            subject="Проблема с оплатой по карте",
            text=("Оплата картой не проходит",),
        ),
        _eml("gmail-05-reply-with-quote.eml", text=("Any news on this?",)),
        _eml(
            "apple-01-alternative-qp.eml",
            text=("doesn’t sync anymore – on both",),
            html_absent=("<iframe",),
        ),
        _eml("apple-02-nfd-filename.eml", attachments=("Résumé Zoë.pdf",)),
        _eml(
            "apple-03-smime-signed.eml",
            text=("change my billing address",),
            attachments=("smime.p7s",),
        ),
        _eml(
            "apple-04-iphone-heic.eml",
            text=("Sent from my iPhone",),
            attachments=("IMG_0042.HEIC",),
        ),
        _eml("thunderbird-01-format-flowed.eml", text=("CSV-Export bricht",)),
        _eml(
            "thunderbird-02-rfc2231-continuations.eml",
            attachments=("Fehlerprotokoll vom Dezember über den Export.txt",),
        ),
        _eml(
            "thunderbird-03-pgp-encrypted.eml",
            attachments=("attachment-1.bin", "encrypted.asc"),
        ),
        _eml(
            "thunderbird-04-koi8r.eml",
            subject="Ошибка при входе",
            text=("Не могу войти в личный кабинет",),
        ),
        _eml(
            "thunderbird-05-forward-as-attachment.eml",
            text=("Diese Rechnung ist doppelt",),
            attachments=("Ihre Rechnung 4711.eml",),
        ),
        _eml(
            "mutt-01-inline-uuencode.eml",
            text=("[attachment: app.conf]", "Cheers"),
            not_text=("begin 644",),
            attachments=("app.conf",),
        ),
        _eml("old-01-x-uuencode-cte.eml", attachments=("report.txt",)),
        _eml(
            "jp-01-iso-2022-jp.eml", subject="ご請求の件について", text=("請求書が届いていません",)
        ),
        _eml("yahoo-01-no-mime-version.eml", text=("The reset link says expired",)),
        # A bounce and an out-of-office reply about nothing of ours: no ticket.
        _eml(
            "dsn-01-bounce.eml", subject="Undelivered Mail Returned to Sender", automatic="bounce"
        ),
        _eml(
            "ooo-01-out-of-office.eml",
            subject="Réponse automatique : Absence",
            automatic="auto_reply",
        ),
        _eml("list-01-mailing-list.eml", subject="[dev] Release 2.0 planning"),
        _eml("zh-01-big5.eml", subject="無法登入帳戶", text=("我無法登入我的帳戶",)),
        _eml("zh-02-gb2312.eml", subject="发票问题", text=("发票金额不对",)),
        _eml("he-01-windows-1255.eml", subject="בעיה בתשלום", text=("התשלום נכשל פעמיים",)),
    ]


# Building blocks for generated messages.


def _mail(
    body: bytes | str = "Body text.",
    *,
    subject: str | bytes = "Generated",
    sender: str | bytes = "Gen Erator <gen@example.org>",
    mid: str | None = None,
    headers: list[tuple[str, str | bytes]] | None = None,
    eol: bytes = b"\r\n",
) -> bytes:
    lines: list[bytes] = []
    fields: list[tuple[str, str | bytes]] = [
        ("From", sender),
        ("To", "support@example.com"),
        ("Subject", subject),
        ("Date", "Thu, 3 Dec 2026 10:00:00 +0000"),
    ]
    if mid is not None:
        fields.append(("Message-ID", f"<{mid}@gen.example>"))
    fields += headers or []
    for name, value in fields:
        value = value if isinstance(value, bytes) else value.encode("utf-8")
        lines.append(name.encode() + b": " + value)
    body = body if isinstance(body, bytes) else body.encode("utf-8")
    return eol.join(lines) + eol + eol + body.replace(b"\r\n", b"\n").replace(b"\n", eol)


def _multipart(
    parts: list[tuple[str, bytes | str]],
    *,
    boundary: str = "GENBOUNDARY",
    ctype: str = "multipart/mixed",
    declared: str | None = "same",
    close: bool = True,
    **kwargs: object,
) -> bytes:
    """Parts as (headers, body); `declared` is the boundary named in Content-Type."""
    header = (
        ctype
        if declared is None
        else f'{ctype}; boundary="{boundary if declared == "same" else declared}"'
    )
    chunks = []
    for head, body in parts:
        body = body if isinstance(body, bytes) else body.encode("utf-8")
        head = f"{head}\n" if head else ""
        chunks.append(f"--{boundary}\n{head}\n".encode() + body + b"\n")
    if close:
        chunks.append(f"--{boundary}--\n".encode())
    extra = [("MIME-Version", "1.0"), ("Content-Type", header)]
    extra += kwargs.pop("headers", [])  # type: ignore[arg-type]
    return _mail(b"".join(chunks), headers=extra, **kwargs)  # type: ignore[arg-type]


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data)


def _att(name: str, data: bytes, ctype: str = "application/octet-stream") -> tuple[str, bytes]:
    return (
        f'Content-Type: {ctype}; name="{name}"\nContent-Disposition: attachment; filename="{name}"\n'
        "Content-Transfer-Encoding: base64",
        _b64(data),
    )


def tnef(files: list[tuple[str, bytes]], body: str | None = None) -> bytes:
    """A minimal TNEF stream as Outlook writes it (attachment records, optional body)."""

    def attr(level: int, attr_id: int, data: bytes) -> bytes:
        head = struct.pack("<BII", level, attr_id, len(data))
        return head + data + struct.pack("<H", sum(data) & 0xFFFF)

    out = struct.pack("<IH", 0x223E9F78, 1) + attr(1, 0x00069007, struct.pack("<II", 1252, 0))
    if body:
        out += attr(1, 0x0002800C, body.encode("cp1252"))
    for name, data in files:
        out += attr(2, 0x00069002, b"\x01" + b"\x00" * 13)
        out += attr(2, 0x00018010, name.encode("cp1252")[:12] + b"\x00")
        out += attr(2, 0x0006800F, data)
    return out


def tiny_parts(count: int, mid: str = "tiny-parts") -> bytes:
    """Valid MIME whose every 7 bytes make the stdlib parser build a Message (~300 bytes)."""
    return _mail(
        b"--b\r\n\r\n" * count + b"--b--\r\n",
        subject=f"{count} parts",
        mid=mid,
        headers=[("MIME-Version", "1.0"), ("Content-Type", "multipart/mixed; boundary=b")],
    )


def nested(depth: int, lines: int, mid: str, line: bytes = b"deep text\r\n") -> bytes:
    """A message `depth` multiparts deep around a text of `lines` lines (slow to parse)."""
    parts = [
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode()
        for i in range(depth)
    ]
    inner = f"--b{depth}\r\nContent-Type: text/plain\r\n\r\n".encode() + line * lines
    tail = b"".join(f"--b{i}--\r\n".encode() for i in range(depth, -1, -1))
    return _mail(
        b"".join(parts) + inner + tail,
        subject=f"nested {depth}",
        mid=mid,
        headers=[("MIME-Version", "1.0"), ("Content-Type", "multipart/mixed; boundary=b0")],
    )


def _uu(name: str, data: bytes) -> str:
    lines = "".join(binascii.b2a_uu(data[i : i + 45]).decode() for i in range(0, len(data), 45))
    return f"begin 644 {name}\n{lines}`\nend\n"


def generated_cases() -> list[Case]:
    """Every malformation the issue lists, one or more messages each."""
    rng = random.Random(20261203)
    cases: list[Case] = []

    def add(name: str, raw: bytes, **expect: object) -> None:
        cases.append(Case(f"gen-{len(cases) + 1:03d}-{name}", raw, **expect))  # type: ignore[arg-type]

    text_part = ("Content-Type: text/plain; charset=utf-8", "first part text")
    # Broken or missing boundaries.
    add(
        "no-boundary-param",
        _multipart([text_part, _att("a.txt", b"aaa")], declared=None, mid="g1"),
        text=("first part text",),
        attachments=("a.txt",),
    )
    add(
        "boundary-mismatch",
        _multipart([text_part, _att("b.txt", b"bbb")], declared="NOT-THE-ONE", mid="g2"),
        text=("first part text",),
        attachments=("b.txt",),
    )
    add(
        "missing-close-boundary",
        _multipart([text_part, _att("c.txt", b"ccc")], close=False, mid="g3"),
        text=("first part text",),
        attachments=("c.txt",),
    )
    add(
        "odd-boundary-characters",
        _multipart([text_part], boundary="=_weird:?/()+,-.boundary", mid="g4"),
        text=("first part text",),
    )
    add(
        "multipart-without-any-boundary",
        _mail(
            "just some text\nin a multipart",
            mid="g5",
            headers=[("Content-Type", "multipart/mixed")],
        ),
        text=("just some text",),
    )
    add(
        "multipart-with-base64-cte",
        _multipart([text_part], mid="g6", headers=[("Content-Transfer-Encoding", "base64")]),
        text=("first part text",),
    )
    add(
        "part-without-headers",
        _multipart([("", "bare body without headers")], mid="g7"),
        text=("bare body without headers",),
    )
    add("nesting-30", nested(30, 3, "g8"), text=("deep text",))
    add("nesting-150", nested(150, 3, "g9"), quarantine="nesting")
    add("nesting-3000", nested(3000, 1, "g10"), quarantine="nesting")

    # Wrong and unknown charsets.
    def charset_mail(charset: str, body: bytes, mid: str, cte: str = "8bit") -> bytes:
        return _mail(
            body,
            mid=mid,
            headers=[
                ("MIME-Version", "1.0"),
                ("Content-Type", f"text/plain; charset={charset}"),
                ("Content-Transfer-Encoding", cte),
            ],
        )

    add(
        "unknown-charset",
        charset_mail("x-klingon", "naïve café".encode(), "g11"),
        text=("naïve café",),
    )
    add(
        "utf8-label-on-cp1251",
        charset_mail("utf-8", "Прошу вернуть деньги".encode("cp1251"), "g12"),
        text=("Прошу вернуть деньги",),
    )
    add(
        "ascii-label-on-utf8",
        charset_mail("us-ascii", "Grüße aus Köln".encode(), "g13"),
        text=("Grüße aus Köln",),
    )
    add(
        "latin1-label-on-cp1251",
        charset_mail("iso-8859-1", "Счёт не оплачен".encode("cp1251"), "g14"),
        text=("Счёт не оплачен",),
    )
    add(
        "no-charset-koi8r",
        _mail("Заказ не доставлен".encode("koi8-r"), mid="g15"),
        text=("Заказ не доставлен",),
    )
    add("quoted-charset-alias", charset_mail('"utf8"', "日本語".encode(), "g16"), text=("日本語",))
    add(
        "utf7-body",
        charset_mail("utf-7", "Hi Mom -☺-!".encode("utf-7"), "g17", "7bit"),
        text=("Hi Mom -☺-!",),
    )
    add("invalid-utf8", charset_mail("utf-8", b"ok \xff\xfe\xfd ok", "g18"), text=("ok",))
    add("charset-binary", charset_mail("binary", b"plain words", "g19"), text=("plain words",))
    # 8-bit headers and encoded words.
    add(
        "raw-utf8-headers",
        _mail(
            "x", subject="Grüße – 你好".encode(), sender="Jürgen <j@example.de>".encode(), mid="g20"
        ),
        subject="Grüße – 你好",
        sender="j@example.de",
    )
    add(
        "raw-cp1251-subject",
        _mail("x", subject="Срочно: сервер упал".encode("cp1251"), mid="g21"),
        subject="Срочно: сервер упал",
    )
    add(
        "raw-latin1-subject",
        _mail("x", subject="Grüße aus München".encode("latin-1"), mid="g22"),
        subject="Grüße aus München",
    )
    add(
        "encoded-word-unknown-charset",
        _mail("x", subject="=?x-foo?Q?hello_there?=", mid="g23"),
        subject="hello there",
    )
    add("encoded-word-bad-base64", _mail("x", subject="=?utf-8?B?###?= tail", mid="g24"))
    add(
        "encoded-word-split-character",
        _mail("x", subject="=?utf-8?B?0J/R?= =?utf-8?B?gNC40LLQtdGC?=", mid="g25"),
        subject="Привет",
    )
    add(
        "encoded-word-crlf-injection",
        _mail(
            "x",
            subject="=?utf-8?q?hello=0D=0ABcc:_victim@example.net?=",
            sender="=?utf-8?q?Eve=0D=0ABcc:_x@evil.example?= <eve@evil.example>",
            mid="g26",
        ),
        subject="hello Bcc: victim@example.net",
        sender="eve@evil.example",
    )
    add(
        "unicode-line-separators",
        _mail("x", subject="line\u2028sep\u2029para\x85next".encode(), mid="g27"),
        subject="line sep para next",
    )
    # Line endings and long lines.
    add("bare-lf", _mail("unix lines\nsecond", eol=b"\n", mid="g28"), text=("unix lines",))
    add("bare-cr", _mail("old mac lines\rsecond", eol=b"\r", mid="g29"), text=("old mac lines",))
    add(
        "mixed-line-ends",
        b"From: a@mixed.example\r\nSubject: mixed\nMessage-ID: <g30@gen.example>\r\r\nline one\rline two\r\n",
        subject="mixed",
    )
    add(
        "one-megabyte-line",
        _mail("start " + "y" * (1 << 20) + " end", mid="g31"),
        text=("start yyy", "yyy end"),
    )
    add(
        "200kb-subject",
        _mail("x", subject="S" * 200_000, mid="g32"),
        subject="S" * 999 + "…",
    )
    many = ",\r\n ".join(f"user{i}@example.net" for i in range(10_000))
    add(
        "ten-thousand-recipients",
        _mail("x", mid="g33", headers=[("Cc", many)]),
        text=("x",),
    )
    received = [("Received", f"from relay{i}.example by relay{i + 1}.example") for i in range(1000)]
    add(
        "thousand-received-headers",
        _mail("hop hop", mid="g34", headers=received),
        text=("hop hop",),
    )
    add(
        "garbage-line-in-headers",
        b"From: a@g35.example\r\nSubject: broken head\r\nThis is not a header\r\nMessage-ID: <g35@gen.example>\r\n\r\nbody\r\n",
        subject="broken head",
    )
    add(
        "continuation-first",
        b" folded first line\r\nFrom: a@g36.example\r\nSubject: cont\r\nMessage-ID: <g36@gen.example>\r\n\r\nbody36\r\n",
        text=("body36",),
    )
    add(
        "mbox-from-line",
        b"From a@g37.example Thu Dec  3 10:00:00 2026\r\n" + _mail("mbox body", mid="g37"),
        text=("mbox body",),
    )
    add("utf8-bom", b"\xef\xbb\xbf" + _mail("bom body", mid="g38"), text=("bom body",))
    add(
        "nul-bytes",
        _mail(b"nul\x00in\x00body", subject=b"nul\x00subject", mid="g39"),
        subject="nulsubject",
        text=("nulinbody",),
    )
    add(
        "8bit-header-name",
        _mail("x", mid="g40", headers=[("Sübject-Ünïcode", "value")]),
        text=("x",),
    )
    params = "; ".join(f"p{i}=v{i}" for i in range(500))
    add(
        "500-content-type-parameters",
        _mail("params body", mid="g41", headers=[("Content-Type", f"text/plain; {params}")]),
        text=("params body",),
    )
    # Empty messages and things that are not mail.
    add("empty", b"", quarantine="empty message")
    add("whitespace-only", b"\r\n\r\n   \r\n\t\r\n", quarantine="empty message")
    add(
        "headers-only-no-blank-line",
        b"From: a@g44.example\r\nSubject: only headers\r\nMessage-ID: <g44@gen.example>",
        subject="only headers",
    )
    add("body-only", b"Hello, this is just text.\nNo headers at all.\n", quarantine="no headers")
    add("random-binary", bytes(rng.getrandbits(8) for _ in range(4096)), quarantine="no headers")
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    add("png-file", png, quarantine="no headers")
    add("zip-file", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200), quarantine="no headers")
    add(
        "pdf-file", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", quarantine="no headers"
    )
    # Attachments of every odd kind.
    good_tnef = tnef([("notes.txt", b"tnef notes")])
    add(
        "tnef-truncated",
        _multipart(
            [text_part, _att("winmail.dat", good_tnef[:-10], "application/ms-tnef")], mid="g51"
        ),
        attachments=("notes.txt", "winmail.dat"),
    )
    add(
        "tnef-not-tnef",
        _multipart(
            [text_part, _att("winmail.dat", b"not tnef at all", "application/ms-tnef")], mid="g52"
        ),
        attachments=("winmail.dat",),
    )
    add(
        "tnef-body-only",
        _multipart(
            [_att("winmail.dat", tnef([], body="Text only in TNEF"), "application/ms-tnef")],
            mid="g52b",
        ),
        text=("Text only in TNEF",),
        attachments=(),
    )
    add(
        "rfc822-empty",
        _multipart([text_part, ("Content-Type: message/rfc822", b"")], mid="g53"),
        text=("first part text",),
    )
    add(
        "rfc822-garbage",
        _multipart([text_part, ("Content-Type: message/rfc822", bytes(range(256)))], mid="g54"),
        text=("first part text",),
    )
    inner = _mail("innermost text", subject="Level 3", mid="g55c")
    for level in (2, 1):
        inner = _multipart(
            [
                ("Content-Type: text/plain", f"level {level}"),
                ("Content-Type: message/rfc822", inner),
            ],
            boundary=f"L{level}",
            subject=f"Level {level}",
            mid=f"g55{level}",
        )
    add(
        "rfc822-nested",
        _multipart([text_part, ("Content-Type: message/rfc822", inner)], mid="g55"),
        attachments=("Level 1.eml",),
    )
    add(
        "x-uuencode-without-begin",
        _multipart(
            [
                text_part,
                (
                    'Content-Type: application/octet-stream; name="u.bin"\nContent-Transfer-Encoding: x-uuencode',
                    "no begin line here\n",
                ),
            ],
            mid="g56",
        ),
        attachments=("u.bin",),
    )
    add(
        "inline-uuencode-broken",
        _mail("see below\nbegin 644 broken.bin\n!!!!not uu\nend\nbye", mid="g57"),
        text=("see below", "bye"),
    )
    add(
        "uuencode-inline-good",
        _mail("file:\n" + _uu("data.csv", b"a,b\n1,2\n") + "thanks", mid="g57b"),
        text=("[attachment: data.csv]", "thanks"),
        attachments=("data.csv",),
    )

    def raw_att(name: str, cte: str, body: bytes) -> tuple[str, bytes]:
        return (
            f'Content-Type: application/octet-stream; name="{name}"\nContent-Transfer-Encoding: {cte}',
            body,
        )

    add(
        "base64-junk-characters",
        _multipart([text_part, raw_att("j.bin", "base64", b"aGVs!!bG8g##d29y**bGQ=")], mid="g58"),
        attachments=("j.bin",),
    )
    add(
        "base64-bad-padding",
        _multipart([text_part, raw_att("p.bin", "base64", b"aGVsbG8")], mid="g59"),
        attachments=("p.bin",),
    )
    add(
        "base64-length-4n1",
        _multipart([text_part, raw_att("l.bin", "base64", b"aGVsbG8gd")], mid="g60"),
        attachments=("l.bin",),
    )
    add(
        "quoted-printable-invalid",
        _mail(
            "price =ZZ 100 =\nsoft break",
            mid="g61",
            headers=[("Content-Transfer-Encoding", "quoted-printable")],
        ),
        text=("price =ZZ 100",),
    )
    add(
        "unknown-cte",
        _mail("strange encoding body", mid="g62", headers=[("Content-Transfer-Encoding", "x-foo")]),
        text=("strange encoding body",),
    )
    add(
        "content-type-no-subtype",
        _mail("typeless body", mid="g63", headers=[("Content-Type", "text")]),
        text=("typeless body",),
    )
    add(
        "content-type-slash",
        _mail("slash body", mid="g64", headers=[("Content-Type", "/")]),
        text=("slash body",),
    )
    add(
        "text-as-attachment-without-name",
        _multipart(
            [text_part, ("Content-Type: text/plain\nContent-Disposition: attachment", "log lines")],
            mid="g65",
        ),
        attachments=("attachment-1.txt",),
    )
    for n, (label, name, expected) in enumerate(
        [
            ("path-traversal", "../../../etc/passwd", "passwd"),
            ("windows-path", "C:\\Windows\\System32\\evil.dll", "evil.dll"),
            ("rtl-override", "invoice\u202efdp.exe", "invoicefdp.exe"),
            ("reserved-name", "CON.txt", "attachment-CON.txt"),
            ("dots-only", "..", "attachment"),
            ("control-characters", "bad\x07\x1bname.txt", "badname.txt"),
        ]
    ):
        encoded = "=?utf-8?b?" + base64.b64encode(name.encode()).decode() + "?="
        add(
            f"filename-{label}",
            _multipart([text_part, _att(encoded, b"payload")], mid=f"g66-{n}"),
            attachments=(expected,),
        )
    add(
        "filename-1000-characters",
        _multipart([text_part, _att("L" * 1000 + ".pdf", b"%PDF")], mid="g69"),
        attachments=("L" * 196 + ".pdf",),
    )
    add(
        "rfc2231-bad-percent",
        _multipart(
            [
                text_part,
                (
                    "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=x-unknown''%ZZ%41.txt",
                    "rfc2231",
                ),
            ],
            mid="g73",
        ),
    )
    # Duplicated and missing headers.
    add(
        "duplicated-headers",
        b"From: First <first@dup.example>\r\nFrom: Second <second@dup.example>\r\nTo: support@example.com\r\n"
        b"Subject: first subject\r\nSubject: second subject\r\nMessage-ID: <g74a@gen.example>\r\n"
        b"Message-ID: <g74b@gen.example>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Type: text/html\r\n\r\ndup body\r\n",
        subject="first subject",
        sender="first@dup.example",
        text=("dup body",),
    )
    add(
        "missing-date",
        b"From: a@g75.example\r\nSubject: no date\r\nMessage-ID: <g75@gen.example>\r\n\r\nundated\r\n",
        subject="no date",
    )
    add(
        "missing-message-id",
        b"From: a@g76.example\r\nSubject: no id\r\n\r\nunidentified\r\n",
        text=("unidentified",),
    )
    add(
        "missing-from-with-return-path",
        b"Return-Path: <bounce@g77.example>\r\nSubject: no from\r\nMessage-ID: <g77@gen.example>\r\n\r\nwho am i\r\n",
        sender="bounce@g77.example",
    )
    add(
        "missing-from-entirely",
        b"To: support@example.com\r\nSubject: anonymous\r\nMessage-ID: <g78@gen.example>\r\n\r\nno sender\r\n",
        sender="",
        text=("no sender",),
    )
    add("from-without-address", _mail("x", sender="John", mid="g79"), sender="")
    add("from-invalid-address", _mail("x", sender="<a b@@example..com>", mid="g80"), sender="")
    add(
        "message-id-injection",
        _mail("x", headers=[("Message-ID", "<=?utf-8?q?a=0D=0ABcc:_x@y?=@evil.example>")]),
        text=("x",),
    )
    add(
        "message-id-5000-chars",
        _mail("long id", headers=[("Message-ID", "<" + "i" * 5000 + "@x>")]),
        text=("long id",),
    )
    refs = " ".join(f"<ref{i}@x.example>" for i in range(5000))
    add(
        "5000-references",
        _mail("many refs", mid="g83", headers=[("References", refs)]),
        text=("many refs",),
    )
    add(
        "date-garbage",
        _mail("bad date", mid="g84", headers=[("Date", "Mon, 99 Foo 2026 99:99:99 +9999")]),
        text=("bad date",),
    )
    add(
        "date-year-9999",
        _mail("far date", mid="g85", headers=[("Date", "Fri, 31 Dec 9999 23:59:59 -1200")]),
        text=("far date",),
    )

    # HTML.
    def html(body: str, mid: str) -> bytes:
        return _mail(body, mid=mid, headers=[("Content-Type", "text/html; charset=utf-8")])

    add(
        "html-broken-markup",
        html("<p><b>unclosed bold <div>still here<table><tr><td>cell", "g86"),
        text=("unclosed bold", "still here", "cell"),
    )
    add(
        "html-meta-charset-mismatch",
        _mail(
            '<html><head><meta charset="iso-8859-1"></head><body>Grüße</body></html>',
            mid="g87",
            headers=[("Content-Type", "text/html; charset=utf-8")],
        ),
        text=("Grüße",),
    )
    add(
        "html-xss-vectors",
        html(
            '<img src=x onerror=alert(1)><a href="jav&#x09;ascript:alert(2)">a</a><iframe srcdoc="<script>x</script>"></iframe>'
            '<svg><script>alert(3)</script></svg><style>@import "evil.css"</style><base href="https://evil.example/">'
            '<object data="evil.swf"></object><p style="background:url(javascript:alert(4))">styled</p>'
            '<noscript><p title="</noscript><img src=x onerror=alert(5)>"></noscript>',
            "g88",
        ),
        text=("styled",),
        html_absent=("onerror", "<script", "<iframe", "<object", "<base", "javascript", "<style"),
    )
    add(
        "alternative-html-only",
        _multipart(
            [("Content-Type: text/html", "<p>only <i>html</i> here</p>")],
            ctype="multipart/alternative",
            mid="g89",
        ),
        text=("only html here",),
    )
    add(
        "500-attachments",
        _multipart(
            [text_part]
            + [_att(f"f{i:03d}.txt", f"file {i}".encode(), "text/plain") for i in range(500)],
            mid="g90",
        ),
        attachments=tuple(sorted(f"f{i:03d}.txt" for i in range(500))),
    )
    # Size limits and slow mail (the corpus desk's limits are small; see the constants above).
    big = rng.randbytes(MAX_MESSAGE)
    add(
        "over-message-limit",
        _multipart(
            [("Content-Type: text/plain", "huge mail"), _att("big.bin", big)],
            mid="g91",
            subject="Huge upload",
        ),
        subject="Huge upload",
        oversized=True,
        text=("over the 3.0 MB limit",),
        attachments=(),
    )
    add(
        "attachment-over-limit",
        _multipart(
            [
                ("Content-Type: text/plain", "two files"),
                _att("small.bin", b"small"),
                _att("too-big.bin", rng.randbytes(MAX_ATTACHMENT + 1)),
            ],
            mid="g92",
        ),
        text=("two files",),
        attachments=("small.bin",),
        dropped=("too-big.bin",),
    )
    add(
        "text-body-over-2mb",
        _mail("line of text\n" * 180_000, mid="g93"),
        text=("MB; too large to keep",),
        attachments=(),
        dropped=("message.txt",),
    )
    add(
        "slow-to-parse",
        nested(99, 600_000, "g94", line=b"d\r\n"),
        quarantine=f"processing took longer than {PROCESSING_SECONDS} s",
    )
    # Assorted real-world oddities.
    add(
        "multipart-digest",
        _multipart(
            [
                ("", _mail("digest one", subject="D1", mid="g95a")),
                ("", _mail("digest two", subject="D2", mid="g95b")),
            ],
            ctype="multipart/digest",
            mid="g95",
        ),
        attachments=("D1.eml", "D2.eml"),
    )
    add(
        "smime-opaque",
        _mail(
            _b64(b"0\x82opaque-signed-data"),
            mid="g96",
            headers=[
                (
                    "Content-Type",
                    'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"',
                ),
                ("Content-Transfer-Encoding", "base64"),
                ("Content-Disposition", 'attachment; filename="smime.p7m"'),
            ],
        ),
        attachments=("smime.p7m",),
    )
    add(
        "format-flowed-delsp",
        _mail(
            "flowed  \nline",
            mid="g97",
            headers=[("Content-Type", "text/plain; format=flowed; delsp=yes")],
        ),
        text=("flowed",),
    )
    add(
        "content-id-injection",
        _multipart(
            [
                text_part,
                (
                    "Content-Type: image/png\nContent-ID: <=?utf-8?q?a=0D=0Ab?=>\nContent-Transfer-Encoding: base64",
                    _b64(png),
                ),
            ],
            mid="g98",
        ),
        attachments=("attachment-1.png",),
    )
    add(
        "template-syntax-in-subject",
        _mail("{{ config }}", subject="{{ 7*7 }} {% if 1 %}x{% endif %}", mid="g99"),
        subject="{{ 7*7 }} {% if 1 %}x{% endif %}",
        text=("{{ config }}",),
    )
    return cases


def all_cases() -> list[Case]:
    return file_cases() + generated_cases()
