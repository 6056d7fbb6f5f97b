"""The Authentication-Results headers your own mail servers added (RFC 8601), read by authres.

Which headers count: walking down from the top of the message, the first
Authentication-Results header starts the block, and the block goes on while the headers
right below it are Authentication-Results from a trusted authserv-id. Anything else ends
it: a Received header (another hop), any other header, or a server we do not trust.
Headers above the block (Return-Path, Delivered-To, the Received of an internal relay)
are stepped over; a sender's own header always sits below the receiving MX's.
"""

from __future__ import annotations

from dataclasses import dataclass

import authres
import authres.core

HEADER = "authentication-results"
# A mail server's verdict is a few hundred characters; authres slows down with length.
MAX_HEADER_CHARS = 10_000
_UNREADABLE = (authres.core.AuthResError, RecursionError, ValueError)


@dataclass(frozen=True)
class Result:
    """One method's verdict, e.g. `dkim=pass header.d=example.com` from `mx.example.com`."""

    authserv_id: str
    method: str
    result: str
    properties: tuple[tuple[str, str], ...]  # ("header.d", "example.com"), in order

    def values(self, name: str) -> list[str]:
        """Every value of property `name` ("smtp.mailfrom", "header.d")."""
        return [value for key, value in self.properties if key == name]


@dataclass(frozen=True)
class TopBlock:
    """The results of the trusted block, or why there is no block to go by."""

    results: list[Result]
    problem: str = ""  # "" when the block can be used


@dataclass(frozen=True)
class _Header:
    authserv_id: str | None  # None: not even the server's name could be read
    results: list[Result] | None  # None: the header could not be read
    error: str = ""


class _StrictHeader(authres.core.AuthenticationResultsHeader):
    """authres skips parts it cannot read unless strict; a header is read whole or not at all."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.strict = True


def top_block(headers: list[tuple[str, str]], trusted: frozenset[str]) -> TopBlock:
    """The results in the topmost Authentication-Results headers from `trusted` servers."""
    names = [name.strip().lower() for name, _ in headers]
    if HEADER not in names:
        return TopBlock([], "it has no Authentication-Results header")
    wanted = ", ".join(sorted(trusted))
    results: list[Result] = []
    start = names.index(HEADER)
    below = zip(names[start:], (value for _, value in headers[start:]), strict=True)
    for position, (name, value) in enumerate(below):
        if name != HEADER:
            break
        header = read_header(value)
        if header.authserv_id is None:
            which = (
                "its topmost Authentication-Results header"
                if position == 0
                else "an Authentication-Results header right below your mail server's"
            )
            return TopBlock([], f"{which} cannot be read ({header.error})")
        if header.authserv_id not in trusted:
            if position == 0:
                problem = (
                    f"its topmost Authentication-Results header comes from "
                    f"{header.authserv_id}, not from your mail server ({wanted})"
                )
                return TopBlock([], problem)
            break
        if header.results is None:
            return TopBlock(
                [],
                f"the Authentication-Results header from {header.authserv_id} cannot be read "
                f"({header.error})",
            )
        results += header.results
    return TopBlock(results)


def read_header(value: str) -> _Header:
    """One header value parsed; if it cannot be, at least the name of the server that wrote it."""
    try:
        parsed = _parse(value)
        return _Header(parsed.authserv_id, _results(parsed))
    except _UNREADABLE as exc:
        error = _describe(exc)
    try:
        # The part before the first ";" is the server's name (plus a version), unless that
        # ";" sits in a comment or quotes; then this part does not parse and we stay unsure.
        authserv_id = _parse(value.split(";", 1)[0] + "; none").authserv_id
    except _UNREADABLE:
        authserv_id = None
    return _Header(authserv_id, None, error)


def _parse(value: str) -> authres.core.AuthenticationResultsHeader:
    if len(value) > MAX_HEADER_CHARS:
        raise ValueError(f"longer than {MAX_HEADER_CHARS} characters")
    return _StrictHeader.parse_value(authres.core_features(), value)


def _results(header: authres.core.AuthenticationResultsHeader) -> list[Result]:
    return [
        Result(
            header.authserv_id,
            str(result.method).lower(),
            str(result.result).lower(),
            tuple(
                (f"{prop.type}.{prop.name}".lower(), str(prop.value)) for prop in result.properties
            ),
        )
        for result in header.results
    ]


def _describe(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "comments nested too deep"
    message = getattr(exc, "message", None) or str(exc)
    return " ".join(str(message).split())[:200]
