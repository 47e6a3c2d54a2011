"""Headless Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium.

`CallPage` is one browser instance on Parley's call page (`/call`): it logs
in through the page's form, clicks its buttons, and reads
`window.parleyCall.state()` (the page's test hook). Fake camera, microphone
and screen come from Chromium's fake capture devices, so no picker and no
permission prompt ever appear.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import require_tools

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Known to work as root in a container (/work/shared/recipes/browser_loopback.py).
# With --use-fake-ui-for-media-stream and --use-fake-device-for-media-stream,
# getUserMedia gets Chromium's fake camera (a moving pattern) and microphone
# (a beep), and getDisplayMedia({video:true}) picks a fake screen
# ("screen:-3:0", 800x450 here) without a picker.
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900", "--mute-audio",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
]


def require_browser() -> None:
    """Fail (never skip) without Chromium, its driver or Selenium."""
    require_tools("chromium", "chromedriver")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"missing {path}: `make deps` installs chromium and chromium-driver", pytrace=False)
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("missing the selenium Python package: `make venv` installs it", pytrace=False)


def new_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given, so Selenium Manager never tries to download one.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1,
             describe: Callable[[], str] | None = None) -> Any:
    """Polls `pred` until it returns something truthy; fails with `describe()` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = describe() if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


class CallPage:
    """One browser on the call page."""

    def __init__(self, name: str, base_url: str):
        self.name = name
        self.base_url = base_url
        self.driver = new_driver()
        self.console: list[dict] = []

    # -- page ------------------------------------------------------------------

    def open(self) -> None:
        self.driver.get(self.base_url + "/call")
        wait_for(lambda: self.driver.execute_script("return !!window.parleyCall"), 30,
                 f"{self.name}: window.parleyCall (call.js loaded)", describe=self.diagnostics)

    def state(self) -> dict:
        return self.driver.execute_script("return window.parleyCall.state()")

    def el(self, element_id: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.ID, element_id)

    def click(self, element_id: str) -> None:
        """A real click (user activation: getDisplayMedia needs one)."""
        wait_for(lambda: self.el(element_id).is_displayed() and self.el(element_id).is_enabled(), 30,
                 f"{self.name}: #{element_id} clickable", describe=self.diagnostics)
        self.el(element_id).click()

    def type(self, element_id: str, text: str) -> None:
        e = self.el(element_id)
        e.clear()
        e.send_keys(text)

    def login(self, username: str, password: str) -> dict:
        self.type("username", username)
        self.type("password", password)
        self.click("login-btn")
        return self.wait(lambda s: s["loggedIn"] and s["user"] == username, f"{username} logged in")

    def wait(self, pred: Callable[[dict], Any], what: str, timeout: float = 30.0) -> dict:
        """Polls state() until `pred(state)` holds; returns that state."""
        box: dict = {}

        def check():
            box["s"] = self.state()
            return pred(box["s"])

        wait_for(check, timeout, f"{self.name}: {what}", describe=lambda: self.diagnostics(box.get("s")))
        return box["s"]

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    # -- diagnostics -------------------------------------------------------------

    def logs(self) -> list[dict]:
        try:
            self.console += self.driver.get_log("browser")
        except Exception:
            pass
        return self.console

    def diagnostics(self, state: dict | None = None) -> str:
        try:
            state = state or self.state()
        except Exception as e:  # page gone or script broken
            state = {"unavailable": repr(e)}
        lines = [f"{self.name} state: {state}"]
        lines += [f"{self.name} console: {m.get('level')} {m.get('message')}" for m in self.logs()[-30:]]
        return "\n".join(lines)

    def quit(self) -> None:
        try:
            self.logs()
        finally:
            self.driver.quit()
