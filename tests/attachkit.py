"""Files and mails for the attachment tests: real PNG and PDF bytes, and an agent's
reply as a mail client writes it (HTML with an inline picture, quoted history)."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.policy import SMTP

from PIL import Image

from tests.mailflow import reply_to


def png(color: str = "red", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def pdf(pages: int = 1, filler: int = 0) -> bytes:
    """A small valid PDF (Pillow writes it), padded with a comment to `filler` bytes more."""
    buffer = io.BytesIO()
    images = [Image.new("RGB", (60, 80), c) for c in ("white", "gray", "black")[:pages]]
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    data = buffer.getvalue()
    return data + (b"%" + bytes(range(256)) * (filler // 256) + b"\n" if filler else b"")


def customer_mail(
    subject: str = "Printer on fire",
    *,
    files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    html: str | None = None,
    inline: list[tuple[str, bytes]] = (),  # type: ignore[assignment]  # (cid, png)
    message_id: str = "<c1@example.org>",
    sender: str = "Jane Doe <customer@example.org>",
) -> bytes:
    """A customer's mail with files, and optionally HTML showing inline pictures."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    msg.set_content("The printer is on fire, see the pictures.")
    return with_parts(msg, html, inline, files)


def agent_reply(
    notice: EmailMessage,
    text: str,
    *,
    html: str | None = None,
    inline: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    files: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    sender: str = "Alice Archer <alice@example.com>",
    message_id: str = "<a1@example.com>",
) -> bytes:
    """Alice's answer to `notice`, through its signed Reply-To, as her client writes it:
    the text, the HTML (quoting the notification) with inline pictures, and files."""
    headers = reply_to(notice)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = headers["to"]
    msg["Subject"] = f"Re: {notice['Subject']}"
    msg["Message-ID"] = message_id
    msg["In-Reply-To"] = headers["in_reply_to"]
    msg["References"] = headers["references"]
    msg["Date"] = "Mon, 23 Nov 2026 10:05:00 +0000"
    quoted = "\n".join(
        f"> {line}" for line in notice.get_body(("plain",)).get_content().split("\n")
    )
    msg.set_content(f"{text}\n\nOn Mon, 23 Nov 2026 at 10:00, Example Support wrote:\n{quoted}\n")
    return with_parts(msg, html, inline, files)


def quoting_html(new: str, quoted_cid: str | None = None) -> str:
    """An HTML reply as Gmail writes it: the new part, then the quoted notification."""
    picture = f'<img src="cid:{quoted_cid}">' if quoted_cid else ""
    return (
        f'<div dir="ltr">{new}</div><br><div class="gmail_quote"><div dir="ltr" '
        'class="gmail_attr">On Mon, 23 Nov 2026 at 10:00, Example Support '
        "&lt;support@example.com&gt; wrote:<br></div><blockquote>New ticket MD-1 "
        f"{picture}</blockquote></div>"
    )


def files_of(message: EmailMessage) -> dict[str, bytes]:
    """Attached files by name, decoded (inline pictures too)."""
    return {
        part.get_filename(): part.get_payload(decode=True)
        for part in message.walk()
        if part.get_filename() and not part.is_multipart()
    }


def with_parts(
    msg: EmailMessage,
    html: str | None,
    inline: list[tuple[str, bytes]],
    files: list[tuple[str, str, bytes]],
) -> bytes:
    """`msg` (its text set) with the HTML alternative, its inline pictures and the files,
    as a mail client sends it."""
    if html is not None:
        msg.add_alternative(html, subtype="html")
        for cid, data in inline:
            msg.get_payload()[1].add_related(data, "image", "png", cid=f"<{cid}>")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)
