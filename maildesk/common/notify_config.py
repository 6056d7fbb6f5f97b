"""The `notify:` section of maildesk.yaml: what files notifications carry (README:
Attachments). Its own module only to keep config.py short; `Config.notify` holds it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Programs and scripts a mail client may run with one click.
BLOCKED_TYPES = [
    ".exe", ".com", ".scr", ".pif", ".bat", ".cmd", ".msi", ".msp", ".cpl", ".jar",
    ".js", ".jse", ".vbs", ".vbe", ".wsf", ".wsh", ".ps1", ".hta", ".lnk", ".reg",
    "application/x-msdownload", "application/x-dosexec", "application/x-msi",
]  # fmt: skip


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Files one notification carries in all; the rest are listed with how to fetch them.
    attach_max_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    # Never mailed: file name endings (".exe") and content types ("application/x-msi").
    blocked_types: list[str] = BLOCKED_TYPES

    @field_validator("blocked_types")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value if v.strip()]
