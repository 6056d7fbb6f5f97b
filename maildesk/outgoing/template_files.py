"""Which notification templates exist, from the files alone (no Jinja): what
`maildesk check` and the daemon's rules reload ask before they accept a rules.yaml."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from maildesk.common.resources import default_templates_dir


def template_dirs(override_dir: Path | None) -> list[Path]:
    """The admin's folder (when it exists and is not the shipped one), then the shipped."""
    shipped = default_templates_dir()
    override = override_dir if override_dir and override_dir.is_dir() else None
    if override is not None and override.resolve() == shipped.resolve():
        override = None
    return [d for d in (override, shipped) if d and d.is_dir()]


def template_names(dirs: Sequence[Path]) -> list[str]:
    """Every `<lang>/<name>` with a text template (`_name` files are partials)."""
    names = {
        f"{path.parent.name}/{path.name.removesuffix('.txt.j2')}"
        for folder in dirs
        for path in folder.glob("*/*.txt.j2")
        if not path.name.startswith("_")
    }
    return sorted(names)
