"""Headless Chromium for tests: what a person sees (a screenshot) and the page after rendering
(--dump-dom), with a throw-away profile and nothing fetched but the page itself."""
from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from report.pdf import browser_command, find_browser

MEASURE = """<script>
// test only: where each plot landed on the page, read back through --dump-dom
document.body.setAttribute('data-plots', JSON.stringify(
  [...document.querySelectorAll('svg.plot')].map(s => {
    const r = s.getBoundingClientRect();
    return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })));
</script>"""


class Chromium:
    def __init__(self, workdir: Path, width: int = 1000, height: int = 3200):
        browser = find_browser()
        assert browser, "the tests need Chromium (apt-get install chromium)"
        self.browser, self.workdir = browser, Path(workdir)
        self.size = f"--window-size={width},{height}"

    def _run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cmd = [*browser_command(self.browser, self.workdir / "profile"), "--hide-scrollbars",
               self.size, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def screenshot(self, url: str, png: Path) -> Path:
        for _ in range(2):   # a loaded machine can lose Chromium's first start: once more
            done = self._run(f"--screenshot={png}", url)
            if png.is_file():
                return png
        raise AssertionError(f"Chromium made no screenshot of {url}: {done.stderr[-600:]}")

    def dump_dom(self, url: str) -> str:
        for _ in range(2):
            done = self._run("--dump-dom", url)
            if "<html" in done.stdout:
                return done.stdout
        raise AssertionError(f"Chromium showed no page for {url}: {done.stderr[-600:]}")


class _Text(HTMLParser):
    """The text a person reads: no style, script or head."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    p = _Text()
    p.feed(dom)
    return re.sub(r"\s+", " ", " ".join(p.parts)).strip()
