"""Mail budgets (mail.py: send): every message spends a unit per address, per account and per
address and template; the queue is bounded; finished jobs leave nothing in Redis."""

from __future__ import annotations

from helpers import PASSWORD, Auth, deliver, verified


def test_asking_again_and_again_for_a_verification_link_is_refused_early(app, client, outbox):
    Auth(client).signed_in()  # registering mailed one link already
    answers = [
        client.post_form("/email/verify", {}, form_page="/account").status_code for _ in range(30)
    ]
    assert answers[:2] == [302, 302] and set(answers[2:]) == {429}
    deliver(app)
    assert len(outbox.to("alice@example.com")) == 3  # MAIL_LIMIT_TEMPLATE: 3 an hour


def test_an_account_cannot_mail_many_addresses(make_app, outbox):
    app = make_app(MAIL_LIMIT_ACCOUNT="2/hour")
    client = app.test_client()
    Auth(client).register()  # one message (the verification link)
    Auth(client).login()
    first = client.post_form("/account/email", {"email": "one@example.com", "password": PASSWORD})
    assert first.status_code == 302
    second = client.post_form("/account/email", {"email": "two@example.com", "password": PASSWORD})
    assert second.status_code == 429
    deliver(app)
    assert not outbox.to("two@example.com")


def test_notices_past_a_budget_are_dropped_not_errors(make_app, make_client, outbox):
    app = make_app(MAIL_LIMIT_RECIPIENT="3/hour")
    verified(app, app.test_client(), outbox)  # one message: the verification link
    for _ in range(4):  # every new browser is notified... while the address' budget lasts
        assert Auth(app.test_client()).login().status_code == 302
    deliver(app)
    assert len(outbox.to("alice@example.com")) == 2


def test_a_full_queue_refuses_that_action_only(make_app, outbox):
    app = make_app(MAIL_QUEUE_MAX=1)
    client = app.test_client()
    Auth(client).signed_in()  # its verification link fills the queue (no worker runs)
    response = client.post_form("/email/verify", {}, form_page="/account")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/dashboard").status_code == 200
    deliver(app)
    assert client.post_form("/email/verify", {}, form_page="/account").status_code == 302


def test_finished_jobs_leave_nothing_in_redis(app, client, outbox, redis_client):
    Auth(client).register()
    assert redis_client.keys("rq:job:*")
    deliver(app)
    assert len(outbox.to("alice@example.com")) == 1
    assert not redis_client.keys("rq:job:*") and not redis_client.keys("rq:results:*")
