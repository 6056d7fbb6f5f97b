"""Load YAML while remembering the line of every key, so errors can point at it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maildesk.common.errors import Problem

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """Plain data from a YAML file plus the line (1-based) of each key path."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line of `path`, or of its nearest parent that has one."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)

    def problem(self, path: Iterable[str | int], message: str) -> Problem:
        """A Problem located at `path` in this file."""
        return Problem(self.file, self.line_of(path), message)


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (a silent override is a misroute)."""


def _walk(
    loader: _Loader, node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[str]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, problems)
            if not isinstance(key, str | int | float | bool) and key is not None:
                key = str(key)
            if key in result:
                problems.append(
                    f"{key_node.start_mark.line + 1}:duplicate key '{key}' — "
                    "the later value would silently replace the earlier one; keep one"
                )
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _walk(loader, value_node, child, lines, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            items.append(_walk(loader, item, child, lines, problems))
        return items
    return _scalar(loader, node, problems)


def _scalar(loader: _Loader, node: yaml.Node, problems: list[str]) -> Any:
    """A scalar's value; text that only looks like a date (2026-13-01) stays text."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        problems.append(f"{node.start_mark.line + 1}:cannot read this value: {exc.problem}")
        return None
    except ValueError:
        # The validation that reads the value reports it with a better message.
        return node.value


def load_yaml(text: str, file: str) -> tuple[YamlDocument, list[Problem]]:
    """Parse `text`; return the document and any syntax or duplicate-key problems."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc)
        return YamlDocument(file, None), [
            Problem(file, line, f"YAML syntax error: {reason} — check indentation and quoting")
        ]
    if node is None:
        return YamlDocument(file, {}), []
    lines: dict[Path_, int] = {}
    raw_problems: list[str] = []
    data = _walk(_Loader(""), node, (), lines, raw_problems)
    problems = []
    for raw in raw_problems:
        line, _, message = raw.partition(":")
        problems.append(Problem(file, int(line), message))
    return YamlDocument(file, data, lines), problems


def load_yaml_file(path: Path) -> tuple[YamlDocument, list[Problem]]:
    """Read and parse a YAML file; a missing file is a single problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return YamlDocument(str(path), None), [Problem(str(path), None, "file not found")]
    except (OSError, UnicodeDecodeError) as exc:
        return YamlDocument(str(path), None), [Problem(str(path), None, f"cannot read: {exc}")]
    return load_yaml(text, str(path))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' — did you mean 'x'?' for the closest choice, or '' when none is close."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" — did you mean '{match[0]}'?" if match else ""
