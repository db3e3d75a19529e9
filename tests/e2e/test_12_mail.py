"""Mail through the real stack (profile `mail`): the worker sends over SMTP to MailDev, whose
REST API the tests read. Register and verify, forget the password and get back in, and an
SMTP outage that the worker outlasts.

The mail stack (conftest.py: `mailed`), shared with test_13_second_factor.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .conftest import (
    TEST_PASSWORD,
    Stack,
    link_path,
    messages_to,
    new_username,
    wait_for_mail,
)

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a completely new passphrase 7"


def test_register_verify_forget_and_reset(mailed: Stack) -> None:
    stack, username = mailed, new_username()
    address = f"{username}@example.com"
    laptop = stack.session()
    stack.register(laptop, username)
    verify = wait_for_mail(stack, address, "Verify your email address")
    page = laptop.get(stack.base_url + link_path(stack, verify), timeout=10)
    assert page.status_code == 200 and "verified" in page.text
    stack.login(laptop, username)
    assert f"{address} (verified)" in laptop.get(stack.base_url + "/account", timeout=10).text

    stranger = stack.session()
    sent = stack.post_form(stranger, "/password/forgot", {"email": address.upper()})
    assert sent.status_code == 200 and "Check your mail" in sent.text
    path = link_path(stack, wait_for_mail(stack, address, "Choose a new password"))
    form = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    reset = stack.post_form(stranger, path, form)
    assert reset.status_code == 200 and reset.url.endswith("/login"), reset.text[:300]
    # the other session is gone, the old password is refused, the new one works
    gone = laptop.get(stack.base_url + "/dashboard", allow_redirects=False, timeout=10)
    assert gone.status_code == 302
    old = stack.post_form(
        stack.session(), "/login", {"username": username, "password": TEST_PASSWORD}
    )
    assert old.status_code == 401
    new = stack.post_form(
        stack.session(), "/login", {"username": username, "password": NEW_PASSWORD}
    )
    assert new.status_code == 200 and f"Welcome {username}!" in new.text
    again = stack.post_form(stranger, path, form)
    assert again.status_code == 400  # the link worked once
    wait_for_mail(stack, address, "password was reset")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(mailed: Stack) -> None:
    stack, address = mailed, f"{new_username()}@example.com"
    answer = stack.post_form(stack.session(), "/password/forgot", {"email": address})
    assert answer.status_code == 200 and "Check your mail" in answer.text
    time.sleep(3)
    assert messages_to(stack, address) == []


@contextmanager
def smtp_down(stack: Stack) -> Iterator[None]:
    stack.compose("stop", "mail")
    try:
        yield
    finally:
        stack.up("mail")  # and wait until it is healthy again


def test_the_worker_outlasts_an_smtp_outage(mailed: Stack) -> None:
    stack, username = mailed, new_username()
    with smtp_down(stack):
        stack.register(stack.session(), username)
        time.sleep(6)  # the first attempts fail: the job waits for its next retry
        status = stack.compose("exec", "-T", "worker", "flask", "jobs", "status")
        assert status.startswith("queued:")
    wait_for_mail(stack, f"{username}@example.com", "Verify your email address", timeout=120)


def test_the_worker_stops_cleanly_on_sigterm_and_comes_back(mailed: Stack) -> None:
    stack = mailed
    started = time.monotonic()
    stack.compose("stop", "-t", "30", "worker")
    assert time.monotonic() - started < 25  # RQ's warm shutdown: no SIGKILL at the deadline
    [container] = stack.container_ids("worker")
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.ExitCode}}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    assert state.stdout.strip() == "0"
    stack.up("worker")
    username = new_username()
    stack.register(stack.session(), username)
    wait_for_mail(stack, f"{username}@example.com", "Verify your email address")
