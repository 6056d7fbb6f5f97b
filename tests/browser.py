"""Headless Chromium for tests: the rendered DOM, console messages and a screenshot.

Chromium writes every console message (and CSP violations, failed loads, uncaught
errors) to stderr as `INFO:CONSOLE` lines when started with `--enable-logging=stderr`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tests.servers import unavailable


def chromium_binary() -> str:
    """The Chromium executable; skipped locally, failed under CI=true when missing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium is not installed (Debian package chromium)")
    raise AssertionError("unreachable")


@dataclass
class PageRun:
    dom: str
    console: list[str]  # every console line Chromium logged for the page


def open_page(page: Path, profile: Path, *extra: str) -> PageRun:
    """Load `page` in headless Chromium; return the DOM after load and the console lines."""
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return PageRun(done.stdout, console)


class ChartCollector(HTMLParser):
    """Collects each `svg.chart` and the bars (`rect.bar`, `circle.point`) drawn in it."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[dict[str, str]]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg" and "chart" in a.get("class", "").split():
            self._current = a.get("data-chart", "")
            self.charts[self._current] = []
        elif self._current and tag in ("rect", "circle") and a.get("class") in ("bar", "point"):
            self.charts[self._current].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._current = None


def charts_in(dom: str) -> dict[str, list[dict[str, str]]]:
    parser = ChartCollector()
    parser.feed(dom)
    return parser.charts


def colour_counts(path: Path, colours: dict[str, str], tolerance: int = 12) -> dict[str, int]:
    """How many pixels of the screenshot are close to each named '#rrggbb' colour."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    targets = {name: tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for name, c in colours.items()}
    counts = dict.fromkeys(colours, 0)
    for (r, g, b), n in ((rgb, n) for n, rgb in image.getcolors(maxcolors=1 << 24)):
        for name, (tr, tg, tb) in targets.items():
            if abs(r - tr) <= tolerance and abs(g - tg) <= tolerance and abs(b - tb) <= tolerance:
                counts[name] += n
    return counts
