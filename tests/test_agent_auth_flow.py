"""require_agent_auth through the real pipeline and SMTP server, and what `maildesk check` says."""

from __future__ import annotations

import pytest

from tests.conftest import make_mail
from tests.conftest import run_maildesk as run
from tests.mailflow import MailFlow, reply_to
from tests.test_agents import ALICE, CUSTOMER, body, open_ticket, ticket_row, to, with_tickets

MX = "mx.example.com"
MX_HOP = "Received: from mail.example.com by mx.example.com with ESMTPS; Mon, 23 Nov 2026"


@pytest.fixture
def flow(make_desk, smtp_sink, clock):
    """A desk that requires agent authentication, wired to a real SMTP sink."""
    desk = with_tickets(
        make_desk(extra=smtp_sink.smtp_config()), require_agent_auth=True, trusted_authserv=[MX]
    )
    return MailFlow(desk, smtp_sink, clock)


def agent_mail_with(flow, notice, results: list[str], text: str) -> None:
    """Alice's reply as the MX delivers it: its Authentication-Results, then its Received."""
    flow.clock.advance(minutes=5)
    mail = make_mail(
        sender=ALICE, subject=f"Re: {notice['Subject']}", body=text, **reply_to(notice)
    )
    top = "".join(f"Authentication-Results: {r}\r\n" for r in results) + f"{MX_HOP}\r\n"
    flow.desk.pipeline.process_one(top.encode() + mail)


def test_forged_agent_mail_changes_nothing_and_the_real_agent_is_told_why(flow):
    notice = open_ticket(flow)
    forged = f"{MX}; dkim=pass header.d=example.com"
    agent_mail_with(
        flow,
        notice,
        [f"{MX}; spf=softfail smtp.mailfrom=alice@example.com; dkim=none", forged],
        "#status closed\n\nAll done, closing.",
    )
    mail = flow.deliver()
    assert ticket_row(flow.desk).status == "new"
    assert all(CUSTOMER not in to(m) for m in mail)  # nothing relayed
    (told,) = [m for m in mail if to(m) == ["alice@example.com"]]
    text = " ".join(body(told).split())
    assert "your mail server did not vouch that this mail comes from you" in text
    assert f"{MX} reports spf=softfail for example.com" in text


def test_agent_mail_the_mx_vouches_for_is_applied(flow):
    notice = open_ticket(flow)
    genuine = f"{MX}; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=alice@example.com"
    agent_mail_with(flow, notice, [genuine], "#status pending\n\nCould you send a photo?")
    mail = flow.deliver()
    assert ticket_row(flow.desk).status == "pending"
    (relayed,) = [m for m in mail if CUSTOMER in to(m)]
    assert "Could you send a photo?" in body(relayed)


def set_tickets(desk_dir, lines: str) -> None:
    path = desk_dir / "maildesk.yaml"
    text = path.read_text(encoding="utf-8")
    assert "\ntickets:\n" in text
    path.write_text(text.replace("\ntickets:\n", f"\ntickets:\n{lines}", 1), encoding="utf-8")


def agent_auth_line(result) -> str:
    (line,) = [x for x in result.output.splitlines() if "agent authentication" in x]
    return line


def test_check_explains_how_agent_mail_is_verified(desk_dir):
    result = run(desk_dir, "check")  # as `maildesk init` writes it: signed reply addresses
    assert result.exit_code == 0, result.output
    line = agent_auth_line(result)
    assert line.startswith("ok   agent authentication: signed: an agent's mail counts when")
    assert "unverified note" in line and "Authentication-Results" not in line

    set_tickets(desk_dir, f"  trusted_authserv: [{MX}]\n")
    line = agent_auth_line(run(desk_dir, "check"))
    assert f"or when the topmost Authentication-Results headers from {MX}" in line


def test_check_calls_unverified_agents_unsafe_and_a_missing_secret_a_problem(desk_dir):
    config = desk_dir / "maildesk.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("agent_verification: signed", "agent_verification: none"))
    line = agent_auth_line(run(desk_dir, "check"))
    assert "UNSAFE (agent_verification: none)" in line and "anyone who writes that From" in line

    config.write_text(text.replace("  reply_secret: {file: reply.key}", ""), encoding="utf-8")
    result = run(desk_dir, "check")
    assert result.exit_code == 1
    assert "tickets.reply_secret is not set" in result.output
    assert "openssl rand -hex 32 > reply.key" in result.output


def test_check_says_which_server_vouches_when_required(desk_dir):
    set_tickets(desk_dir, f"  require_agent_auth: true\n  trusted_authserv: [{MX}, filter.a]\n")
    result = run(desk_dir, "check")
    assert result.exit_code == 0, result.output
    line = agent_auth_line(result)
    assert line.startswith(
        f"ok   agent authentication: on: agents' mail counts only if the topmost "
        f"Authentication-Results headers from {MX}, filter.a report SPF (smtp.mailfrom) or "
        "DKIM (header.d) pass for the agent's domain"
    )
    assert "remove headers with their name that arrive from outside" in line


def test_check_fails_when_required_without_a_trusted_server(desk_dir):
    set_tickets(desk_dir, "  require_agent_auth: true\n")
    result = run(desk_dir, "check")
    assert result.exit_code == 1
    config = desk_dir / "maildesk.yaml"
    lines = config.read_text(encoding="utf-8").splitlines()
    number = lines.index("  require_agent_auth: true") + 1
    assert f"{config}:{number}: tickets.require_agent_auth: " in result.output
    assert "also needs tickets.trusted_authserv" in result.output
