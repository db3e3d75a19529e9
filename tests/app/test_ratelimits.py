"""Rate limits on the real client address and per account, answered with a readable 429."""

from __future__ import annotations

from helpers import PASSWORD, Auth, Client


def client_from(app, address: str) -> Client:
    """A client behind one proxy (nginx) that reports `address` as the client."""
    client = app.test_client()
    # What nginx sends: whatever the client claimed, then the address nginx saw.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = f"6.6.6.6, {address}"
    return client  # type: ignore[return-value]


def test_login_limit_per_client_address_with_retry_after_and_a_page(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_LOGIN="3/minute")
    client = client_from(app, "203.0.113.7")
    for _ in range(3):
        assert Auth(client).login("nobody", "wrong password").status_code == 401
    response = Auth(client).login("nobody", "wrong password")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "Too many attempts" in response.get_data(as_text=True)
    # another client address is not affected
    assert Auth(client_from(app, "203.0.113.8")).login("nobody", "x" * 8).status_code == 401


def test_forged_x_forwarded_for_does_not_reset_the_limit(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_LOGIN="3/minute")
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        client = client_from(app, "203.0.113.7")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"{forged}, 203.0.113.7"
        assert Auth(client).login("nobody", "wrong password").status_code == 401
    client = client_from(app, "203.0.113.7")
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "4.4.4.4, 203.0.113.7"
    assert Auth(client).login("nobody", "wrong password").status_code == 429


def test_failures_per_account_are_bounded_whatever_the_address(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_FAILURES="3/hour")
    Auth(client_from(app, "198.51.100.1")).register("alice")
    for n in range(3):
        attacker = client_from(app, f"203.0.113.{n + 1}")
        assert Auth(attacker).login("alice", "wrong password").status_code == 401
    locked = Auth(client_from(app, "203.0.113.99")).login("ALICE", PASSWORD)
    assert locked.status_code == 429
    # bounded: the window ends within the hour, so the owner is never locked out for good
    assert 0 < int(locked.headers["Retry-After"]) <= 3600
    # other accounts are unaffected
    Auth(client_from(app, "198.51.100.2")).register("bob")
    assert Auth(client_from(app, "203.0.113.100")).login("bob", PASSWORD).status_code == 302


def test_failures_per_account_and_address_are_strict(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_ADDRESS_FAILURES="3/5 minutes")
    Auth(client_from(app, "198.51.100.1")).register("alice")
    guesser = client_from(app, "203.0.113.7")
    for _ in range(3):
        assert Auth(guesser).login("alice", "wrong password").status_code == 401
    blocked = Auth(guesser).login("alice", PASSWORD)  # even the right password, from there
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 300
    # the same address may still try other accounts, and others this one
    assert Auth(guesser).login("bob", "wrong password").status_code == 401
    assert Auth(client_from(app, "203.0.113.8")).login("alice").status_code == 302


def moved(client: Client, address: str) -> Client:
    """The same browser (its cookies) on another network."""
    client.environ_base["HTTP_X_FORWARDED_FOR"] = f"6.6.6.6, {address}"
    return client


def test_a_recognised_browser_signs_in_while_others_spend_the_account_budget(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_FAILURES="3/hour")
    owner = client_from(app, "198.51.100.1")
    Auth(owner).register("alice")
    assert Auth(owner).login("alice").status_code == 302  # this browser is now recognised
    assert owner.cookie("__Host-device")
    Auth(owner).logout()
    for n in range(5):
        Auth(client_from(app, f"203.0.113.{n + 1}")).login("alice", "wrong password")
    # a new browser is held back, even from the owner's usual address...
    assert Auth(client_from(app, "198.51.100.1")).login("alice").status_code == 429
    # ...but the owner's browser gets in, from any network (a new phone network, travel)
    assert Auth(moved(owner, "192.0.2.44")).login("alice").status_code == 302


def test_sharing_an_address_with_a_guesser_does_not_lock_the_owner_out(make_app):
    """Clients behind one address (a proxy, a carrier NAT): the strict per-address budget of a
    recognised browser is its own."""
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_ADDRESS_FAILURES="3/hour")
    shared = "198.51.100.77"
    owner = client_from(app, shared)
    Auth(owner).register("alice")
    assert Auth(owner).login("alice").status_code == 302
    Auth(owner).logout()
    guesser = client_from(app, shared)
    for _ in range(3):
        assert Auth(guesser).login("alice", "wrong password").status_code == 401
    assert Auth(guesser).login("alice").status_code == 429
    assert Auth(owner).login("alice").status_code == 302


