"""Jinja2 templates for notifications: admin copies override the shipped defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from maildesk.errors import MaildeskError
from maildesk.resources import default_templates_dir


class TemplateError(MaildeskError):
    """A notification template is missing or fails to render."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class Renderer:
    """Renders `<lang>/<name>.txt.j2` (subject and text) and `<lang>/<name>.html.j2`."""

    def __init__(self, override_dir: Path | None = None, default_language: str = "en"):
        dirs = [d for d in (override_dir, default_templates_dir()) if d and d.is_dir()]
        self.dirs = dirs
        self.default_language = default_language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def template_names(self) -> list[str]:
        """Every `<lang>/<name>` that has a text template."""
        names = {
            n.removesuffix(".txt.j2")
            for n in self.env.list_templates()
            if n.endswith(".txt.j2") and "/" in n and not n.rsplit("/", 1)[1].startswith("_")
        }
        return sorted(names)

    def render(self, name: str, language: str, context: dict[str, Any]) -> Rendered:
        """Render template `name` in `language`, falling back to the default language."""
        lang = language if self._exists(f"{language}/{name}.txt.j2") else self.default_language
        text_name = f"{lang}/{name}.txt.j2"
        try:
            text_tmpl = self.env.get_template(text_name)
            ctx = text_tmpl.new_context(dict(context))
            subject = "".join(text_tmpl.blocks["subject"](ctx)).strip()
            text = "".join(text_tmpl.blocks["body"](text_tmpl.new_context(dict(context))))
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found in {self._where()}") from None
        except KeyError as exc:
            raise TemplateError(f"{text_name}: needs a {{% block {exc.args[0]} %}}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(_describe(exc, text_name)) from None
        html = None
        html_name = f"{lang}/{name}.html.j2"
        if self._exists(html_name):
            try:
                html = self.env.get_template(html_name).render(context)
            except jinja2.TemplateError as exc:
                raise TemplateError(_describe(exc, html_name)) from None
        return Rendered(" ".join(subject.split()), text, html)

    def _exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        return True

    def _where(self) -> str:
        return ", ".join(str(d) for d in self.dirs) or "(no template folders)"


def _describe(exc: jinja2.TemplateError, name: str) -> str:
    line = getattr(exc, "lineno", None)
    where = f"{getattr(exc, 'filename', None) or name}" + (f":{line}" if line else "")
    return f"{where}: {exc.message or exc}"
