"""The models of a rule's `when`: which fields and operators exist, checked at load.

A `when` maps fields to one operator each (`subject: {contains: urgent}`), or holds
a combinator (`all`, `any`, `not`). Regexes are compiled here once, so an invalid
one is reported with the rest; when.py turns a valid `when` into condition nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import re2
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationInfo,
    model_validator,
)

from maildesk.common.yamlfile import did_you_mean
from maildesk.rules.fields import (
    Flag,
    Spec,
    Texts,
    as_list,
    as_text,
    attributes_of,
    check_reference,
    holder,
    names_of,
    parse_size,
)
from maildesk.rules.problems import describe, problem, problem_at
from maildesk.rules.text_match import Regex, compile_regex, regex_error

TEXT_OPERATORS = ("is", "in", "contains", "contains_word", "starts_with", "ends_with", "matches")
ADDRESS_OPERATORS = (*TEXT_OPERATORS, "domain")
SIZE_OPERATORS = ("greater_than", "less_than")
_ADDRESS_FIELDS = "from, to, cc, recipient, reply_to"


def _regexes(value: Any, info: ValidationInfo) -> list[Regex]:
    """`matches:` patterns, compiled once (with `case_sensitive`, validated before them)."""
    texts = as_list(value)
    if not texts:
        raise problem("'matches' is an empty list; give at least one value")
    case_sensitive = info.data.get("case_sensitive") is True
    regexes = []
    for index, item in enumerate(texts):
        text = as_text(item, "'matches'")
        try:
            regexes.append(Regex(text, compile_regex(text, case_sensitive)))
        except re2.error as exc:
            text = f"invalid regex {text!r}: {regex_error(exc)}"
            hint = " — RE2 syntax: no backreferences or lookaround"
            raise problem_at((index,), text, hint) from None
    return regexes


class _Operators(Spec):
    """One operator (and modifiers) applied to a field's values."""

    OPERATORS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def unknown_key(cls, key: str, holder: str, raw: Any) -> tuple[str, str]:
        subject = cls.subject(holder, raw)
        hint = did_you_mean(key, cls.OPERATORS) or f" — use one of {', '.join(cls.OPERATORS)}"
        if key == "domain":
            hint = f" — 'domain' works on address fields: {_ADDRESS_FIELDS}"
        elif key == "name":
            hint = f" — 'name' is only for header conditions, not '{holder}'"
        return f"unknown operator '{key}' for '{subject}'", hint

    @classmethod
    def subject(cls, holder: str, raw: Any) -> str:
        """How problems name the condition: its field."""
        return holder

    def operator(self) -> tuple[str, Any]:
        """The one operator given, and its value."""
        key = self._given()[0]
        return key, self.get(key)

    def _given(self) -> list[str]:
        given = self.model_fields_set
        attributes = attributes_of(type(self))
        return [key for key in self.OPERATORS if attributes[key] in given]

    @model_validator(mode="after")
    def _one_operator(self, info: ValidationInfo) -> _Operators:
        given = self._given()
        if len(given) == 1:
            return self
        subject = self.subject(holder(info), self)
        if not given:
            hint = f" — one of {', '.join(self.OPERATORS)}"
            raise problem(f"'{subject}' needs an operator", hint)
        raise problem(
            f"'{subject}' has several operators ({', '.join(given)})",
            " — give one per condition and combine them with all:/any:",
        )


