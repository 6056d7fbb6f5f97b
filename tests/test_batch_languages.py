"""A batch tells the language of the mail that may open a ticket, in one call, and of no
other: replies to open tickets keep theirs, and those that open one after all still
get a language when decided."""

from __future__ import annotations

from maildesk.common.config import TicketsConfig
from maildesk.common.domain import Status
from maildesk.decide.batch_state import BatchState
from maildesk.decide.inbound import decide
from maildesk.intake.parse import parse_message
from maildesk.intake.raw_mail import IncomingMail
from maildesk.service.batch_entry import BatchEntry, batch_languages
from maildesk.service.entry_screening import screen_entry
from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail
from tests.decidekit import CUSTOMER, NOW, OWN, context, ticket
from tests.rulekit import message

RUSSIAN = "Здравствуйте, у меня не работает принтер уже третий день подряд, помогите"


def _entry(raw: bytes) -> BatchEntry:
    entry = BatchEntry(IncomingMail.from_bytes(raw), SourceInfo(), parse_message(raw))
    screen_entry(entry, TicketsConfig(), OWN, None, NOW)
    return entry


def _state(*tickets) -> BatchState:
    state = BatchState(prefix="MD")
    for each in tickets:
        state.add_ticket(each)
    return state


def test_only_mail_that_may_open_a_ticket_has_its_language_told():
    state = _state(ticket(), ticket(id=8, ref="MD-8", status=Status.CLOSED))
    new = _entry(make_mail(subject="Принтер", body=RUSSIAN))
    reply = _entry(make_mail(subject="Re: [MD-7] Printer", body=RUSSIAN))
    to_closed = _entry(make_mail(subject="Re: [MD-8] Printer", body=RUSSIAN))
    stranger = _entry(make_mail(sender="x@elsewhere.example", subject="[MD-7]", body=RUSSIAN))
    languages = batch_languages([new, reply, to_closed, stranger], state)
    assert languages == {
        new.parsed.dedup_key: "ru",
        to_closed.parsed.dedup_key: "ru",  # a reply to a closed ticket opens a new one
        stranger.parsed.dedup_key: "ru",  # naming a ticket one is not on opens a new one
    }
    assert reply.parsed.from_addr == CUSTOMER


def test_a_reply_left_out_still_gets_its_language_when_it_opens_a_ticket():
    """Deciding tells the language of a new ticket's mail the batch did not tell."""
    msg = message(subject="Re: [MD-7] Принтер", body=RUSSIAN)
    decision = decide(msg, None, context(msg, languages={}))
    assert decision.new_ticket is not None and decision.new_ticket.language == "ru"
