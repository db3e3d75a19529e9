"""Email identity and recovery, through a real SMTP server (aiosmtpd) and a real RQ worker:
verification, password reset, address change, notices."""

from __future__ import annotations

from typing import Any

import pytest
from app import jobs
from app.extensions import db
from app.models import User
from helpers import FIREFOX, PASSWORD, SAFARI, Auth, Client, deliver, link_in, verified

NEW_PASSWORD = "a brand new passphrase"


def test_registration_mails_a_verification_link_that_works_once(app, client, outbox):
    verified(app, client, outbox)
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.email == "alice@example.com" and user.email_verified_at is not None


def test_registration_needs_a_valid_address_and_never_says_one_is_taken(app, client, auth, outbox):
    response = auth.register("alice", email="not an address")
    assert response.status_code == 422 and "Enter an email address" in response.get_data(True)
    free = auth.register("alice", email="Alice@Example.com")
    assert free.status_code == 302
    deliver(app)
    outbox.clear()
    taken = auth.register("bob", email="alice@EXAMPLE.com ")  # case and space: the same
    assert (taken.status_code, taken.location) == (free.status_code, free.location)
    page = client.get(taken.location).get_data(as_text=True)
    assert "link to verify your address is on its way" in page  # as for a free address
    assert Auth(client).login("bob").status_code == 401  # no account was made
    deliver(app)
    [message] = outbox.to("Alice@Example.com")  # its owner's, as she wrote it
    assert "already has" in message["Subject"] and "/password/forgot" in link_in(message)


def test_an_address_change_to_a_taken_address_answers_the_same_and_tells_its_owner(
    app, make_client, outbox
):
    alice, bob = make_client(), make_client()
    verified(app, alice, outbox)
    verified(app, bob, outbox, "bob")
    Auth(bob).login("bob")
    for new in ("carol@example.com", "ALICE@example.com"):
        response = bob.post_form("/account/email", {"email": new, "password": PASSWORD})
        assert response.status_code == 302 and response.location.endswith("/account")
    deliver(app)
    [confirm] = outbox.to("carol@example.com")
    [told] = outbox.to("alice@example.com")
    assert "Confirm" in confirm["Subject"] and "already has" in told["Subject"]


def forgot(client: Client, email: str) -> Any:
    return client.post_form("/password/forgot", {"email": email})


def test_a_verified_address_gets_a_reset_link_that_sets_the_password_once(app, make_client, outbox):
    laptop = verified(app, make_client(FIREFOX), outbox)
    phone = make_client(SAFARI)
    assert Auth(phone).login("alice", remember=True).status_code == 302
    remember = phone.cookie("__Host-remember")
    deliver(app)
    outbox.clear()  # the new-device notice
    stranger = make_client()
    response = forgot(stranger, "ALICE@example.com")
    assert response.status_code == 200 and "Check your mail" in response.get_data(True)
    deliver(app)
    [message] = outbox.to("alice@example.com")
    path = link_in(message)
    assert path.startswith("/password/reset/")
    assert stranger.get(path).status_code == 200
    form = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert stranger.post_form(path, form).status_code == 302
    # the new password works, the old one does not, every session and device has ended
    assert Auth(make_client()).login("alice", PASSWORD).status_code == 401
    assert Auth(make_client()).login("alice", NEW_PASSWORD).status_code == 302
    assert laptop.get("/dashboard").status_code == 302
    assert phone.get("/dashboard").status_code == 302
    thief = make_client()
    thief.set_cookie("__Host-remember", remember, domain="localhost")
    assert thief.get("/dashboard").status_code == 302
    # the link works once, and the user is told
    again = stranger.post_form(
        path, {"password": "yet another one!", "confirm": "yet another one!"}
    )
    assert again.status_code == 400 and "expired or has been used" in again.get_data(True)
    deliver(app)
    assert any("password was reset" in m["Subject"] for m in outbox.to("alice@example.com"))


def test_a_reset_link_expires_and_dies_with_a_password_change(app, client, outbox, clock):
    verified(app, client, outbox)
    forgot(client, "alice@example.com")
    forgot(client, "alice@example.com")
    deliver(app)
    first, second = (link_in(m) for m in outbox.to("alice@example.com"))
    clock.advance(app.config["PASSWORD_RESET_MAX_AGE"] + 1)
    form = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert client.post_form(first, form, form_page="/password/forgot").status_code == 400
    clock.advance(-app.config["PASSWORD_RESET_MAX_AGE"])
    Auth(client).login("alice")
    change = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert client.post_form("/account/password", change).status_code == 302
    assert client.post_form(second, form, form_page="/password/forgot").status_code == 400


@pytest.mark.parametrize("case", ["unknown", "unverified"])
def test_unknown_and_unverified_addresses_get_the_same_answer_and_no_mail(
    app, client, outbox, redis_client, case
):
    Auth(client).register("alice")  # unverified
    deliver(app)
    outbox.clear()
    known = verified(app, app.test_client(), outbox, "bob")
    reference = forgot(known, "bob@example.com")
    address = "alice@example.com" if case == "unverified" else "nobody@example.com"
    with app.app_context():
        queued = jobs.queue().count
    response = forgot(client, address)
    assert response.status_code == reference.status_code == 200
    assert response.get_data(as_text=True) == reference.get_data(as_text=True)
    with app.app_context():
        assert jobs.queue().count == queued  # nothing enqueued
    deliver(app)
    assert outbox.to(address) == []


