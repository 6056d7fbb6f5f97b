"""Jinja2 templates for notifications: admin copies override the shipped defaults."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from maildesk.common.errors import MaildeskError
from maildesk.common.resources import default_templates_dir
from maildesk.outgoing.rendered import Rendered
from maildesk.outgoing.template_files import template_dirs, template_names

log = logging.getLogger(__name__)


class TemplateError(MaildeskError):
    """A notification template is missing or fails to render."""


class Renderer:
    """Renders `<lang>/<name>.txt.j2` (subject and text) and `<lang>/<name>.html.j2`.

    An admin folder overrides the shipped templates file by file. The HTML part comes
    from the same folder as the text part, so overriding only the text never leaves
    the shipped HTML (which most mail clients show) in place.
    """

    def __init__(self, override_dir: Path | None = None, default_language: str = "en"):
        shipped = default_templates_dir()
        self.dirs = template_dirs(override_dir)
        self.default_language = default_language
        self.env = _environment(self.dirs)
        # Used when an admin template fails at send time: the notification still goes out.
        self.shipped_env = _environment([shipped]) if len(self.dirs) > 1 else None

    def template_names(self) -> list[str]:
        """Every `<lang>/<name>` that has a text template."""
        return template_names(self.dirs)

    def languages(self) -> list[str]:
        """The languages that have at least one template."""
        return sorted({n.partition("/")[0] for n in self.template_names()})

    def render(self, name: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render `name` in `language`; a broken admin copy falls back to the shipped one."""
        rendered, problem = self.render_or_fall_back(name, language, context)
        if problem:
            log.error("%s", problem)
        return rendered

    def render_or_fall_back(
        self, name: str, language: str, context: dict[str, Any]
    ) -> tuple[Rendered, str | None]:
        """Like `render`, returning (instead of logging) why the shipped copy was used."""
        try:
            return self.render_strict(name, language, context), None
        except TemplateError as exc:
            if self.shipped_env is None or not _ships(self.shipped_env, name):
                raise
            shipped = _render(self.shipped_env, name, language, self.default_language, context)
            return shipped, f"{exc}; sending the shipped template instead"

    def render_strict(self, name: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render `name` in `language` (default language if missing); errors raise."""
        return _render(self.env, name, language, self.default_language, context)

    def source_of(self, name: str, language: str) -> Path | None:
        """The file the text template `<language>/<name>` is read from."""
        try:
            return Path(self.env.get_template(f"{language}/{name}.txt.j2").filename or "")
        except jinja2.TemplateNotFound:
            return None


def _environment(dirs: list[Path]) -> jinja2.Environment:
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["datetime"] = _format_datetime
    return env


def _format_datetime(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """Template filter; queued notifications carry times as ISO strings (JSON)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime(fmt) if value else ""


def _ships(env: jinja2.Environment, name: str) -> bool:
    return any(n.endswith(f"/{name}.txt.j2") for n in env.list_templates())


def _load(env: jinja2.Environment, name: str) -> jinja2.Template | None:
    """Template `name`, or None when there is none; a syntax error raises TemplateError.
    (Each lookup checks the file for changes: the render child picks up an admin's edit.)"""
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound:
        return None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(_describe(exc, name, exc.lineno)) from None


def _render(
    env: jinja2.Environment, name: str, language: str, default: str, context: dict[str, Any]
) -> Rendered:
    lang = language
    text_tmpl = _load(env, f"{language}/{name}.txt.j2")
    if text_tmpl is None and language != default:
        lang = default
        text_tmpl = _load(env, f"{default}/{name}.txt.j2")
    if text_tmpl is None:
        where = ", ".join(str(p) for p in _search_path(env))
        raise TemplateError(f"template {lang}/{name}.txt.j2 not found in {where}")
    for block in ("subject", "body"):
        if block not in text_tmpl.blocks:
            raise TemplateError(f"{text_tmpl.filename}: needs a {{% block {block} %}}")
    subject = _run(env, text_tmpl, context, "subject")
    text = _run(env, text_tmpl, context, "body")
    html = None
    html_tmpl = _load(env, f"{lang}/{name}.html.j2")
    # Only the HTML that sits next to the text template belongs to it.
    if html_tmpl is not None and (
        Path(html_tmpl.filename or "").parent == Path(text_tmpl.filename or "").parent
    ):
        html = _run(env, html_tmpl, context, None)
    return Rendered(" ".join(subject.split()), text, html)


def _run(
    env: jinja2.Environment, tmpl: jinja2.Template, context: dict[str, Any], block: str | None
) -> str:
    """Render one block (or the whole template), reporting errors with file and line."""
    try:
        if block is None:
            return tmpl.render(context)
        return "".join(tmpl.blocks[block](tmpl.new_context(dict(context))))
    except Exception as exc:
        line = _template_line(env, exc)
        message = exc.message if isinstance(exc, jinja2.TemplateError) else None
        raise TemplateError(
            _describe(exc, tmpl.filename or tmpl.name or "?", line, message)
        ) from None


def _template_line(env: jinja2.Environment, exc: BaseException) -> int | None:
    """The template line an exception was raised at, from Jinja's rewritten traceback."""
    lineno = getattr(exc, "lineno", None)
    if lineno:
        return lineno
    try:
        # Jinja maps frames of compiled template code back to template lines.
        env.handle_exception()
    except BaseException as rewritten:  # handle_exception always raises
        tb = rewritten.__traceback__
    else:  # pragma: no cover - handle_exception never returns
        return None
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _search_path(env: jinja2.Environment) -> list[str]:
    loader = env.loader
    return list(getattr(loader, "searchpath", [])) or ["(no template folders)"]


def _describe(exc: Exception, name: str, line: int | None, message: str | None = None) -> str:
    where = f"{getattr(exc, 'filename', None) or name}" + (f":{line}" if line else "")
    text = message or str(exc) or type(exc).__name__
    return f"{where}: {text}"
