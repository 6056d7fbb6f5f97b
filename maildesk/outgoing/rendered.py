"""What a notification template gives: subject, text and optional HTML.

Its own module so that composing a message (outgoing.compose) does not import Jinja:
the daemon's main process only composes, its render child renders.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None
