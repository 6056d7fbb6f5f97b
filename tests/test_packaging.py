"""`pip install .` (not editable) ships what maildesk needs at run time."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_regular_install_ships_templates_rules_and_runs_the_demo(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import maildesk, pathlib; print(pathlib.Path(maildesk.__file__).parent)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    package = Path(site)
    assert package.is_relative_to(env_dir), "imported the checkout, not the installed copy"
    assert (package / "templates" / "en" / "ack.txt.j2").is_file()
    assert (package / "examples" / "rules.yaml").is_file()
    assert (package / "examples" / "maildesk.yaml").is_file()
    assert (package / "store" / "migrations" / "versions").is_dir()
    demo = subprocess.run(
        [str(env_dir / "bin" / "maildesk"), "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "MD-1" in demo.stdout and "Invoice 2026-1187 charged twice" in demo.stdout
    # The demo's closing commands, pasted as printed, keep a desk and show its first ticket.
    lines = demo.stdout.splitlines()
    hint = lines.index(
        "The demo desk was temporary and is gone. To keep one and see a ticket in full:"
    )
    for command in [line.strip() for line in lines[hint + 1 :] if line.strip()]:
        pasted = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert pasted.returncode == 0, f"{command}\n{pasted.stderr[-3000:]}"
    assert pasted.stdout.startswith("MD-1  Не открывается личный кабинет\n")
    init = subprocess.run(
        [str(env_dir / "bin" / "maildesk"), "init", str(tmp_path / "desk")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "desk" / "templates" / "ru").exists() or (
        tmp_path / "desk" / "templates" / "en"
    ).exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
