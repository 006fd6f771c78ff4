"""The built manual in a real browser (Debian's Chromium, Selenium) at a normal window size: the home page, the
server tutorial and the log-events reference render with their navigation, and the navigation leads from one to the
next. ``SYNCD_SCREENSHOTS=DIR`` keeps a screenshot of each page there."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1440, 900


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([str(mkdocs), "build", "--strict", "-d", str(out)], cwd=ROOT, env=env, check=True)
    handler = functools.partial(_Quiet, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("chromium and chromium-driver (Debian) are missing: run scripts/stack-install.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def _shot(chrome: WebDriver, name: str) -> None:
    folder = os.environ.get("SYNCD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(str(Path(folder) / f"manual-{name}.png"))


def _visible_text(chrome: WebDriver, css: str) -> str:
    """The text of the first element matching ``css``, only if it is on screen (Selenium's .text is empty for text
    a reader cannot see)."""
    return chrome.find_element(By.CSS_SELECTOR, css).text


def _follow(chrome: WebDriver, link_text: str) -> None:
    link = chrome.find_element(By.XPATH, f"//nav//a[normalize-space(.)={link_text!r}]")
    chrome.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()


def test_home_tutorial_and_log_events_read_and_the_navigation_leads_between_them(site: str, chrome: WebDriver) -> None:
    chrome.get(f"{site}/")
    assert _visible_text(chrome, "article h1") == "syncd"
    assert "keeps three things in step" in _visible_text(chrome, "article")
    nav = _visible_text(chrome, "nav.md-nav--primary")
    for part in ("Tutorials", "How-to guides", "Reference", "Explanation"):
        assert part in nav, nav
    _shot(chrome, "home")

    _follow(chrome, "Install on a server under systemd")
    assert chrome.current_url.endswith("/tutorials/server/")
    assert _visible_text(chrome, "article h1") == "Install on a server under systemd"
    assert "sha256sum --check SHA256SUMS" in _visible_text(chrome, "article")
    _shot(chrome, "server-tutorial")

    _follow(chrome, "Log events")
    assert chrome.current_url.endswith("/reference/log-events/")
    article = _visible_text(chrome, "article")
    assert "syncd can emit" in article and "transcription.completed" in article
    rows = chrome.find_elements(By.CSS_SELECTOR, "article table tbody tr")
    assert len(rows) >= 100, len(rows)
    _shot(chrome, "log-events")
