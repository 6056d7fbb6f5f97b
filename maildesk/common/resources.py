"""Files shipped with maildesk: default templates, example rules and config, demo mail."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_PACKAGE = Path(str(resources.files("maildesk")))
_REPO = _PACKAGE.parent  # a source checkout keeps templates/ and rules.yaml at the top


def _shipped(packaged: Path, in_repo: Path) -> Path:
    return packaged if packaged.exists() else in_repo


def default_templates_dir() -> Path:
    """The notification templates shipped with maildesk."""
    return _shipped(_PACKAGE / "templates", _REPO / "templates")


def example_rules() -> Path:
    """The example rules.yaml."""
    return _shipped(_PACKAGE / "examples" / "rules.yaml", _REPO / "rules.yaml")


def example_config() -> Path:
    """The documented example maildesk.yaml."""
    return _PACKAGE / "examples" / "maildesk.yaml"


def sample_messages() -> list[Path]:
    """The demo's sample emails, in the order they arrive."""
    return sorted((_PACKAGE / "samples").glob("*.eml"))