def test_forgot_password_is_limited_per_address_asked_about(make_app):
    app = make_app(RATELIMIT_FORGOT_EMAIL="2/hour")
    for _ in range(2):
        assert forgot(app.test_client(), "alice@example.com").status_code == 200
    response = forgot(app.test_client(), "ALICE@example.com")
    assert response.status_code == 429 and response.headers["Retry-After"]


def test_changing_the_address_needs_the_password_a_link_and_tells_the_old_one(app, client, outbox):
    verified(app, client, outbox)
    Auth(client).login("alice")
    deliver(app)
    outbox.clear()
    wrong = client.post_form(
        "/account/email", {"email": "new@example.com", "password": "nope nope"}
    )
    assert wrong.status_code == 422
    ok = client.post_form("/account/email", {"email": "new@example.com", "password": PASSWORD})
    assert ok.status_code == 302
    deliver(app)
    [message] = outbox.to("new@example.com")
    path = link_in(message)
    assert client.get(path).status_code == 200  # a page with a button: scanners change nothing
    assert client.post_form(path, {}).status_code == 302
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert user.email == "new@example.com" and user.email_verified_at is not None
    assert client.post_form(path, {}).status_code == 400  # once
    deliver(app)
    requested, done = outbox.to("alice@example.com")  # told before, and after
    assert "about to change" in requested["Subject"] and "/email/cancel/" in link_in(requested)
    assert "email address was changed" in done["Subject"]
    assert "new@example.com" in done.get_body(("plain",)).get_content()


def test_the_old_address_can_stop_an_address_change_and_end_every_session(
    app, client, make_client, outbox
):
    verified(app, client, outbox)
    Auth(client).login("alice", remember=True)  # (as if a thief had asked from here)
    client.post_form("/account/email", {"email": "thief@example.com", "password": PASSWORD})
    deliver(app)
    [requested] = [m for m in outbox.to("alice@example.com") if "about to" in m["Subject"]]
    [confirm] = outbox.to("thief@example.com")
    owner = make_client()
    cancel = link_in(requested)
    assert owner.get(cancel).status_code == 200  # a button: scanners change nothing
    assert owner.post_form(cancel, {}).status_code == 302
    assert client.get("/dashboard").status_code == 302  # every session and device ended
    assert client.post_form(link_in(confirm), {}).status_code == 400  # the change is dead
    with app.app_context():
        assert db.session.scalar(db.select(User)).email == "alice@example.com"


def test_a_new_browser_and_a_password_change_are_notified(app, make_client, outbox):
    laptop = verified(app, make_client(FIREFOX), outbox)
    assert Auth(laptop).login("alice").status_code == 302
    deliver(app)
    [notice] = outbox.to("alice@example.com")
    text = notice.get_body(("plain",)).get_content()
    assert "New sign-in" in notice["Subject"] and "Firefox on Ubuntu" in text
    assert "https://localhost/account" in text
    outbox.clear()
    Auth(laptop).logout()
    assert Auth(laptop).login("alice").status_code == 302  # a recognised browser: no notice
    change = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert laptop.post_form("/account/password", change).status_code == 302
    deliver(app)
    assert [m["Subject"] for m in outbox.to("alice@example.com")] == [
        "Your Flask stack password was changed"
    ]


def test_mail_links_use_the_site_url_not_the_request_host(make_app, outbox):
    app = make_app(SITE_URL="https://example.org", TRUSTED_HOSTS=None)
    client = app.test_client()
    Auth(client).register("alice")
    deliver(app)
    [message] = outbox.to("alice@example.com")
    assert "https://example.org/email/verify/" in message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert 'href="https://example.org/email/verify/' in html


def test_a_failing_smtp_server_is_retried_then_dead_lettered_and_retried_by_an_operator(
    app, client, outbox
):
    outbox.refuse = True
    Auth(client).register("alice")
    deliver(app)  # three attempts: the first and JOBS_RETRY_INTERVALS' two retries
    with app.app_context():
        assert jobs.failed().count == 1
    runner = app.test_cli_runner()
    status = runner.invoke(args=["jobs", "status"])
    assert "failed: 1" in status.output and "451" in status.output
    outbox.refuse = False
    assert runner.invoke(args=["jobs", "retry", "--all"]).exit_code == 0
    deliver(app)
    assert len(outbox.to("alice@example.com")) == 1
    with app.app_context():
        assert jobs.failed().count == 0
    again = runner.invoke(args=["jobs", "retry", "--all"])  # run twice: nothing left, no error
    assert again.exit_code == 0 and "requeued 0 job(s)" in again.output
    assert runner.invoke(args=["jobs", "retry"]).exit_code == 2  # neither ids nor --all


def test_an_account_without_an_address_is_asked_for_one(app, client, auth):
    auth.register("alice")
    with app.app_context():
        user = db.session.scalar(db.select(User))
        user.email = user.email_key = None
        db.session.commit()
    auth.login("alice")
    page = client.get("/account").get_data(as_text=True)
    assert "has no email address" in page and 'href="/account/email"' in page


def test_the_worker_never_logs_a_link_s_token(app, client, outbox, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    assert Auth(client).register("alice").status_code == 302
    deliver(app)
    [message] = outbox.to("alice@example.com")
    token = link_in(message).rsplit("/", 1)[1]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("rq", "app")))
    assert "Successfully completed" in ours  # the worker ran the job, and logged it...
    # ...never with its arguments, not even cut short (RQ shortens each to 75 characters)
    assert token[:10] not in ours and "/email/verify/" not in ours
    status = app.test_cli_runner().invoke(args=["jobs", "status"])
    assert token not in status.output
