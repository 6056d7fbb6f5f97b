"""maildesk.yaml's validation errors as problems with file, line and a hint.

An unknown key is answered with the keys allowed there (and the likely one it was
meant to be); whatever was written where a secret belongs is never echoed back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from maildesk.common.errors import Problem
from maildesk.common.secret_source import SECRET_KEYS
from maildesk.common.yamlfile import YamlDocument, did_you_mean


def problems_from(exc: ValidationError, doc: YamlDocument, root: type[BaseModel]) -> list[Problem]:
    """Each validation error of `root` read from `doc`, as a problem at its line."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1])
            hint = did_you_mean(str(loc[-1]), allowed) or (
                f" — allowed keys here: {', '.join(sorted(allowed))}" if allowed else ""
            )
            message = f"unknown key '{key}'{hint}"
        elif any(_secretive(part) for part in loc):
            # Never echo what was written where a secret belongs: it may be the secret.
            how = "{env: NAME}, {file: PATH} or {command: CMD}"
            message = f"{key}: {error['msg']} (write {how})"
        else:
            message = f"{key}: {error['msg']} (got {_short(error.get('input'))})"
        problems.append(doc.problem(loc, message))
    return problems


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return []
    return [name for name in model.model_fields if name != "source"]


def _secretive(part: Any) -> bool:
    """A key that holds a secret: `password`, `reply_secret`, `previous_reply_secret`..."""
    name = str(part)
    return name in SECRET_KEYS or name.endswith(tuple(f"_{key}" for key in SECRET_KEYS))


def _short(value: Any) -> str:
    """What was written, to show: never a mapping's or a list's values (a mailbox entry
    holds its password beside the key that is wrong)."""
    if isinstance(value, dict):
        return "a mapping of " + (", ".join(map(str, value)) or "nothing")
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
