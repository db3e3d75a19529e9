"""The second factor through the real stack (nginx TLS, gunicorn, Redis, PostgreSQL, MailDev):
an authenticator app enrolled and used to sign in, a replayed code refused. In headless
Chromium: a passkey registered and used to sign in without a password (Chromium's virtual
authenticator, through the DevTools WebAuthn domain), and the authenticator pages at 360 px,
with no Content-Security-Policy violation (the passkey script is /static/js/passkeys.js).

Runs on the mail stack (conftest.py: `mailed`): a factor is offered to verified addresses.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import requests

from .conftest import TEST_PASSWORD, Stack, link_path, new_username, submit, wait_for_mail

pytestmark = pytest.mark.e2e

SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
CODES = re.compile(r"<li><code>([a-z2-7-]+)</code></li>")


def verified_account(stack: Stack) -> tuple[requests.Session, str]:
    """Register a user, verify their address through the mailed link, sign in."""
    client, username = stack.session(), new_username()
    stack.register(client, username)
    message = wait_for_mail(stack, f"{username}@example.com", "Verify your email address")
    assert client.get(stack.base_url + link_path(stack, message), timeout=10).status_code == 200
    stack.login(client, username)
    return client, username


def password_step(stack: Stack, client: requests.Session, username: str) -> None:
    form = {"username": username, "password": TEST_PASSWORD}
    step = stack.post_form(client, "/login", form)
    assert step.status_code == 200 and step.url.endswith("/login/verify"), step.url
    assert "__Host-session" not in client.cookies  # no session before the second factor


def test_sign_in_with_an_authenticator_app_and_a_replayed_code_is_refused(mailed: Stack) -> None:
    stack = mailed
    client, username = verified_account(stack)
    secret = SECRET.search(client.get(stack.base_url + "/account/two-factor/app").text)
    assert secret
    stack.secrets.add(secret.group(1))  # no log line may hold it
    totp = pyotp.TOTP(secret.group(1))
    enrolled = stack.post_form(client, "/account/two-factor/app", {"code": totp.now()})
    assert enrolled.status_code == 200 and "shown only once" in enrolled.text
    codes = CODES.findall(enrolled.text)
    assert len(codes) == 10
    stack.secrets.update(codes)
    wait_for_mail(stack, f"{username}@example.com", "sign-in protection changed")

    laptop = stack.session()
    password_step(stack, laptop, username)
    code = totp.at(time.time() + 30)  # the next step's: enrolling spent this step's code
    signed_in = stack.post_form(laptop, "/login/verify", {"code": code})
    assert signed_in.status_code == 200 and f"Welcome {username}!" in signed_in.text
    account = laptop.get(stack.base_url + "/account", timeout=10).text
    assert '<td class="method">Password + authenticator app</td>' in account

    thief = stack.session()
    password_step(stack, thief, username)
    replayed = stack.post_form(thief, "/login/verify", {"code": code})
    assert replayed.status_code == 401 and "used already" in replayed.text
    recovered = stack.post_form(thief, "/login/verify", {"code": codes[0]})
    assert recovered.status_code == 200 and f"Welcome {username}!" in recovered.text
    wait_for_mail(stack, f"{username}@example.com", "sign-in protection changed")


def click(driver, selector: str) -> None:
    """Click the element `selector` names, scrolled to the middle of the window first."""
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, selector)
    # Instantly: Simple.css scrolls smoothly, and a click mid-scroll lands elsewhere.
    script = "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})"
    driver.execute_script(script, element)
    element.click()


def wait_for(driver, text: str) -> None:
    """Wait until the page shows `text`; else fail with what the browser's console said."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 20).until(lambda d: text in d.page_source)
    except TimeoutException:
        console = [e["message"] for e in driver.get_log("browser")]
        raise AssertionError(f"{text!r} never showed; console: {console}") from None


def overflow(driver) -> int:
    return int(
        driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    )


def csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security" in e["message"]]


