"""`maildesk rate TOKEN`: record a rating from a signed rating link."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from maildesk.cli.common import CliContext, echo, pass_cli
from maildesk.common.errors import MaildeskError
from maildesk.decide.satisfaction import MAX_COMMENT, RatingReply, verify_token
from maildesk.store.queries import get_ticket
from maildesk.store.ticket_updates import record_rating


@click.command()
@click.argument("token")
@click.option("--comment", default="", help="The customer's comment, if the page asked for one.")
@pass_cli
def rate(cli: CliContext, token: str, comment: str) -> None:
    """Record the rating in a rating link's TOKEN (for the web page behind `link_base`)."""
    secret = cli.config().satisfaction.secret
    if secret is None:
        raise MaildeskError(
            "satisfaction.secret is not set in maildesk.yaml; rating links cannot be checked"
        )
    now = datetime.now(UTC)
    ref, rating = verify_token(token, secret.read("satisfaction secret"), now)
    desk = cli.desk()
    with desk.sessions() as session, session.begin():
        ticket = get_ticket(session, ref)
        if ticket.status not in ("resolved", "closed") or ticket.merged_into_id is not None:
            # As a rating by mail: a link of a ticket reopened since rates nothing.
            raise MaildeskError(f"{ref} is {ticket.status} now; its rating link no longer applies")
        reply = RatingReply(rating, comment.strip()[:MAX_COMMENT])
        record_rating(session, ticket.id, reply, now=now, actor=ticket.requester, via="by link")
    echo(f"{ref} rated {rating}")


COMMANDS = {c.name: c for c in [rate]}