class TextSpec(_Operators):
    OPERATORS: ClassVar = TEXT_OPERATORS

    case_sensitive: Flag = False  # first: `matches` is compiled with it
    is_: Texts | None = Field(None, alias="is")
    in_: Texts | None = Field(None, alias="in")
    contains: Texts | None = None
    contains_word: Texts | None = None
    starts_with: Texts | None = None
    ends_with: Texts | None = None
    matches: Annotated[list[Regex], PlainValidator(_regexes)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _is_one_in_many(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if isinstance(data.get("is"), list):
                hint = " — use in: [a, b] to accept any of several"
                raise problem_at(("is",), "'is' takes one value", hint)
            if "in" in data and not isinstance(data["in"], list):
                value = data["in"]
                hint = f" — write in: [{value}] or is: {value}"
                raise problem_at(("in",), "'in' takes a list of values", hint)
        return data


class AddressSpec(TextSpec):
    OPERATORS: ClassVar = ADDRESS_OPERATORS

    domain: Texts | None = None


_NO_NAME = (
    "'header' needs the header's name",
    " — e.g. header: {name: X-Priority, in: ['1', '2']}",
)


def _header_name(name: str) -> str:
    if not name.strip():
        raise problem(*_NO_NAME)
    return name


class HeaderSpec(TextSpec):
    OPERATORS: ClassVar = (*TEXT_OPERATORS, "exists")
    MISSING: ClassVar = {"name": _NO_NAME}

    name: Annotated[str, AfterValidator(_header_name)]
    exists: Flag | None = None

    @classmethod
    def subject(cls, holder: str, raw: Any) -> str:
        name = raw.get("name") if isinstance(raw, dict) else getattr(raw, "name", None)
        return f"header {name}"


@dataclass(frozen=True)
class Size:
    """A size as written (for explanations) and in bytes."""

    text: str
    bytes: int


def _size(value: Any) -> Size:
    limit = parse_size(value)
    if limit is None:
        raise problem(
            f"size {describe(value)} is not a size", " — e.g. 500KB, 10MB or 12345 (bytes)"
        )
    return Size(str(value), limit)


class SizeSpec(_Operators):
    OPERATORS: ClassVar = SIZE_OPERATORS

    greater_than: Annotated[Size, PlainValidator(_size)] | None = None
    less_than: Annotated[Size, PlainValidator(_size)] | None = None


@dataclass(frozen=True)
class OpenHours:
    """`business_hours:` resolved: the calendar's name and whether it must be open."""

    calendar: str
    open: bool


def _business_hours(value: Any, info: ValidationInfo) -> OpenHours:
    """`business_hours: true|false` on the default calendar, or a calendar's name."""
    names = names_of(info)
    if isinstance(value, bool):
        if names.default_calendar is None:
            raise problem(
                "'business_hours' needs a calendar",
                " — define calendars: and set default: {calendar: <name>}, or name one here",
            )
        return OpenHours(names.default_calendar, value)
    if not isinstance(value, str):
        raise problem(
            f"'business_hours' takes true, false or a calendar's name, not {describe(value)}"
        )
    return OpenHours(check_reference(value, names.calendars, "calendar", "defined"), True)


def _conditions(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, list) or not value:
        key = holder(info)
        raise problem(f"'{key}' needs a non-empty list of conditions, not {describe(value)}")
    return value


class WhenSpec(Spec):
    """Conditions that must all hold, in the order written."""

    from_: AddressSpec | None = Field(None, alias="from")
    from_name: TextSpec | None = None
    to: AddressSpec | None = None
    cc: AddressSpec | None = None
    recipient: AddressSpec | None = None
    reply_to: AddressSpec | None = None
    subject: TextSpec | None = None
    body: TextSpec | None = None
    attachment_type: TextSpec | None = None
    attachment_name: TextSpec | None = None
    mailbox: TextSpec | None = None
    mailbox_queue: TextSpec | None = None
    queue: TextSpec | None = None
    language: TextSpec | None = None
    has_attachment: Flag | None = None
    sender_is_agent: Flag | None = None
    header: HeaderSpec | None = None
    size: SizeSpec | None = None
    business_hours: Annotated[OpenHours, PlainValidator(_business_hours)] | None = None
    all_: Annotated[list[WhenSpec], BeforeValidator(_conditions)] | None = Field(None, alias="all")
    any_: Annotated[list[WhenSpec], BeforeValidator(_conditions)] | None = Field(None, alias="any")
    not_: WhenSpec | None = Field(None, alias="not")

    @classmethod
    def unknown_key(cls, key: str, holder: str, raw: Any) -> tuple[str, str]:
        keys = cls.keys()
        return f"unknown condition '{key}'", did_you_mean(key, keys) or (
            f" — conditions are: {', '.join(keys)}"
        )

    @model_validator(mode="before")
    @classmethod
    def _some_condition(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and not data:
            raise problem(
                f"'{holder(info) or 'when'}' has no conditions",
                " — add at least one, e.g. subject: {contains: urgent}",
            )
        return data