def test_a_passkey_registers_and_signs_in_without_a_password(mailed: Stack, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions

    stack, driver = mailed, browser
    _, username = verified_account(stack)
    # The origin passkeys are bound to: SERVER_NAME (localhost) and the public port.
    site = f"https://localhost:{stack.https_port}"
    options = VirtualAuthenticatorOptions()
    options.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    options.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
    options.has_resident_key = options.has_user_verification = options.is_user_verified = True
    driver.add_virtual_authenticator(options)
    try:
        driver.delete_all_cookies()
        driver.get(site + "/login")
        submit(driver, {"username": username, "password": TEST_PASSWORD}, then_shows="Welcome")
        driver.get(site + "/account/two-factor")
        driver.find_element(By.NAME, "name").send_keys("Virtual key")
        click(driver, "#passkey-register [name=submit]")
        wait_for(driver, "shown only once")
        assert len(driver.get_credentials()) == 1  # it lives in the authenticator
        driver.get(site + "/account/two-factor")
        assert "<td>Virtual key</td>" in driver.page_source

        driver.get(site + "/logout")
        submit(driver, {}, then_shows="logged out")
        driver.get(site + "/login")
        assert driver.find_element(By.CSS_SELECTOR, "#passkey-login").is_displayed()  # shown by
        click(driver, "#passkey-login button")  # the script: this browser can use passkeys
        wait_for(driver, "Welcome")
        assert f"Welcome {username}!" in driver.page_source
        driver.get(site + "/account")
        assert '<td class="method">Passkey</td>' in driver.page_source
        assert csp_violations(driver) == []
    finally:
        driver.remove_virtual_authenticator()
        driver.delete_all_cookies()


def test_authenticator_app_pages_fit_a_360px_phone(mailed: Stack, browser) -> None:
    from selenium.webdriver.common.by import By

    stack, driver = mailed, browser
    _, username = verified_account(stack)
    site = f"https://localhost:{stack.https_port}"
    driver.set_window_size(360, 800)
    try:
        driver.delete_all_cookies()
        driver.get(site + "/login")
        submit(driver, {"username": username, "password": TEST_PASSWORD}, then_shows="Welcome")
        for path in ("/account/two-factor", "/account/two-factor/app"):
            driver.get(site + path)
            assert overflow(driver) <= 0, f"{path} is wider than a 360px screen"
        secret = driver.find_element(By.CSS_SELECTOR, "code.secret").text
        stack.secrets.add(secret)
        submit(driver, {"code": pyotp.TOTP(secret).now()}, then_shows="shown only once")
        assert overflow(driver) <= 0, "the recovery codes are wider than a 360px screen"
        stack.secrets.update(e.text for e in driver.find_elements(By.CSS_SELECTOR, "ul.codes code"))

        driver.get(site + "/logout")
        submit(driver, {}, then_shows="logged out")
        driver.get(site + "/login")
        submit(
            driver, {"username": username, "password": TEST_PASSWORD}, then_shows="Second factor"
        )
        assert overflow(driver) <= 0, "/login/verify is wider than a 360px screen"
        code = pyotp.TOTP(secret).at(time.time() + 30)  # enrolling spent this step's code
        submit(driver, {"code": code}, then_shows="Welcome")
        assert csp_violations(driver) == []
    finally:
        driver.set_window_size(1100, 900)
        driver.delete_all_cookies()


def test_an_enrolled_app_still_signs_in_after_the_stack_goes_down_and_up(mailed: Stack) -> None:
    """The authenticator's secret is encrypted under a key from the `secrets` volume and the
    recovery codes are hashed in PostgreSQL: `docker compose down` then `up`, volumes kept,
    must change nothing for the user. (Last in this file: it restarts the mail stack.)"""
    stack = mailed
    client, username = verified_account(stack)
    secret = SECRET.search(client.get(stack.base_url + "/account/two-factor/app").text)
    assert secret
    stack.secrets.add(secret.group(1))
    totp = pyotp.TOTP(secret.group(1))
    enrolled = stack.post_form(client, "/account/two-factor/app", {"code": totp.now()})
    assert enrolled.status_code == 200 and "shown only once" in enrolled.text
    codes = CODES.findall(enrolled.text)
    stack.secrets.update(codes)

    stack.down()  # no -v: data, secrets and the certificate stay
    stack.up()

    phone = stack.session()
    password_step(stack, phone, username)
    code = totp.at(time.time() + 30)  # the next step's: enrolling spent this step's code
    signed_in = stack.post_form(phone, "/login/verify", {"code": code})
    assert signed_in.status_code == 200 and f"Welcome {username}!" in signed_in.text
    laptop = stack.session()
    password_step(stack, laptop, username)
    recovered = stack.post_form(laptop, "/login/verify", {"code": codes[-1]})
    assert recovered.status_code == 200 and f"Welcome {username}!" in recovered.text