def test_a_recognised_browser_has_a_strict_budget_of_its_own(make_app):
    """A stolen device cookie does not buy unlimited guesses: it is slowed down like an address."""
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_ADDRESS_FAILURES="3/hour")
    browser = client_from(app, "198.51.100.1")
    Auth(browser).register("alice")
    assert Auth(browser).login("alice").status_code == 302
    Auth(browser).logout()
    for n in range(3):
        assert Auth(moved(browser, f"203.0.113.{n}")).login("alice", "wrong").status_code == 401
    blocked = Auth(moved(browser, "203.0.113.50")).login("alice")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_strangers_cannot_make_the_owners_account_pages_answer_429(make_app):
    app = make_app(
        PROXY_FIX_HOPS=1,
        RATELIMIT_ACCOUNT_FAILURES="3/hour",
        RATELIMIT_ACCOUNT_ADDRESS_FAILURES="3/hour",
    )
    owner = client_from(app, "198.51.100.1")
    Auth(owner).signed_in("alice")
    for n in range(4):  # the public username is enough to spend the account's budget
        Auth(client_from(app, f"203.0.113.{n + 1}")).login("alice", "wrong password")
    assert Auth(client_from(app, "203.0.113.99")).login("alice").status_code == 429
    wrong = {"current": "not my password", "password": "a new passphrase", "confirm": ""}
    wrong["confirm"] = wrong["password"]
    for _ in range(3):  # the owner's own session has a budget of its own...
        assert owner.post_form("/account/password", wrong).status_code == 422
    assert owner.post_form("/account/password", wrong).status_code == 429  # ...a thief's too
    Auth(owner).logout()
    assert Auth(owner).login("alice").status_code == 302  # recognised: not locked out
    right = {**wrong, "current": PASSWORD}  # a new session: a budget of its own
    assert owner.post_form("/account/password", right).status_code == 302


def test_a_forged_device_cookie_is_not_recognised(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_FAILURES="2/hour")
    Auth(client_from(app, "198.51.100.1")).register("alice")
    for n in range(2):
        Auth(client_from(app, f"203.0.113.{n + 1}")).login("alice", "wrong password")
    forger = client_from(app, "203.0.113.9")
    forger.set_cookie("__Host-device", "W1siYWJjIiwibm9uY2UiXV0.forged.sig", domain="localhost")
    assert Auth(forger).login("alice").status_code == 429


def test_successful_logins_do_not_count_against_the_account(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_ACCOUNT_FAILURES="2/hour")
    Auth(client_from(app, "198.51.100.1")).register("alice")
    for n in range(4):
        assert Auth(client_from(app, f"203.0.113.{n}")).login("alice").status_code == 302


def test_register_is_rate_limited_per_address(make_app):
    app = make_app(PROXY_FIX_HOPS=1, RATELIMIT_REGISTER="2/minute")
    client = client_from(app, "203.0.113.7")
    assert Auth(client).register("user1").status_code == 302
    assert Auth(client).register("user2").status_code == 302
    assert Auth(client).register("user3").status_code == 429


def test_json_clients_get_a_json_429(make_app):
    app = make_app(RATELIMIT_LOGIN="1/minute")
    client = app.test_client()
    Auth(client).login("nobody", "wrong password")
    token = client.csrf_token("/login")
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": "x", "password": "y" * 8},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 429
    assert response.get_json()["status"] == 429
    assert response.headers["Retry-After"]


def test_a_flood_of_logins_waits_for_a_hashing_slot_then_gets_a_503(make_app):
    app = make_app(BCRYPT_MAX_CONCURRENCY=1, BCRYPT_SLOT_WAIT=0.05)
    client = app.test_client()
    Auth(client).register("alice")
    slots = app.extensions["hashing_slots"]
    slots.acquire()  # another request is hashing
    try:
        response = Auth(client).login("alice")
    finally:
        slots.release()
    assert response.status_code == 503
    # 5 s, which Flask-Limiter re-expresses from its own clock, truncating (so 4 or 5).
    assert int(response.headers["Retry-After"]) >= 4
    assert Auth(client).login("alice").status_code == 302


def test_a_redis_failure_after_the_view_ran_is_a_503_not_a_500(
    make_app, redis_client, redis_app_rules
):
    """Flask-Limiter counts a failed login after the view; its storage error is a 503 too."""
    from urllib.parse import urlsplit

    from flask import request

    app = make_app()
    user = urlsplit(app.config["REDIS_URL"]).username
    failing = []

    @app.after_request
    def redis_fails_now(response):  # runs first: the view is done, the deduction is next
        if failing and request.method == "POST":
            redis_client.execute_command("ACL", "SETUSER", user, "-@all")
        return response

    client = app.test_client()
    Auth(client).register("alice")
    failing.append(True)
    try:
        response = Auth(client).login("alice", "wrong password")
    finally:
        redis_client.execute_command("ACL", "SETUSER", user, *redis_app_rules.split())
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_a_route_without_a_limit_runs_no_limiter_hook_and_limited_ones_still_count(make_app):
    """Limits are per route (decorators): nothing app-wide runs before every request."""
    from app.extensions import limiter

    app = make_app(RATELIMIT_REGISTER="1/minute")
    hooks = app.before_request_funcs.get(None, [])
    assert not [hook for hook in hooks if getattr(hook, "__self__", None) is limiter]
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert "X-RateLimit-Limit" not in client.get("/").headers
    assert Auth(client).register("alice").status_code == 302
    response = Auth(app.test_client()).register("bob")
    assert response.status_code == 429 and response.headers["X-RateLimit-Limit"] == "1"
