"""Forwards as Gmail, Outlook, Apple Mail and Thunderbird write them, and as an attachment.

Each builder returns the raw mail an agent's client sends when the agent forwards Dana's
mail (written to the agent directly, Monday 23 Nov 2026 10:05 in Berlin) with a short
note above it. The header blocks and separators are those the clients print (English
locales; Thunderbird with tabs after the names, Outlook's underscore rule).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

DANA = "Dana Customer <dana@example.org>"
ORIGINAL_SUBJECT = "Printer on the 3rd floor is on fire"
ORIGINAL_TEXT = "The printer on the 3rd floor is on fire again.\nPlease send someone."
ORIGINAL_DATE = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)  # 10:05 in Berlin
NOTE = "Dana called me about this too; she is on the 3rd floor."
ATTACHMENT = ("photo.png", "image/png", b"\x89PNG\r\n\x1a\nfake image bytes")

GMAIL = f"""{NOTE}

---------- Forwarded message ---------
From: {DANA}
Date: Mon, Nov 23, 2026 at 10:05 AM
Subject: {ORIGINAL_SUBJECT}
To: Alice Archer <alice@example.com>


{ORIGINAL_TEXT}
"""

OUTLOOK = f"""{NOTE}

________________________________
From: {DANA}
Sent: Monday, November 23, 2026 10:05 AM
To: Alice Archer <alice@example.com>
Subject: {ORIGINAL_SUBJECT}

{ORIGINAL_TEXT}
"""

APPLE_MAIL = f"""{NOTE}

Begin forwarded message:

From: {DANA}
Subject: {ORIGINAL_SUBJECT}
Date: 23 November 2026 at 10:05:00 CET
To: Alice Archer <alice@example.com>

{ORIGINAL_TEXT}
"""

THUNDERBIRD = f"""{NOTE}



-------- Forwarded Message --------
Subject: \t{ORIGINAL_SUBJECT}
Date: \tMon, 23 Nov 2026 10:05:00 +0100
From: \t{DANA}
To: \tAlice Archer <alice@example.com>



{ORIGINAL_TEXT}
"""

# client -> (subject prefix, body, the forwarding client's Date header zone)
INLINE = {
    "gmail": ("Fwd: ", GMAIL),
    "outlook": ("FW: ", OUTLOOK),
    "apple-mail": ("Fwd: ", APPLE_MAIL),
    "thunderbird": ("Fwd: ", THUNDERBIRD),
}


def forward(
    client: str,
    *,
    to: str,
    sender: str = "Alice Archer <alice@example.com>",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    customer: str = "dana@example.org",
) -> bytes:
    """Alice's inline forward of Dana's mail from `client`, carrying Dana's attachment
    (`customer`: another address for Dana)."""
    prefix, body = INLINE[client]
    msg = _envelope(sender, to, prefix + ORIGINAL_SUBJECT, message_id, headers)
    msg.set_content(body.replace("dana@example.org", customer))
    name, ctype, data = ATTACHMENT
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def forward_as_attachment(
    *,
    to: str,
    sender: str = "Alice Archer <alice@example.com>",
    message_id: str | None = None,
    customer: str = "dana@example.org",
    original_headers: dict[str, str] | None = None,
) -> bytes:
    """Alice forwards Dana's mail as an attached message (message/rfc822)."""
    original = EmailMessage()
    for name, value in (original_headers or {}).items():
        original[name] = value
    original["From"] = DANA.replace("dana@example.org", customer)
    original["To"] = "Alice Archer <alice@example.com>"
    original["Subject"] = ORIGINAL_SUBJECT
    original["Date"] = format_datetime(ORIGINAL_DATE)
    original["Message-ID"] = "<dana-original-1@example.org>"
    original.set_content(ORIGINAL_TEXT)
    name, _, data = ATTACHMENT
    original.add_attachment(data, maintype="image", subtype="png", filename=name)
    msg = _envelope(sender, to, "Fwd: " + ORIGINAL_SUBJECT, message_id, None)
    msg.set_content(NOTE)
    msg.add_attachment(original)  # message/rfc822
    return msg.as_bytes()


def _envelope(
    sender: str, to: str, subject: str, message_id: str | None, headers: dict[str, str] | None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 11:30:00 +0100"  # the forwarding client is in Berlin
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        msg[name] = value
    return msg
