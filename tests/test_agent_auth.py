"""Agent mail is believed only when your own MX's Authentication-Results vouch for it."""

from __future__ import annotations

import pytest

from maildesk.common.config import TicketsConfig
from maildesk.common.config_file import load_config
from maildesk.common.errors import ConfigError
from maildesk.intake.parse import parse_message
from maildesk.triage.agent_auth import AgentAuth, authenticate_agent

MX = "mx.example.com"
AR = "Authentication-Results header"
TICKETS = TicketsConfig(trusted_authserv=[MX], require_agent_auth=True)
GENUINE = f"{MX}; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=alice@example.com"
MX_HOP = "Received: from mail.example.com by mx.example.com with ESMTPS; Mon, 23 Nov 2026"
SENDER_HOP = "Received: from laptop by mail.evil.example; Mon, 23 Nov 2026"


def mail(*headers: str) -> bytes:
    """Agent mail whose header list starts with `headers`, top first, as the MX left it."""
    top = "".join(f"{h}\r\n" for h in headers)
    return (
        f"{top}From: Alice <alice@example.com>\r\nSubject: Re: x\r\n\r\n#status closed\r\n".encode()
    )


def check(*headers: str, tickets: TicketsConfig = TICKETS):
    return authenticate_agent(parse_message(mail(*headers)), "alice@example.com", tickets)


def ar(value: str) -> str:
    return f"Authentication-Results: {value}"


@pytest.mark.parametrize(
    "headers",
    [
        [ar(GENUINE), MX_HOP],
        [ar(f"{MX}; spf=pass smtp.mailfrom=alice@example.com"), MX_HOP],
        [ar(f"{MX}; dkim=pass (2048-bit key) header.d=mail.example.com header.s=s1"), MX_HOP],
        # After delivery: Return-Path and Delivered-To, and the Received of an internal relay.
        [
            "Return-Path: <alice@example.com>",
            "Delivered-To: support@example.com",
            "Received: from mx.example.com by imap.example.com with LMTP",
            ar(GENUINE),
            MX_HOP,
        ],
        # One header per tool (OpenDKIM, OpenDMARC, an SPF daemon) under one authserv-id.
        [
            ar(f"{MX}; dmarc=pass (p=none dis=none) header.from=example.com"),
            ar(f"{MX}; dkim=pass header.d=example.com header.i=@example.com"),
            ar(f"{MX}; spf=pass smtp.mailfrom=alice@example.com smtp.helo=mail.example.com"),
            MX_HOP,
        ],
        # Gmail's shape: DKIM names header.i only (never vouches alone), SPF vouches.
        [
            ar(
                f"{MX}; dkim=pass header.i=@example.com header.s=20230601 header.b=AbC+/1=; "
                "spf=pass (mx: domain of alice@example.com designates 192.0.2.1) "
                "smtp.mailfrom=alice@example.com; dmarc=pass (p=REJECT) header.from=example.com"
            ),
            MX_HOP,
        ],
    ],
)
def test_a_genuine_pass_for_the_agents_domain_is_accepted(headers):
    auth = check(*headers)
    assert auth.vouched, auth.reason
    assert "pass for" in auth.reason


def test_the_mx_must_be_trusted_by_name_whatever_its_case():
    tickets = TicketsConfig(trusted_authserv=["MX.Example.COM"], require_agent_auth=True)
    assert check(ar(GENUINE.replace(MX, "Mx.Example.Com")), tickets=tickets).vouched


def test_a_forged_header_below_the_mx_hop_is_ignored():
    auth = check(
        ar(f"{MX}; spf=pass smtp.mailfrom=x@evil.example; dkim=none"),
        MX_HOP,
        ar(GENUINE),
        SENDER_HOP,
    )
    assert not auth.vouched
    assert auth.reason == f"{MX} reports spf=pass for evil.example, not for example.com"


def test_a_forged_header_is_ignored_even_when_the_mx_itself_says_nothing():
    auth = check(ar(f"{MX}; none"), MX_HOP, ar(GENUINE), SENDER_HOP)
    assert not auth.vouched
    assert "reports no SPF or DKIM pass for example.com" in auth.reason


def test_a_forged_header_right_below_the_mx_header_meets_the_real_verdict():
    # An MX that inserts its header below its own Received and does not remove incoming
    # ones leaves the forgery touching its verdict; the verdict on the real sender vetoes.
    real = f"{MX}; spf=pass smtp.mailfrom=x@evil.example; dkim=pass header.d=evil.example"
    auth = check(MX_HOP, ar(real), ar(f"{MX}; dkim=pass header.d=example.com"), SENDER_HOP)
    assert not auth.vouched
    assert "evil.example, not for example.com" in auth.reason


