"""The report as PDF through a headless Chromium's print, the same print a person gets from the
browser (the page's print stylesheet applies). Chromium is optional on a hub: without it the
caller says so in one sentence and the HTML stays the report."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# quiet and private: no sync, no updates, no background fetches, a throw-away profile
QUIET_FLAGS = ("--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-extensions")


class PdfError(RuntimeError):
    """The PDF could not be printed; the message is one sentence."""


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_command(browser: str, profile: Path) -> list[str]:
    cmd = [browser, *QUIET_FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        cmd.append("--no-sandbox")   # Chromium refuses to run as root with its sandbox
    return cmd


def print_pdf(html_file: Path, pdf_file: Path, *, browser: str | None = None,
              timeout_s: float = 120.0) -> None:
    """Print `html_file` to `pdf_file`; PdfError with one sentence when that fails."""
    browser = browser or find_browser()
    if browser is None:
        raise PdfError("no Chromium is installed to print the PDF (apt-get install chromium); "
                       f"open {html_file} in a browser and print it to PDF instead")
    pdf_file = Path(pdf_file).resolve()
    pdf_file.unlink(missing_ok=True)     # an old PDF is never taken for the new one
    with tempfile.TemporaryDirectory(prefix="timeout-hub-pdf-") as profile:
        cmd = [*browser_command(browser, Path(profile)), "--no-pdf-header-footer",
               f"--print-to-pdf={pdf_file}", Path(html_file).resolve().as_uri()]
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PdfError(f"Chromium could not print the PDF ({e})") from None
    if not pdf_file.exists() or not pdf_file.read_bytes()[:5] == b"%PDF-":
        raise PdfError(f"Chromium did not write {pdf_file}; open {html_file} in a browser and "
                       "print it to PDF instead")
