"""Reading maildesk.yaml: every problem at once, each with file, line and a fix.

The sections themselves are the models in `common.config`; this turns a YAML file
into a validated Config, with relative paths made relative to the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from maildesk.common.config import Config
from maildesk.common.errors import ConfigError, Problem
from maildesk.common.yamlfile import YamlDocument, did_you_mean, load_yaml_file


def load_config(path: Path, *, missing_ok: bool = False) -> Config:
    """Load and validate maildesk.yaml; raise ConfigError listing every problem."""
    if missing_ok and not path.exists():
        return _resolve_paths(Config(), Path.cwd())
    doc, problems = load_yaml_file(path)
    if problems:
        raise ConfigError(str(path), problems)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [doc.problem((), "the file must be a mapping of sections")])
    try:
        config = Config.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise ConfigError(str(path), _problems_from(exc, doc)) from None
    return _resolve_paths(config, path.resolve().parent)


def _resolve_paths(config: Config, base: Path) -> Config:
    """Every relative path in the config (files, folders, SQLite URL) made relative to `base`."""
    config = _absolutize(config, base)
    url = config.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            database = config.database.model_copy(update={"url": f"sqlite:///{base / rel}"})
            config = config.model_copy(update={"database": database})
    return config


def _absolutize(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, list):
        return [_absolutize(v, base) for v in value]
    if isinstance(value, BaseModel):
        updates = {
            name: _absolutize(getattr(value, name), base) for name in type(value).model_fields
        }
        return value.model_copy(update=updates)
    return value


def _problems_from(exc: ValidationError, doc: YamlDocument) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            hint = did_you_mean(str(loc[-1]), allowed) or (
                f" — allowed keys here: {', '.join(sorted(allowed))}" if allowed else ""
            )
            message = f"unknown key '{key}'{hint}"
        elif any(str(part) in _SECRET_KEYS for part in loc):
            # Never echo what was written where a secret belongs: it may be the secret.
            how = "{env: NAME}, {file: PATH} or {command: CMD}"
            message = f"{key}: {error['msg']} (write {how})"
        else:
            message = f"{key}: {error['msg']} (got {_short(error.get('input'))})"
        problems.append(doc.problem(loc, message))
    return problems


_SECRET_KEYS = {"password", "oauth2_token", "token", "secret"}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
