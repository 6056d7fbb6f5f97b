"""What `maildesk check` verifies; each check returns a summary or raises a MaildeskError."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from maildesk.common.config import Config
from maildesk.common.errors import MaildeskError, Problem, RulesError, SecretError

if TYPE_CHECKING:
    from maildesk.rules import RuleSet


def check_rules(config: Config) -> str:
    """rules.yaml loads, and agrees with maildesk.yaml's mailboxes and the templates."""
    from maildesk.rules import load_rules

    rules = load_rules(config.rules)
    problems = rules_cross_problems(config, rules)
    if problems:
        raise RulesError(str(config.rules), problems)
    return (
        f"{config.rules}: {len(rules.rules)} rules, {len(rules.queues)} queues, "
        f"{len(rules.agents)} agents, {len(rules.sla_policies)} SLA policies"
    )


def rules_cross_problems(config: Config, rules: RuleSet) -> list[Problem]:
    """What rules.yaml names that lives elsewhere: mailbox queues and auto-reply templates."""
    from maildesk.outgoing.template_files import template_dirs, template_names

    problems = []
    for mailbox in config.sources:
        if mailbox.queue and mailbox.queue not in rules.queues:
            problems.append(
                Problem(
                    config.source,
                    None,
                    f"mailbox '{mailbox.name}' has queue '{mailbox.queue}', which rules.yaml "
                    f"does not define (queues: {', '.join(rules.queues)})",
                )
            )
    available = set(template_names(template_dirs(config.templates)))
    wanted = [(rules.default_auto_reply, "default", None)] + [
        (a.value, f"rule '{r.name}'", r.line)
        for r in rules.rules
        for a in r.actions
        if a.field == "auto_reply"
    ]
    for template, where, line in wanted:
        if template and f"{rules.default_language}/{template}" not in available:
            problems.append(
                Problem(
                    rules.source,
                    line,
                    f"auto_reply template '{template}' in {where} does not exist "
                    f"(looked for {rules.default_language}/{template}.txt.j2 in the templates)",
                )
            )
    return problems


def check_templates(config: Config) -> str:
    """Render every template against a sample ticket, so errors show before mail is due."""
    from maildesk.decide.template_context import TEMPLATES
    from maildesk.outgoing.templates import Renderer, TemplateError

    renderer = Renderer(config.templates, default_language=config.tickets.language)
    names = renderer.template_names()
    errors = []
    for name in names:
        lang, _, template = name.partition("/")
        try:
            renderer.render_strict(template, lang, sample_context(config, template))
        except TemplateError as exc:
            errors.append(str(exc))
    for template in _templates_rules_name(config):
        if not any(n.endswith(f"/{template}") for n in names):
            errors.append(f"rules.yaml names template '{template}', which does not exist")
    if errors:
        raise MaildeskError("template errors:\n  " + "\n  ".join(errors))
    fallbacks = [
        f"{lang}/{t}"
        for lang in renderer.languages()
        for t in TEMPLATES
        if f"{lang}/{t}" not in names
    ]
    note = f"; in the default language instead: {', '.join(fallbacks)}" if fallbacks else ""
    return f"{len(names)} templates render{note}"


def _templates_rules_name(config: Config) -> list[str]:
    from maildesk.common.errors import RulesError
    from maildesk.rules import load_rules

    try:
        rules = load_rules(config.rules)
    except (RulesError, OSError):
        return []  # the rules check reports that
    return [rules.default_auto_reply] if rules.default_auto_reply else []


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

    from maildesk.common.redact import redact
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


def check_knowledge_base(config: Config) -> str:
    """Every knowledge-base article parses (front matter, unique names)."""
    if config.knowledge_base is None:
        return "none configured"
    from maildesk.service.knowledge_base import load_articles

    return f"{len(load_articles(config.knowledge_base))} articles in {config.knowledge_base}"


def check_maildirs(config: Config) -> str:
    """Every Maildir under `maildirs:` exists and its messages can be marked seen."""
    from maildesk.intake.maildir import Maildir

    problems = []
    for entry in config.maildirs:
        try:
            maildir = Maildir(entry.path)
        except MaildeskError as exc:
            problems.append(f"maildir {entry.name}: {exc}")
            continue
        # Marking a message seen renames it from new/ (or cur/) into cur/.
        locked = [d for d in ("new", "cur") if not os.access(maildir.root / d, os.W_OK | os.X_OK)]
        if locked:
            folders = " and ".join(f"{entry.path}/{d}/" for d in locked)
            problems.append(f"maildir {entry.name}: cannot move messages out of {folders}")
    if problems:
        raise MaildeskError("; ".join(problems))
    return f"{len(config.maildirs)} readable" if config.maildirs else "none configured"


