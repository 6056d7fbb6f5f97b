"""Generated mail for benchmarks: mixed sizes, charsets, ~30% replies, some 50 KB attachments."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

CHARSETS = [
    ("utf-8", "Здравствуйте, не работает вход в систему после обновления. ", "Не работает вход"),
    ("koi8-r", "Добрый день! Счёт за ноябрь не пришёл на почту. ", "Счёт не пришёл"),
    ("windows-1251", "Прошу вернуть деньги за двойное списание. ", "Двойное списание"),
    ("iso-8859-2", "Dzień dobry, aplikacja nie działa od rana. ", "Pilne: błąd aplikacji"),
    ("iso-2022-jp", "ログインできません。至急対応をお願いします。", "ログインできません"),
    ("us-ascii", "Hello, the export to CSV fails with error 500. ", "Export fails"),
]


def generate(
    n: int,
    *,
    seed: int = 1,
    reply_share: float = 0.3,
    attachment_share: float = 0.1,
    token_share: float = 0.5,
) -> Iterator[bytes]:
    """Yield `n` raw messages; replies refer to earlier ones by token or In-Reply-To.

    A token reply names `[MD-k]` for the k-th request of this corpus, which is its
    ticket only when one desk numbers the tickets of this corpus alone: corpora
    ingested side by side (several daemons) should use `token_share=0`.
    """
    rng = random.Random(seed)
    sent: list[tuple[str, str, str]] = []  # (message-id, subject, sender) of new requests
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    for i in range(n):
        charset, sentence, subject = rng.choice(CHARSETS)
        msg = EmailMessage()
        sender = f"customer{rng.randrange(5000)}@example{rng.randrange(50)}.org"
        is_reply = bool(sent) and rng.random() < reply_share
        if is_reply:
            ref_index = rng.randrange(len(sent))
            parent, parent_subject, sender = sent[ref_index]
        msg["From"] = f"Customer <{sender}>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(start + timedelta(seconds=37 * i))
        mid = f"<bench-{seed}-{i}@example.org>"
        msg["Message-ID"] = mid
        if is_reply:
            if rng.random() < token_share:
                msg["Subject"] = f"Re: [MD-{ref_index + 1}] {parent_subject}"
            else:
                msg["Subject"] = f"Re: {parent_subject}"
                msg["In-Reply-To"] = parent
                msg["References"] = parent
        else:
            msg["Subject"] = f"{subject} #{i}"
            sent.append((mid, msg["Subject"], sender))
        body = sentence * rng.choice([1, 3, 10, 40, 120])
        msg.set_content(body, charset=charset if charset != "us-ascii" else "utf-8")
        if rng.random() < attachment_share:
            msg.add_attachment(
                rng.randbytes(50 * 1024),
                maintype="application",
                subtype="pdf",
                filename=f"scan-{i}.pdf",
            )
        yield msg.as_bytes()
