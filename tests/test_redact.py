"""What `redact` masks: remembered secrets plain and base64-encoded, bearer tokens, and
a bounded memory of rotated tokens."""

from __future__ import annotations

import base64
import time

import pytest

from maildesk.common import redact as redaction
from maildesk.common.redact import KEEP_PER_SOURCE, redact, remember_secret


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    """Each test starts with nothing remembered (the module keeps one list per process)."""
    monkeypatch.setattr(redaction, "_sources", {})
    monkeypatch.setattr(redaction, "_current", [])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PASSWORD = "Tr0ub4dor&3-horse"


@pytest.mark.parametrize("user", ["a", "ab", "abc", "support@example.com"])
def test_auth_plain_echoed_by_a_server_is_masked_whatever_the_user_name(user):
    remember_secret(PASSWORD, "SMTP password")
    plain = _b64(f"\0{user}\0{PASSWORD}".encode())
    answer = redact(f"535 5.7.8 AUTH PLAIN {plain} rejected")
    assert answer == "535 5.7.8 AUTH PLAIN *** rejected"


def test_auth_login_password_line_is_masked():
    remember_secret(PASSWORD, "SMTP password")
    assert redact(f"535 bad password {_b64(PASSWORD.encode())}.") == "535 bad password ***."


def test_xoauth2_strings_are_masked_even_for_a_token_never_read():
    token = "ya29.a0AfH6SMBx-never-remembered"
    sasl = _b64(f"user=agent@example.com\x01auth=Bearer {token}\x01\x01".encode())
    assert redact(f"NO [AUTHENTICATIONFAILED] {sasl}") == "NO [AUTHENTICATIONFAILED] ***"
    assert redact(f"got auth=Bearer {token}\x01\x01") == "got auth=Bearer ***\x01\x01"
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"


def test_ordinary_base64_and_text_are_left_alone():
    remember_secret(PASSWORD, "SMTP password")
    text = f"attachment {_b64(b'quarterly report, nothing secret in here')} and user=someone"
    assert redact(text) == text


def test_a_rotating_token_keeps_the_newest_values_and_other_sources_intact():
    remember_secret("smtp-password-1", "SMTP password")
    tokens = [f"token-number-{i:02d}" for i in range(10)]
    for token in tokens:
        remember_secret(token, "mailbox billing OAuth2 token")
    remember_secret(tokens[-1], "mailbox billing OAuth2 token")  # read again: still one
    kept = tokens[-KEEP_PER_SOURCE:]
    assert redaction.remembered_count() == KEEP_PER_SOURCE + 1
    assert redact(" ".join(kept)) == " ".join(["***"] * KEEP_PER_SOURCE)
    assert redact(tokens[0]) == tokens[0]  # rotated out long ago
    assert redact("smtp-password-1") == "***"  # the current value of another source


def test_a_long_base64_body_is_redacted_in_linear_time():
    remember_secret(PASSWORD, "SMTP password")
    body = _b64(bytes(range(256)) * 12_000)  # 4 MB of base64 without the secret
    started = time.monotonic()
    assert redact(body + " " + PASSWORD) == body + " ***"
    assert time.monotonic() - started < 5  # quadratic scanning would take hours
