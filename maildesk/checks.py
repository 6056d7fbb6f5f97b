"""What `maildesk check` verifies; each check returns a summary or raises a MaildeskError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from maildesk.config import Config
from maildesk.errors import MaildeskError, SecretError


def check_rules(config: Config) -> str:
    from maildesk.rules import load_rules

    rules = load_rules(config.rules)
    return f"{config.rules}: {len(rules.queues)} queues, {len(rules.agents)} agents"


def check_templates(config: Config) -> str:
    """Render every template against a sample ticket, so errors show before mail is due."""
    from maildesk.render import Renderer, TemplateError

    renderer = Renderer(config.templates)
    names = renderer.template_names()
    errors = []
    for name in names:
        lang, _, template = name.partition("/")
        try:
            renderer.render(template, lang, sample_context(config))
        except TemplateError as exc:
            errors.append(str(exc))
    if errors:
        raise MaildeskError("template errors:\n  " + "\n  ".join(errors))
    return f"{len(names)} templates render"


def check_secrets(config: Config) -> str:
    """Every configured secret can be read (values are never printed)."""
    found = 0
    sources = [
        ("database password", config.database.password),
        ("SMTP password", config.smtp.password),
    ]
    for mailbox in config.mailboxes:
        sources.append((f"mailbox {mailbox.name} password", mailbox.password))
        sources.append((f"mailbox {mailbox.name} OAuth2 token", mailbox.oauth2_token))
    missing = []
    for what, secret in sources:
        if secret is None:
            continue
        try:
            secret.read(what)
            found += 1
        except SecretError as exc:
            missing.append(str(exc))
    if missing:
        raise MaildeskError("; ".join(missing))
    return f"{found} secret(s) readable"


def check_database(config: Config) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    from maildesk.redact import redact
    from maildesk.store.db import make_engine, require_current_schema

    engine = make_engine(config.database_url())
    try:
        require_current_schema(engine)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise MaildeskError(f"cannot use the database {where}: {redact(str(reason))}") from None
    finally:
        engine.dispose()
    return "schema is current"


def sample_context(config: Config) -> dict:
    """Template variables for a made-up ticket, as `maildesk check` renders them."""
    now = datetime.now(UTC)
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
            "created_at": now,
        },
        "support": {"address": config.tickets.support_address, "name": config.tickets.support_name},
        "agent": {"name": "Sample Agent", "address": "agent@example.com"},
        "body": "Sample text.",
        "message": {"from": "Sample Customer <customer@example.org>", "subject": "Sample request"},
        "oversized": {
            "message": "the message is 61.2 MB, over the 40.0 MB limit",
            "attachments": [
                {"name": "video.mp4", "size": "30.5 MB", "reason": "over the 25.0 MB limit"}
            ],
        },
    }


CHECKS: list[tuple[str, Callable[[Config], str]]] = [
    ("rules", check_rules),
    ("templates", check_templates),
    ("secrets", check_secrets),
    ("database", check_database),
]
