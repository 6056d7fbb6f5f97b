"""Load YAML so that errors can point at the line of any key."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from maildesk.common.errors import Problem

Path_ = tuple[str | int, ...]


# How deep lines are noted while loading: sections and their entries (each rule's line
# is shown when it is explained). Deeper lines are found when a problem needs one.
OUTLINE_DEPTH = 2


@dataclass
class YamlDocument:
    """Plain data from a YAML file, and how to find the line of any key path in it."""

    file: str
    data: Any
    text: str | None = field(default=None, repr=False)
    outline: dict[Path_, int] = field(default_factory=dict, repr=False)  # path -> line

    def line_of(self, path: Iterable[str | int]) -> int | None:
        """The line (1-based) of `path`, or of its nearest parent that is in the file."""
        found = self._lines(tuple(path))
        return found[-1] if found else None

    def has(self, path: Iterable[str | int]) -> bool:
        """Is `path` written in the file (not only its parent)?"""
        parts = tuple(path)
        return len(self._lines(parts)) == len(parts) + 1

    def problem(self, path: Iterable[str | int], message: str) -> Problem:
        """A Problem located at `path` in this file."""
        return Problem(self.file, self.line_of(path), message)

    @cached_property
    def _root(self) -> yaml.Node | None:
        # Parsed again, as nodes, only when a problem deep in the file needs its line.
        return yaml.compose(self.text, Loader=_Loader) if self.text else None

    def _lines(self, path: Path_) -> list[int]:
        """The lines of the root and of each part of `path`, as far as the file has it."""
        if len(path) <= OUTLINE_DEPTH:
            prefixes = (path[:size] for size in range(len(path) + 1))
            return list(itertools.takewhile(bool, map(self.outline.get, prefixes)))
        node = self._root
        if node is None:
            return []
        lines = [node.start_mark.line + 1]
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            line, node = found
            lines.append(line)
        return lines


def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
    """(line, node) of key or index `part` in `node`; a key's line is where the key is."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and not isinstance(part, bool):
        if 0 <= part < len(node.value):
            item = node.value[part]
            return item.start_mark.line + 1, item
        return None
    if isinstance(node, yaml.MappingNode):
        loader = _Loader("")
        loader.flatten_mapping(node)
        found = None
        for key_node, value_node in node.value:  # the last of duplicate keys, as in the data
            if _key(loader, key_node, []) == part:
                found = key_node.start_mark.line + 1, value_node
        return found
    return None


# libyaml's parser when PyYAML has it: it reads a file of 1,000 rules ten times faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TEXT = "tag:yaml.org,2002:str"


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that rejects duplicate keys (a silent override is a misroute)."""


def _walk(loader: _Loader, node: yaml.Node, problems: list[str], outline: _Outline) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _key(loader, key_node, problems)
            if key in result:
                problems.append(
                    f"{key_node.start_mark.line + 1}:duplicate key '{key}' — "
                    "the later value would silently replace the earlier one; keep one"
                )
            inner = outline.enter(key, key_node)
            result[key] = _walk(loader, value_node, problems, inner)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _walk(loader, item, problems, outline.enter(index, item))
            for index, item in enumerate(node.value)
        ]
    return _scalar(loader, node, problems)


@dataclass
class _Outline:
    """Notes the lines of the paths _walk goes through, down to OUTLINE_DEPTH."""

    lines: dict[Path_, int]
    path: Path_ = ()

    def enter(self, part: Any, node: yaml.Node) -> _Outline:
        if len(self.path) >= OUTLINE_DEPTH:
            return self
        path = (*self.path, part)
        self.lines.setdefault(path, node.start_mark.line + 1)
        return _Outline(self.lines, path)


def _key(loader: _Loader, node: yaml.Node, problems: list[str]) -> Any:
    key = _scalar(loader, node, problems)
    if not isinstance(key, str | int | float | bool) and key is not None:
        key = str(key)
    return key


def _scalar(loader: _Loader, node: yaml.Node, problems: list[str]) -> Any:
    """A scalar's value; text that only looks like a date (2026-13-01) stays text."""
    if node.tag == _TEXT:  # most values: nothing to construct
        return node.value
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
    raw_problems: list[str] = []
    outline = {(): node.start_mark.line + 1}
    data = _walk(_Loader(""), node, raw_problems, _Outline(outline))
    problems = []
    for raw in raw_problems:
        line, _, message = raw.partition(":")
        problems.append(Problem(file, int(line), message))
    return YamlDocument(file, data, text, outline), problems


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
