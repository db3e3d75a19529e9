"""A real browser (Debian's headless Chromium) through nginx: what a person would do and see.

It checks what an HTTP library cannot: that the browser accepts the __Host- cookies, that the
Content-Security-Policy lets the page's own stylesheet through and blocks nothing else we
serve, and that forms pass Flask-WTF's Referer check under the Referrer-Policy nginx sends.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import TEST_PASSWORD, Stack, new_username, submit

pytestmark = pytest.mark.e2e

LIGHT, DARK = "rgb(255, 255, 255)", "rgb(33, 33, 33)"  # body background, static/css/site.css


def shoot(driver, name: str) -> None:
    """Save a screenshot into $E2E_SCREENSHOTS (docs/images when refreshing the docs)."""
    folder = os.environ.get("E2E_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def background(driver) -> str:
    return driver.execute_script("return getComputedStyle(document.body).backgroundColor")


def test_a_person_registers_logs_in_sets_preferences_and_logs_out(stack: Stack, browser) -> None:
    from selenium.webdriver.common.by import By

    driver, base, username = browser, stack.base_url, new_username()
    driver.get(base + "/")
    assert background(driver) == LIGHT, "the stylesheet did not load (CSP or static files)"

    shoot(driver, "home")
    driver.get(base + "/register")
    form = {"username": username, "email": f"{username}@example.com"}
    form |= {"password": TEST_PASSWORD, "confirm": TEST_PASSWORD}
    submit(driver, form, then_shows="Your account is ready")
    assert driver.current_url == base + "/login"
    assert "Your account is ready" in driver.page_source

    shoot(driver, "login")
    submit(driver, {"username": username, "password": TEST_PASSWORD}, then_shows="Welcome")
    assert driver.current_url == base + "/dashboard"
    assert f"Welcome {username}!" in driver.find_element(By.TAG_NAME, "h1").text
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session = cookies["__Host-session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    assert session["path"] == "/" and not session["domain"].startswith(".")

    shoot(driver, "dashboard")
    driver.get(base + "/account")
    shoot(driver, "account")
    driver.get(base + "/preferences")
    driver.find_element(By.CSS_SELECTOR, 'input[name="theme"][value="dark"]').click()
    driver.find_element(By.CSS_SELECTOR, 'input[name="language"][value="fr"]').click()
    submit(driver, {}, then_shows="Preferences saved.")
    driver.get(base + "/dashboard")
    assert background(driver) == DARK
    assert "Bienvenue" in driver.page_source
    shoot(driver, "dashboard-dark-fr")

    driver.get(base + "/logout")
    submit(driver, {}, then_shows="Vous êtes déconnecté.")  # the language chosen above
    driver.get(base + "/dashboard")
    assert driver.current_url.startswith(base + "/login")

    blocked = [
        e["message"] for e in driver.get_log("browser") if "Content Security" in e["message"]
    ]
    assert blocked == []


def test_every_main_page_fits_a_360px_phone(stack: Stack, browser) -> None:
    """No page scrolls sideways at 360 CSS pixels, signed out or in; forms stay usable."""
    driver, base, username = browser, stack.base_url, new_username()
    driver.set_window_size(360, 800)
    try:
        driver.get(base + "/")
        driver.delete_all_cookies()  # a new visitor: default theme and language
        assert driver.execute_script("return window.innerWidth") <= 400
        driver.get(base + "/register")
        form = {"username": username, "email": f"{username}@example.com"}
        form |= {"password": TEST_PASSWORD, "confirm": TEST_PASSWORD}
        submit(driver, form, then_shows="Your account is ready")
        submit(driver, {"username": username, "password": TEST_PASSWORD}, then_shows="Welcome")
        for path in ("/", "/login", "/register", "/dashboard", "/account", "/people",
                     "/people/new", "/preferences", "/account/password", "/account/email",
                     "/password/forgot", "/password/reset/not-a-token"):  # fmt: skip
            driver.get(base + path)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than a 360px screen"
        driver.get(base + "/dashboard")
        shoot(driver, "dashboard-phone")
    finally:
        driver.set_window_size(1100, 900)