@pytest.mark.parametrize(
    ("verdict", "said"),
    [
        ("spf=fail smtp.mailfrom=alice@example.com", "spf=fail for example.com"),
        ("spf=softfail smtp.mailfrom=alice@example.com", "spf=softfail for example.com"),
        ("spf=none smtp.mailfrom=alice@example.com", "spf=none for example.com"),
        ("spf=temperror smtp.mailfrom=alice@example.com", "spf=temperror for example.com"),
        ("dkim=fail (bad signature) header.d=example.com", "dkim=fail for example.com"),
        ("dkim=none (message not signed)", "dkim=none"),
        ("dmarc=fail (p=reject) header.from=example.com", "dmarc=fail"),
    ],
)
def test_any_fail_softfail_or_none_from_the_mx_is_a_veto(verdict, said):
    for order in (f"{GENUINE}; {verdict}", f"{MX}; {verdict}; {GENUINE.partition('; ')[2]}"):
        auth = check(ar(order), MX_HOP)
        assert not auth.vouched
        assert auth.reason == f"{MX} reports {said}"


def test_a_veto_in_a_second_header_from_the_mx_counts():
    auth = check(ar(GENUINE), ar(f"{MX}; spf=softfail smtp.mailfrom=example.com"), MX_HOP)
    assert (auth.vouched, auth.reason) == (False, f"{MX} reports spf=softfail for example.com")


def test_a_helo_check_neither_vouches_nor_vetoes():
    helo_only = f"{MX}; spf=none smtp.helo=mail.example.com"
    assert check(ar(f"{helo_only}; dkim=pass header.d=example.com"), MX_HOP).vouched
    assert not check(ar(f"{MX}; spf=pass smtp.helo=mail.example.com"), MX_HOP).vouched


ELSEWHERE = f"{MX} reports spf=pass for evil.example, not for example.com"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # An echoed envelope sender whose quoted local part looks like a result.
        (
            f'{MX}; spf=pass smtp.mailfrom="x;dkim=pass header.d=example.com"@evil.example',
            ELSEWHERE,
        ),
        (
            f'{MX}; spf=pass smtp.mailfrom="x; dkim=pass header.d=example.com"@evil.example',
            ELSEWHERE,
        ),
        # Results written inside comments or quoted reasons are not results.
        (
            f"{MX}; spf=fail (dkim=pass header.d=example.com) smtp.mailfrom=example.com",
            f"{MX} reports spf=fail for example.com",
        ),
        (
            f"{MX} (; dkim=pass header.d=example.com); spf=softfail smtp.mailfrom=example.com",
            f"{MX} reports spf=softfail for example.com",
        ),
        (
            f"{MX}; dkim=pass (header.d=example.com) header.d=evil.example",
            f"{MX} reports dkim=pass for evil.example, not for example.com",
        ),
        (
            f"{MX}; none (; dkim=pass header.d=example.com)",
            "your mail server reports no SPF or DKIM pass for example.com",
        ),
        (
            f'{MX}; dkim=fail reason="; dkim=pass header.d=example.com" header.d=example.com',
            f"{MX} reports dkim=fail for example.com",
        ),
    ],
)
def test_quoted_strings_and_comments_cannot_smuggle_a_pass(value, reason):
    assert check(ar(value), MX_HOP) == AgentAuth(False, reason)


def test_an_encoded_word_in_an_echoed_address_stays_text():
    # Decoded as RFC 2047 it would read "spf=pass smtp.mailfrom=x; dkim=pass header.d=...".
    word = "=?utf-8?q?x=3B_dkim=3Dpass_header.d=3Dexample.com_?="
    auth = check(ar(f"{MX}; spf=pass smtp.mailfrom={word}@evil.example"), MX_HOP)
    assert (auth.vouched, auth.reason) == (
        False,
        f"{MX} reports spf=pass for evil.example, not for example.com",
    )


def test_a_header_from_an_untrusted_server_is_not_believed():
    auth = check(ar(GENUINE.replace(MX, "attacker.example")), SENDER_HOP)
    assert not auth.vouched
    assert auth.reason == (
        "its topmost Authentication-Results header comes from attacker.example, "
        f"not from your mail server ({MX})"
    )


