"""The models of rules.yaml as a whole: default route, queues, agents and rules.

`validate_document` checks a parsed file in one pass and reports every problem at
once (pydantic's errors with their lines, plus names used twice); load.py compiles
a valid document into a RuleSet.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from maildesk.common.errors import Problem, RulesError
from maildesk.common.yamlfile import Path_, YamlDocument, did_you_mean
from maildesk.rules.calendars import CalendarName, CalendarSpec, SlaSpec
from maildesk.rules.condition_spec import WhenSpec
from maildesk.rules.definitions import ALWAYS_OPEN
from maildesk.rules.fields import (
    Address,
    Addresses,
    AgentRef,
    Assignee,
    CalendarRef,
    EscalationRef,
    Flag,
    Names,
    PolicyOrNone,
    PriorityName,
    QueueRef,
    Recipients,
    Spec,
    TemplateOrNone,
    Texts,
    none_as_empty,
)
from maildesk.rules.problems import problem, problems_from, raw_at, scope_label

SUPPORTED_VERSIONS = (1,)

Language = Annotated[str, AfterValidator(str.lower)]


class _Actions(Spec):
    """What the default route and a rule's `then` may set, in the order written."""

    EMPTY_OK: ClassVar = frozenset({"assignee", "sla", "auto_reply"})

    queue: QueueRef | None = None
    priority: PriorityName | None = None
    assignee: Assignee = None
    tags: Texts | None = None
    sla: PolicyOrNone = None
    auto_reply: TemplateOrNone = None
    language: Language | None = None

    @classmethod
    def unknown_key(cls, key: str, holder: str, raw: Any) -> tuple[str, str]:
        keys = cls.keys()
        return f"unknown key '{key}'", did_you_mean(key, keys) or (
            f" — actions are: {', '.join(keys)}"
        )


class ThenSpec(_Actions):
    watchers: Recipients | None = None
    cc: Addresses | None = None
    notify: Recipients | None = None
    spam: Flag | None = None
    ignore: Flag | None = None

    @model_validator(mode="before")
    @classmethod
    def _some_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data:
            raise problem(
                "'then' has no actions",
                f" — e.g. queue:, priority:, tags: ({', '.join(cls.keys())})",
            )
        return data


class DefaultSpec(_Actions):
    """The default route: every new message starts from it."""

    MISSING: ClassVar = {
        key: (f"missing '{key}'", " — the default route needs a queue and a priority")
        for key in ("queue", "priority")
    }

    queue: QueueRef  # required here
    priority: PriorityName
    calendar: CalendarRef | None = None


_NO_NAME = ("missing 'name'", " — every rule needs a unique name, e.g. name: vip-customers")


def _rule_name(name: str) -> str:
    if not name.strip():
        raise problem(*_NO_NAME)
    return name.strip()


class RuleSpec(Spec):
    WHAT: ClassVar = "a rule"
    MISSING: ClassVar = {
        "name": _NO_NAME,
        "when": ("missing 'when'", " — e.g. when: {subject: {contains: invoice}}"),
        "then": ("missing 'then'", " — e.g. then: {queue: billing}"),
    }

    name: Annotated[str, AfterValidator(_rule_name)]
    description: str = ""
    when: WhenSpec
    then: ThenSpec
    stop: Flag = False
    follow_ups: Flag = False
    enabled: Flag = True


class AgentSpec(Spec):
    WHAT: ClassVar = "an agent"
    MISSING: ClassVar = {"address": ("missing 'address'", " — every agent needs an email address")}

    address: Address
    name: str | None = None
    level: str = "L1"
    queues: list[QueueRef] = Field(default_factory=list)
    away: Flag = False


class QueueSpec(Spec):
    WHAT: ClassVar = "a queue"
    agents: list[AgentRef] = Field(default_factory=list)
    escalation: EscalationRef | None = None
    language: Language | None = None
    participants: Literal["proof", "same_domain", "list"] = "proof"


def _version(value: Any) -> int:
    if isinstance(value, bool) or value not in SUPPORTED_VERSIONS:
        raise problem(
            f"unsupported version {value!r}",
            f" — this maildesk reads version {', '.join(map(str, SUPPORTED_VERSIONS))}",
        )
    return int(value)


def _some_queue(queues: dict[str, QueueSpec]) -> dict[str, QueueSpec]:
    if not queues:
        raise problem("no queues defined", " — add at least the default route's queue")
    return queues