def check_spool(config: Config) -> str:
    """The MTA pipe finds the same spool as the daemon, and can write into it."""
    from pathlib import Path

    from maildesk.intake.spool import SpoolError, spool_folder
    from maildesk.service.spool_ingest import spool_backlog

    if config.source != "<defaults>":
        try:
            seen = Path(spool_folder(config.source))
        except SpoolError as exc:
            raise MaildeskError(f"spool: {exc}") from None
        if seen.resolve() != config.spool.resolve():  # the same folder, however named
            raise MaildeskError(
                f"spool: `maildesk ingest -` reads {seen} from {config.source}, the daemon "
                f"{config.spool}; write spool: as a plain path on one line, at the top level"
            )
    folder = config.spool
    if not folder.is_dir():
        # Not a failure: only a spool that exists has mail in it, and the MTA's user (not
        # necessarily this one) is who creates it.
        here = "" if os.access(folder.parent, os.W_OK | os.X_OK) else " not"
        return (
            f"{folder} is created by the first `maildesk ingest -` (this user may{here} "
            f"write in {folder.parent}; the MTA's user must)"
        )
    # A missing tmp/, new/ or cur/ is made at the first write, inside the spool folder.
    needed = [folder / d if (folder / d).is_dir() else folder for d in ("tmp", "new", "cur")]
    locked = sorted({str(p) for p in needed if not os.access(p, os.W_OK | os.X_OK)})
    if locked:
        raise MaildeskError(f"spool: cannot write into {' and '.join(locked)}")
    waiting, oldest = spool_backlog(folder)
    since = f", the oldest written {oldest:%Y-%m-%d %H:%M:%S} UTC" if oldest else ""
    return f"{folder}: {waiting} message(s) waiting{since}"


def check_agent_auth(config: Config) -> str:
    """Say how an agent's mail is known to be the agent's; fail when it cannot be."""
    tickets = config.tickets
    servers = ", ".join(tickets.trusted_authserv)
    vouching = (
        f"the topmost Authentication-Results headers from {servers} report SPF "
        "(smtp.mailfrom) or DKIM (header.d) pass for the agent's domain and no other SPF or "
        "DKIM verdict (those servers must stamp every message and remove headers with their "
        "name that arrive from outside)"
    )
    if tickets.require_agent_auth:
        return f"on: agents' mail counts only if {vouching}"
    if tickets.agent_verification == "none":
        return (
            "UNSAFE (agent_verification: none): mail from an agent's address is taken as the "
            "agent's, so anyone who writes that From can apply commands and reply to customers; "
            "set tickets.agent_verification: signed"
        )
    if tickets.reply_secret is None:
        raise MaildeskError(
            "tickets.reply_secret is not set, so no agent's reply can be verified and every "
            "agent mail is kept as an unverified note: put 64 random hex digits in a file only "
            "maildesk can read (e.g. `openssl rand -hex 32 > reply.key`) and set "
            "tickets.reply_secret: {file: reply.key}"
        )
    if len(tickets.reply_secret.read("reply secret")) < 16:
        raise MaildeskError("tickets.reply_secret is too short: use at least 32 random characters")
    also = f"; or when {vouching}" if servers else ""
    return (
        "signed: an agent's mail counts when it comes back through the reply address of a "
        f"notification sent to that agent about that ticket (signed with tickets.reply_secret)"
        f"{also}; anything else from an agent's address is kept as an unverified note"
    )


def sample_context(config: Config, template: str = "ack") -> dict:
    """Template variables for a made-up ticket, as `maildesk check` renders them."""
    from maildesk.decide.template_context import sample_context as for_template

    return for_template(config, template)


CHECKS: list[tuple[str, Callable[[Config], str]]] = [
    ("rules", check_rules),
    ("templates", check_templates),
    ("secrets", check_secrets),
    ("database", check_database),
    ("knowledge base", check_knowledge_base),
    ("maildirs", check_maildirs),
    ("spool", check_spool),
    ("agent authentication", check_agent_auth),
]
