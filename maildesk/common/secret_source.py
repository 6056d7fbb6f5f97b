"""Secrets in maildesk.yaml: where each comes from (an environment variable, a file or a
command) and reading it, with the value remembered so logs show *** in its place.

The settings never hold a secret's value, only its source (`Secret`); the value is read
when it is needed, and errors name the source, never the value.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from maildesk.common.errors import SecretError
from maildesk.common.redact import remember_secret

# Keys of maildesk.yaml that hold a Secret: what is written there is never echoed back.
SECRET_KEYS = frozenset({"password", "oauth2_token", "token", "secret"})


class Secret(BaseModel):
    """Where a secret comes from: an environment variable, a file or a command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None
    command: str | None = None

    def read(self, what: str) -> str:
        """The secret's value; raises SecretError naming the source, never the value.

        The value is remembered, so logs and error messages show *** in its place.
        """
        value = self._read(what)
        remember_secret(value, source=what)
        return value

    def _read(self, what: str) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"{what}: environment variable {self.env} is not set")
            return value
        if self.file:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(f"{what}: cannot read {self.file}: {exc.strerror}") from None
        if self.command:
            return _run_secret_command(self.command, what)
        raise SecretError(f"{what}: no secret configured (set env:, file: or command:)")

    def __repr__(self) -> str:  # never show where a secret hides beyond its kind
        kind = "env" if self.env else "file" if self.file else "command" if self.command else "-"
        return f"Secret({kind})"


def _run_secret_command(command: str, what: str) -> str:
    import shlex
    import subprocess

    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretError(f"{what}: token command failed to run: {type(exc).__name__}") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise SecretError(f"{what}: token command exited {done.returncode} without a token")
    return done.stdout.strip()
