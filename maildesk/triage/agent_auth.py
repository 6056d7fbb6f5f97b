"""Is mail from an agent's address really from the agent? Ask your own mail server.

The trusted block of Authentication-Results headers (see `auth_results`) must vouch for
the agent's domain, and nothing in it may speak against it:

- SPF vouches when it passes for an `smtp.mailfrom` in the agent's domain or a subdomain
  of it. A HELO check (`smtp.helo` without `smtp.mailfrom`) names the sending host, not
  the author, and is ignored.
- DKIM vouches when it passes with `header.d` in the agent's domain or a subdomain of it;
  `header.i` alone never vouches.
- Every other SPF or DKIM verdict vetoes: fail, softfail, none, neutral, policy,
  temperror, permerror, and a pass for another domain. A forged header that ends up
  inside the block sits beside the server's verdict on the real sender, which is never
  a pass for the agent's domain. `dmarc=fail` vetoes too; other methods are ignored.
- Mail with more than one From header is never believed: a DKIM pass covers the From
  its signer signed, which need not be the one maildesk reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from maildesk.common.config import TicketsConfig
from maildesk.intake.message import ParsedMessage
from maildesk.triage.auth_results import Result, top_block


@dataclass(frozen=True)
class AgentAuth:
    """Whether the receiving mail server vouches for the sender, and the words to tell them."""

    vouched: bool
    reason: str  # what vouched, or why the mail is not taken as the agent's


def authenticate_agent(msg: ParsedMessage, agent: str, tickets: TicketsConfig) -> AgentAuth:
    """Whether the trusted servers' headers on `msg` vouch for `agent` (address or domain)."""
    domain = _domain(agent)
    trusted = frozenset(s.strip().lower() for s in tickets.trusted_authserv)
    if not trusted:
        return AgentAuth(False, "no mail server is trusted to vouch for senders")
    froms = len(msg.header_all("From"))
    if froms > 1:  # DKIM signs one of them, the desk reads another: neither is believed
        return AgentAuth(False, f"the mail has {froms} From headers")
    block = top_block(msg.headers, trusted)
    if block.problem:
        return AgentAuth(False, block.problem)
    return judge(block.results, domain)


def judge(results: list[Result], domain: str) -> AgentAuth:
    """Vouched when some SPF or DKIM result passes for `domain` and none speaks against it."""
    passes = []
    for result in results:
        vouch, veto = _assess(result, domain)
        if veto:
            return AgentAuth(False, veto)
        if vouch:
            passes.append(vouch)
    if not passes:
        servers = ", ".join(sorted({r.authserv_id for r in results})) or "your mail server"
        return AgentAuth(False, f"{servers} reports no SPF or DKIM pass for {domain}")
    return AgentAuth(True, "; ".join(passes))


def _assess(result: Result, domain: str) -> tuple[str, str]:
    """(what vouches, what vetoes) in one result; both "" when it says nothing of the author."""
    if result.method == "spf":
        mailfrom = result.values("smtp.mailfrom")
        if not mailfrom and result.values("smtp.helo"):
            return "", ""
        return _by_domain(result, [_domain(v) for v in mailfrom], domain)
    if result.method == "dkim":
        signers = result.values("header.d")
        if signers or result.result != "pass":
            return _by_domain(result, [_domain(v) for v in signers], domain)
        _, veto = _by_domain(result, [_domain(v) for v in result.values("header.i")], domain)
        return "", veto
    if result.method == "dmarc" and result.result == "fail":
        return "", f"{result.authserv_id} reports dmarc=fail"
    return "", ""


def _by_domain(result: Result, domains: list[str], domain: str) -> tuple[str, str]:
    named = ", ".join(sorted(set(domains)))
    said = f"{result.authserv_id} reports {result.method}={result.result}"
    said += f" for {named}" if named else ""
    if result.result != "pass":
        return "", said
    if domains and all(_aligned(d, domain) for d in domains):
        return said, ""
    return "", f"{said}, not for {domain}" if named else f"{said} without naming a domain"


def _aligned(candidate: str, domain: str) -> bool:
    return bool(domain) and (candidate == domain or candidate.endswith("." + domain))


def _domain(value: str) -> str:
    """The domain of an address, a bare domain or `"quoted local"@domain`."""
    return value.rpartition("@")[2].strip().lower().rstrip(".")
