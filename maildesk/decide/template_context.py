"""What each notification template is for, and the variables it sees.

The variables are fixed when a notification is queued and stored as JSON with its
outbox row, so every retry renders the same mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maildesk.common.config import Config
from maildesk.common.domain import TicketState
from maildesk.decide.decision import Notice
from maildesk.decide.satisfaction import rating_context
from maildesk.intake.message import ParsedMessage


@dataclass(frozen=True)
class TemplateSpec:
    """One notification event: who reads it and the extra variables its template gets."""

    audience: str  # requester or agents
    purpose: str
    sample: dict[str, Any] = field(default_factory=dict)
    has_agent: bool = False  # `agent` is set (else None)


def _sample_sla(stage: str) -> dict[str, Any]:
    return {
        "sla": {
            "stage": stage,
            "kind": "first_response",
            "policy": "standard",
            "due_at": datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
            "escalated_to": "Carol Chen",
        }
    }


def _sample_find() -> dict[str, Any]:
    hit = {
        "ref": "MD-7",
        "subject": "Printer on the 3rd floor jams",
        "status": "open",
        "queue": "general",
        "assignee": "alice@example.com",
        "updated_at": datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
        "snippet": "…the printer jams on every second page since Monday…",
    }
    searches = [
        {"query": "printer", "results": [hit]},
        {"query": '"paper jam" warsaw', "results": []},
    ]
    return {"searches": searches, "errors": [], "limit": 10}


def _sample_files() -> dict[str, Any]:
    return {
        "files": {
            "attached": [{"name": "screenshot.png", "size": "812 KB"}],
            "withheld": [
                {"name": "logs.zip", "size": "14.2 MB", "reason": "limit"},
                {"name": "setup.exe", "size": "3.1 MB", "reason": "blocked"},
            ],
        }
    }


TEMPLATES: dict[str, TemplateSpec] = {
    "ack": TemplateSpec("requester", "a new request was received: its reference, how to reply"),
    "agent_reply": TemplateSpec("requester", "an agent's reply, relayed", has_agent=True),
    "status_resolved": TemplateSpec("requester", "the ticket was resolved: how to reopen it"),
    "status_closed": TemplateSpec("requester", "the ticket was closed"),
    "new_ticket": TemplateSpec(
        "agents", "a new ticket for the assignee or the queue", _sample_files()
    ),
    "customer_reply": TemplateSpec("agents", "the requester or a CC wrote again", _sample_files()),
    "sla_warning": TemplateSpec("agents", "an SLA due time is near", _sample_sla("warning")),
    "sla_breach": TemplateSpec("agents", "an SLA due time passed", _sample_sla("breach")),
    "command_error": TemplateSpec(
        "agents",
        "an agent's commands failed; nothing was applied",
        {
            "errors": ["#assign zed: no agent called zed", "#status done: not a status"],
            "commands": ["#assign zed", "#status done"],
        },
        has_agent=True,
    ),
    "agent_unverified": TemplateSpec(
        "agents",
        "mail from the agent's address could not be verified as theirs; nothing was applied",
        {
            "reason": "it was not sent to the reply address of a notification",
            "received_subject": "Re: [MD-1] Sample request",
        },
        has_agent=True,
    ),
    "note": TemplateSpec("agents", "an internal note, to the other agents", has_agent=True),
    "reminder": TemplateSpec(
        "agents", "an open ticket had no agent action for a while", {"hours": 24}
    ),
    "command_confirm": TemplateSpec(
        "agents",
        "an agent's commands were applied: what changed",
        {"applied": ["status open -> pending", "assigned to Alice Archer"]},
        has_agent=True,
    ),
    "oversized": TemplateSpec(
        "requester",
        "a message or attachment was over a size limit: what was not kept",
        {
            "oversized": {
                "message": "the message is 61.2 MB, over the 40.0 MB limit",
                "attachments": [
                    {"name": "video.mp4", "size": "30.5 MB", "reason": "over the 25.0 MB limit"}
                ],
            }
        },
    ),
    "attachments": TemplateSpec(
        "agents",
        "an agent's #send-attachments: the ticket's files",
        {**_sample_files(), "part": 1, "parts": 2},
        has_agent=True,
    ),
    "find_results": TemplateSpec(
        "agents", "an agent's #find: the tickets that match", _sample_find(), has_agent=True
    ),
    "assigned": TemplateSpec(
        "agents",
        "#assign gave the ticket to this agent: its summary and the customer's latest mail",
        {
            "assigned_by": "Alice Archer",
            "last_message": {
                "from": "Sample Customer <customer@example.org>",
                "date": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
            },
            "said": {"text": "Bob knows this printer; over to him.", "internal": True},
        },
        has_agent=True,
    ),
    "agent_replied": TemplateSpec(
        "agents", "an agent answered the requester: a copy for the watchers", has_agent=True
    ),
    "forward_unverified": TemplateSpec(
        "agents",
        "an agent's forward could not be verified: the ticket is the agent's own",
        {
            "reason": "it was not sent to your forwarding address",
            "original_from": "dana@example.org",
        },
        has_agent=True,
    ),
}


def notification_context(
    ticket: TicketState, notice: Notice, msg: ParsedMessage | None, config: Config
) -> dict[str, Any]:
    """The variables every notification template can use (README lists them).

    Stored as JSON with the outbox row, so values are plain strings, numbers and lists.
    """
    tickets = config.tickets
    agent = notice.from_agent
    return {
        "ticket": {
            "ref": ticket.ref,
            "subject": ticket.subject,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "queue": ticket.queue,
            "assignee": ticket.assignee or "",
            "requester": ticket.requester,
            "requester_name": ticket.requester_name or ticket.requester,
            "created_at": ticket.created_at.isoformat(),
            "language": ticket.language,
            "sla_policy": ticket.sla_policy or "",
            "first_response_due": _iso(
                None if ticket.first_response_at else ticket.first_response_due
            ),
            "resolution_due": _iso(ticket.resolution_due),
        },
        "support": {"address": tickets.support_address, "name": tickets.support_name},
        "settings": _settings(config),
        "agent": {"name": agent.name or agent.address, "address": agent.address} if agent else None,
        "body": notice.body_text or "",
        "body_html": notice.body_html or "",  # sanitised (notice_files): safe to insert
        "message": {
            "from": str(msg.sender) if msg and msg.sender else "",
            "subject": msg.subject if msg else "",
        },
        **_rating(ticket, notice, config),
        **_jsonable(notice.extra),
    }


def ticketless_context(notice: Notice, msg: ParsedMessage, config: Config) -> dict[str, Any]:
    """The variables of a notification about no ticket (an agent's #find): as
    `notification_context` without `ticket`."""
    agent = notice.from_agent
    return {
        "support": {
            "address": config.tickets.support_address,
            "name": config.tickets.support_name,
        },
        "settings": _settings(config),
        "agent": {"name": agent.name or agent.address, "address": agent.address} if agent else None,
        "body": notice.body_text or "",
        "body_html": notice.body_html or "",
        "message": {"from": str(msg.sender) if msg.sender else "", "subject": msg.subject},
        **_jsonable(notice.extra),
    }


def _rating(ticket: TicketState, notice: Notice, config: Config) -> dict[str, Any]:
    """The rating invitation of the "resolved" notification (links expire)."""
    if notice.template != "status_resolved":
        return {}
    satisfaction = config.satisfaction
    secret = satisfaction.secret.read("satisfaction secret") if satisfaction.secret else None
    context = rating_context(
        ticket.ref,
        ticket.subject,
        support_address=config.tickets.support_address,
        secret=secret,
        now=ticket.updated_at,
        days=satisfaction.link_days,
        link_base=satisfaction.link_base,
    )
    return _jsonable(context)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def sample_context(config: Config, template: str) -> dict[str, Any]:
    """Variables for a made-up ticket, as `maildesk check` renders `template` with them."""
    spec = TEMPLATES.get(template, TemplateSpec("requester", "custom"))
    return {
        "ticket": {
            "ref": f"{config.tickets.prefix}-1",
            "subject": "Sample request",
            "status": "open",
            "priority": "normal",
            "queue": "general",
            "assignee": "agent@example.com",
            "requester": "customer@example.org",
            "requester_name": "Sample Customer",
            "created_at": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
            "language": config.tickets.language,
            "sla_policy": "standard",
            "first_response_due": datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
            "resolution_due": datetime(2026, 11, 27, 17, 0, tzinfo=UTC),
        },
        "support": {"address": config.tickets.support_address, "name": config.tickets.support_name},
        "settings": _settings(config),
        "agent": {"name": "Sample Agent", "address": "agent@example.com"}
        if spec.has_agent
        else None,
        "body": "Sample text.\nA second line with <b>markup</b> that must stay text.",
        "body_html": "",
        "message": {"from": "Sample Customer <customer@example.org>", "subject": "Sample request"},
        **spec.sample,
    }


def _settings(config: Config) -> dict[str, Any]:
    tickets = config.tickets
    return {
        "prefix": tickets.prefix,
        "reply_to_closed": tickets.reply_to_closed,
        "auto_close_days": tickets.auto_close_days,
    }