def test_nothing_below_a_header_from_another_server_is_believed():
    # An internal relay's own header on top hides the MX's unless the relay is trusted too.
    relay = "filter.example.com; dkim=fail header.d=example.com"
    headers = (ar(relay), "Received: from mx.example.com by filter.example.com", ar(GENUINE))
    assert "comes from filter.example.com" in check(*headers).reason
    both = TicketsConfig(trusted_authserv=[MX, "filter.example.com"], require_agent_auth=True)
    auth = check(*headers, tickets=both)
    assert (auth.vouched, auth.reason) == (
        False,
        "filter.example.com reports dkim=fail for example.com",
    )


def test_a_message_without_a_header_from_the_mx_is_not_believed():
    auth = check(MX_HOP)
    assert (auth.vouched, auth.reason) == (False, "it has no Authentication-Results header")


@pytest.mark.parametrize(
    "domain",
    ["evil.example", "example.com.evil.example", "notexample.com", "com"],
)
def test_a_dkim_pass_for_another_domain_is_not_the_agents(domain):
    auth = check(ar(f"{MX}; dkim=pass header.d={domain} header.i=@example.com"), MX_HOP)
    assert not auth.vouched
    assert auth.reason == f"{MX} reports dkim=pass for {domain}, not for example.com"


def test_header_i_alone_does_not_vouch():
    auth = check(ar(f"{MX}; dkim=pass header.i=alice@example.com"), MX_HOP)
    assert (auth.vouched, auth.reason) == (
        False,
        f"{MX} reports no SPF or DKIM pass for example.com",
    )


@pytest.mark.parametrize(
    ("top", "why"),
    [
        # Valid RFC 8601 that authres 1.2.0 cannot read: a quoted authserv-id.
        (f'"{MX}"; dkim=pass header.d=example.com', "its topmost"),
        (f"{MX}; dkim=pass header.d=example.com x-bits=2048", f"the {AR} from {MX}"),
        (f"{MX}; dkim=pass header.d=example.com (unclosed", f"the {AR} from {MX}"),
        (f"{MX}; dkim=pass header.d=example.com" + " (x" * 2000 + ")" * 2000, "nested too deep"),
        (f"{MX}; dkim=pass header.d=example.com policy.x=" + "a" * 10_000, "longer than"),
    ],
)
def test_an_unreadable_header_at_the_top_is_a_veto(top, why):
    auth = check(ar(top), ar(GENUINE), MX_HOP)
    assert not auth.vouched
    assert "cannot be read" in auth.reason and why in auth.reason


def test_an_unreadable_header_right_below_the_block_is_a_veto_unless_from_another_server():
    # Without an authserv-id (as some providers write them) it might be the MX's own.
    below = "spf=fail (sender IP is 192.0.2.1) smtp.mailfrom=example.com"
    auth = check(ar(GENUINE), ar(below), MX_HOP)
    assert not auth.vouched
    assert "header right below your mail server's cannot be read" in auth.reason
    assert check(ar(GENUINE), ar(f"other.example; {below} x-bits=1"), MX_HOP).vouched


def write(tmp_path, text: str):
    path = tmp_path / "maildesk.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_require_agent_auth_without_trusted_servers_is_a_config_error(tmp_path):
    path = write(tmp_path, "tickets:\n  prefix: MD\n  require_agent_auth: true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{path}:3: tickets.require_agent_auth: ")
    assert "needs tickets.trusted_authserv" in problem


def test_a_trusted_server_must_be_an_authserv_id(tmp_path):
    path = write(tmp_path, "tickets:\n  trusted_authserv: ['mx.example.com; spf=pass']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith(f"{path}:2: tickets.trusted_authserv: ")
    assert "'mx.example.com; spf=pass' is not an authserv-id" in problem


def test_trusted_servers_are_read_in_lower_case(tmp_path):
    path = write(tmp_path, "tickets:\n  require_agent_auth: true\n  trusted_authserv: [MX.A]\n")
    assert load_config(path).tickets.trusted_authserv == ["mx.a"]


def test_mail_with_two_from_headers_is_never_the_agents():
    # A stranger puts From: alice above a message that example.com signed for another of
    # its users: DKIM checks one From, maildesk would read the other.
    raw = mail(ar(GENUINE), MX_HOP).replace(
        b"From: Alice <alice@example.com>\r\n",
        b"From: Alice <alice@example.com>\r\nFrom: Mallory <mallory@example.com>\r\n",
    )
    assert parse_message(raw).from_addr == "alice@example.com"  # the first is read
    auth = authenticate_agent(parse_message(raw), "alice@example.com", TICKETS)
    assert auth == AgentAuth(False, "the mail has 2 From headers")
