"""Stage 4, decide: a parsed message and the ticket's current state in, a Decision out.

Pure: no database, no network, no clock but the one passed in. `inbound.decide`
(new ticket, follow-up, agent mail and its commands, lifecycle, SLA, ratings), the
one place a ticket changes (`ticket_changes`), who is told (`audience`) and how each
notification threads (`notices`). May import: common, intake, triage, rules.
"""