_NO_DEFAULT = (
    "no default route",
    " — add default: {queue: <queue>, priority: normal}, so every message gets a queue",
)


def _some_default(value: Any) -> Any:
    if not value:
        raise problem(*_NO_DEFAULT)
    return value


def _rule_list(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise problem("'rules' must be a list (each rule starts with '- name:')")
    return value


class RulesFile(Spec):
    """Everything in rules.yaml."""

    MISSING: ClassVar = {
        "version": ("missing 'version'", " — add version: 1 at the top"),
        "default": _NO_DEFAULT,
    }
    EMPTY_OK: ClassVar = frozenset({"default", "calendars", "sla", "queues", "agents", "rules"})

    version: Annotated[int, PlainValidator(_version)]
    default: Annotated[DefaultSpec, BeforeValidator(_some_default)]
    calendars: Annotated[dict[CalendarName, CalendarSpec], BeforeValidator(none_as_empty)] = Field(
        default_factory=dict
    )
    sla: SlaSpec | None = None
    queues: Annotated[
        dict[str, Annotated[QueueSpec, BeforeValidator(none_as_empty)]],
        BeforeValidator(none_as_empty),
        AfterValidator(_some_queue),
    ] = Field(default_factory=dict, validate_default=True)
    agents: Annotated[dict[str, AgentSpec], BeforeValidator(none_as_empty)] = Field(
        default_factory=dict
    )
    rules: Annotated[list[RuleSpec], BeforeValidator(_rule_list)] = Field(default_factory=list)


def validate_document(doc: YamlDocument) -> RulesFile:
    """The file as a RulesFile, or RulesError listing every problem in it."""
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise RulesError(doc.file, [doc.problem((), "rules.yaml must be a mapping of sections")])
    problems = duplicates(doc)
    try:
        spec = RulesFile.model_validate(data, context=read_names(data))
    except ValidationError as exc:
        problems.extend(problems_from(exc, doc, RulesFile))
    if problems:
        raise RulesError(doc.file, sorted(problems, key=lambda p: p.line or 0))
    return spec


def read_names(data: dict[Any, Any]) -> Names:
    """The names the file defines, however broken their definitions."""
    agents = raw_at(data, ("agents",))
    agents = agents if isinstance(agents, dict) else {}
    calendar = raw_at(data, ("default", "calendar"))
    return Names(
        queues=_keys(raw_at(data, ("queues",))),
        agents=_keys(agents),
        agent_addresses=frozenset(a for a in map(_address_of, agents.values()) if a),
        calendars=tuple(sorted({ALWAYS_OPEN, *_keys(raw_at(data, ("calendars",)))})),
        policies=_keys(raw_at(data, ("sla", "policies"))),
        default_calendar=calendar if isinstance(calendar, str) else None,
    )


def _keys(section: Any) -> tuple[str, ...]:
    return tuple(sorted(str(key) for key in section)) if isinstance(section, dict) else ()


def _address_of(agent: Any) -> str | None:
    address = agent.get("address") if isinstance(agent, dict) else None
    return address.strip().lower() if isinstance(address, str) else None


def duplicates(doc: YamlDocument) -> list[Problem]:
    """Rule names and agent addresses given twice (each must name one thing)."""
    found: list[tuple[Path_, str, str]] = []
    names: dict[str, int] = {}
    rules = raw_at(doc.data, ("rules",))
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        name = rule.get("name") if isinstance(rule, dict) else None
        if not isinstance(name, str):
            continue
        if name.strip() in names:
            text = f"duplicate rule name (also rule #{names[name.strip()]})"
            hint = " — names must be unique: tickets record the rules that fired by name"
            found.append((("rules", index, "name"), text, hint))
        else:
            names[name.strip()] = index + 1
    owners: dict[str, str] = {}
    agents = raw_at(doc.data, ("agents",))
    for key, agent in (agents if isinstance(agents, dict) else {}).items():
        address = _address_of(agent)
        if address in owners:
            found.append(
                (
                    ("agents", key, "address"),
                    f"address {address} is also agent '{owners[address]}'",
                    "",
                )
            )
        elif address:
            owners[address] = str(key)
    return [
        doc.problem(path, f"{text} in {scope_label(path, doc.data)}{hint}")
        for path, text, hint in found
    ]
