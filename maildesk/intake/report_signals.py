"""The marks of mail written by a mail system, shared by the parser and triage.

The parser reads a message's report in full (`delivery_status`: RFC 3464 fields, ARF,
Amazon SES JSON, flufl.bounce's scan of the text) only when `looks_like_report` says
so. It is a superset of what `triage.screen` may take for a bounce or a complaint
(triage's shapes use the same names and patterns from here), so every report triage
acts on was read within the parser's limits, and a person's mail costs no scan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from maildesk.intake.message import ParsedMessage

# Local parts that only machines send from (compared without plus tags, any case).
DAEMON_LOCALPARTS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mailer_daemon", "mail-daemon", "maildaemon", "mdaemon"}
)
POSTMASTER_LOCALPARTS = frozenset({"postmaster", "post_master", "post-master"})
# List managers write from `list-request@`, `list-owner@`, `owner-list@`, `list-bounces@`.
LIST_MANAGER = re.compile(r"(^owner-|-(request|owner|bounces?|errors|admin)$)", re.IGNORECASE)
# A From header naming a mail daemon without an address the parser keeps.
NAMED_DAEMON = re.compile(r"mailer[-_ ]?daemon|mail delivery (subsystem|system)", re.IGNORECASE)
# Searched in lower-cased text (see says_delivery_failed): re.IGNORECASE made each
# search of a non-ASCII subject about six times slower.
_FAILURE_WORDS = re.compile(
    r"undeliver|delivery (status|fail|notification|report|warning)|returned mail|failure notice"
    r"|mail delivery failed|could not be delivered|non.?delivery|delivery has failed"
    r"|unzustellbar|non remis|no entregado|non recapitato|niet bezorgd|не доставлен"
    r"|エラー|未送达|退信"
)
COMPLAINT_SUBJECT = re.compile(r"^\s*complaint about message from\b", re.IGNORECASE)


def says_delivery_failed(text: str) -> bool:
    """`text` (a subject, the start of a body) says, in one of several languages, that
    mail could not be delivered."""
    return _FAILURE_WORDS.search(text.lower()) is not None


STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
FEEDBACK_TYPE = "message/feedback-report"
# Anything in a header that names a mail system: every daemon and postmaster spelling
# above, a named daemon, or the null address `<>`.
_SYSTEM = re.compile(
    r"mail(er)?[-_ ]?daemon|mdaemon|post[-_]?master|mail delivery (subsystem|system)|<\s*>",
    re.IGNORECASE,
)
_SES_SENDER = "@sns.amazonaws.com"


def local_part(address: str) -> str:
    """`Post_Master+x@example.org` -> `post_master` (the part before any plus tag)."""
    local = address.strip().strip("<>").rpartition("@")[0] if "@" in address else address
    return local.strip().strip("<>").partition("+")[0].lower()


def looks_like_report(msg: ParsedMessage, headers: Mapping[str, str], report_part: bool) -> bool:
    """True when `msg` may be a bounce, delivery report or complaint: a report part
    (`report_part`), a mail system or list manager as sender or return path, an empty
    return path, X-Failed-Recipients, an SES notification, or a failure subject.

    `headers`: the first value of each header, by lower-case name.
    """
    if report_part or msg.content_type == "multipart/report":
        return True
    if "x-failed-recipients" in headers or "x-amz-sns-message-id" in headers:
        return True
    sender = msg.from_addr
    if sender.lower().endswith(_SES_SENDER) or LIST_MANAGER.search(local_part(sender)):
        return True
    return_path = headers.get("return-path")
    if return_path is not None and not return_path.strip().strip("<>").strip():
        return True
    if any(_SYSTEM.search(value) for value in (sender, headers.get("from", ""), return_path or "")):
        return True
    return says_delivery_failed(msg.subject) or bool(COMPLAINT_SUBJECT.match(msg.subject))
