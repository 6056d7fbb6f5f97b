"""Is mail from an agent's address really from the agent? Ask Authentication-Results.

Only the receiving MTA's verdict counts (RFC 8601): a DKIM pass for the agent's
domain or an SPF pass for it. A forged From cannot then close tickets.
"""

from __future__ import annotations

import re

from maildesk.intake.message import ParsedMessage

_RESULT = re.compile(r"\b(dkim|spf)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_DOMAIN = re.compile(
    r"(?:header\.d|header\.i|smtp\.mailfrom|smtp\.from)\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE
)


def sender_is_authenticated(msg: ParsedMessage, trusted_authserv: set[str] | None = None) -> bool:
    """True when an Authentication-Results header shows DKIM or SPF pass for the From domain.

    With `trusted_authserv`, only headers added by those servers (the first token) count,
    so a sender cannot bring their own Authentication-Results.
    """
    domain = msg.sender.domain.lower() if msg.sender else ""
    if not domain:
        return False
    for header in msg.header_all("Authentication-Results"):
        authserv = header.split(";", 1)[0].strip().split()[0].lower() if header.strip() else ""
        if trusted_authserv is not None and authserv not in trusted_authserv:
            continue
        for _method, result, props in _RESULT.findall(header):
            if result.lower() != "pass":
                continue
            found = _DOMAIN.search(props)
            checked = found.group(1).lower().rpartition("@")[2] if found else ""
            if checked == domain or checked.endswith("." + domain):
                return True
    return False
