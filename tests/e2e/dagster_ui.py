"""A thin Selenium helper for the Dagster 1.13 web UI: open a route, wait with a bound, keep screenshots.

Every wait is explicit and bounded; a timeout saves a screenshot and the page source next to the others and
fails naming what did not appear and where to look."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")
PAGE_LOAD_TIMEOUT_S = 60


def chrome(browser: str, driver_bin: str) -> WebDriver:
    """Headless Chromium from the system's binaries (no driver download: Selenium Manager stays unused)."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox: Chromium refuses to start as root (CI, containers) with its sandbox on.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_bin))
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    return driver


def shown(element: WebElement) -> bool:
    try:
        return element.is_displayed()
    except WebDriverException:  # gone from the page (stale)
        return False


def xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'


class DagsterUI:
    def __init__(self, driver: WebDriver, base_url: str, output_dir: Path) -> None:
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.output_dir = output_dir

    def open(self, route: str, ready_text: str, timeout_s: float = 90) -> None:
        """Load base_url + route and wait until `ready_text` shows (the app renders after its GraphQL calls)."""
        self.driver.get(self.base_url + route)
        self.wait_for_text(ready_text, timeout_s, f"page {route}")
        self.dismiss_community_dialog()

    def dismiss_community_dialog(self) -> None:
        """Dagster's first-visit "Join the Dagster community" dialog covers the page: skip it when shown."""
        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            if button.is_displayed():
                button.click()
                self.wait(lambda d, b=button: not shown(b), 10, "the community dialog to close")

    def shot(self, name: str) -> Path:
        path = self.output_dir / f"{name}.png"
        self.driver.save_screenshot(str(path))
        (self.output_dir / f"{name}.html").write_text(self.driver.page_source, encoding="utf-8")
        return path

    def wait(self, condition: Callable[[WebDriver], T], timeout_s: float, what: str, poll_s: float = 0.5) -> T:
        try:
            return WebDriverWait(self.driver, timeout_s, poll_frequency=poll_s).until(condition)
        except TimeoutException:
            name = "failed-" + "".join(c if c.isalnum() else "-" for c in what)[:60]
            self.shot(name)
            raise AssertionError(
                f"the Dagster UI did not show {what} within {timeout_s:.0f}s at {self.driver.current_url}; "
                f"see {self.output_dir / name}.png and .html, and the stack's logs/dagster.log"
            ) from None

    def wait_for_text(self, text: str, timeout_s: float, where: str) -> WebElement:
        return self.wait(
            lambda d: self.visible(By.XPATH, f"//*[normalize-space()={xpath_literal(text)}]"),
            timeout_s,
            f"'{text}' on {where}",
        )

    def visible(self, by: str, selector: str) -> WebElement | bool:
        """The first displayed element matching, or False (a WebDriverWait condition)."""
        try:
            return next((e for e in self.driver.find_elements(by, selector) if e.is_displayed()), False)
        except WebDriverException:  # the element went stale while React re-rendered: try again next poll
            return False

    def click(self, by: str, selector: str, timeout_s: float, what: str) -> None:
        element: Any = self.wait(lambda d: self.visible(by, selector), timeout_s, what)
        element.click()

    def body_text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException:
            return ""
