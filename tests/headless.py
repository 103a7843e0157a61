"""A real headless browser for the checks that need one (a figure drew, a person's clicks through the
MLflow UI): Debian's chromium, allowed to reach 127.0.0.1 only, with a fresh profile each time.

Tests call ``require_browser()`` (or ``browser_page()``) first: without a browser they are skipped,
saying how to get one."""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import subprocess
import tempfile

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# every host name but 127.0.0.1 fails to resolve, so a page that needs the internet (a CDN) shows it
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", LOOPBACK_ONLY]


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def require_browser() -> str:
    path = browser()
    if path is None:
        pytest.skip(f"no headless browser ({' / '.join(BROWSERS)} not found): install Debian's chromium "
                    "(apt-get install -y chromium; .ci/run does it) to run the browser checks")
    return path


def dump_dom(url: str, wait_ms: int = 20000) -> str:
    """The page's DOM once its scripts have run for ``wait_ms`` of virtual time (loopback only)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [require_browser(), "--headless", *FLAGS, f"--user-data-dir={profile}",
             "--window-size=1400,900", f"--virtual-time-budget={wait_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=wait_ms / 1000 + 120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@contextlib.contextmanager
def browser_page(timeout_ms: int = 60000):
    """A page of the headless browser driven through Playwright (the dev extra; it drives this browser, and
    downloads none), for checks that click as a person would; loopback only, a fresh profile."""
    path = require_browser()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip install -e .[dev]) drives the "
                                                                 "browser for the checks that click")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def visible_text(dom: str) -> str:
    """The text a reader sees, in one line (scripts and styles dropped)."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))).strip()
