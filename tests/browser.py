"""Headless Chromium for the tests and fuzzing that check what a browser shows (report pages)."""
from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1100,1300"]


def chromium_missing() -> str | None:
    """Why Chromium cannot run here, or None."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return "the browser checks need Debian's chromium and chromedriver (apt-get install chromium chromium-driver)"


def start_chromium(profile: Path):
    """A Selenium driver of Debian's chromium; the driver path is given, so Selenium Manager downloads nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    return driver
