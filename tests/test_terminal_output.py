"""Control characters from mail never reach the terminal: text output shows them as
pictures, JSON output escapes them."""

from __future__ import annotations

import base64
import json

from tests.conftest import make_mail, run_maildesk

# ESC ] 0 ; ... BEL sets the terminal's title; CSI (0x9b) starts a sequence on its own.
SUBJECT = "Printer \x1b]0;pwned\x07 on fire \x9b31m"
SHOWN = "Printer ␛]0;pwned␇ on fire �31m"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b")


def _ingest_hostile(desk_dir) -> None:
    encoded = "=?utf-8?b?" + base64.b64encode(SUBJECT.encode()).decode() + "?="
    raw = make_mail(subject="placeholder", body="Hello\n\x1b[2Jcleared?\x7f\n")
    raw = raw.replace(b"Subject: placeholder", b"Subject: " + encoded.encode())
    result = run_maildesk(desk_dir, "ingest", "--now", "-", input=raw)
    assert result.exit_code == 0, result.output


def _assert_inert(output: str) -> None:
    for control in RAW_CONTROLS:
        assert control not in output


def test_tickets_list_and_show_print_control_characters_as_pictures(desk_dir):
    _ingest_hostile(desk_dir)
    listed = run_maildesk(desk_dir, "tickets", "list").output
    shown = run_maildesk(desk_dir, "tickets", "show", "MD-1").output
    _assert_inert(listed)
    _assert_inert(shown)
    assert SHOWN in listed
    assert f"MD-1  {SHOWN}" in shown
    assert "| ␛[2Jcleared?␡" in shown


def test_json_output_escapes_every_control_character(desk_dir):
    _ingest_hostile(desk_dir)
    for args in (("tickets", "list", "--json"), ("tickets", "show", "MD-1", "--json")):
        output = run_maildesk(desk_dir, *args).output
        _assert_inert(output)
        assert "\\u001b]0;pwned\\u0007" in output and "\\u009b31m" in output
        data = json.loads(output)
        ticket = data[0] if isinstance(data, list) else data
        assert ticket["subject"] == SUBJECT  # the escapes give back the exact text
