"""PostgreSQL vanishing at any point of a request answers 503 with Retry-After, then heals.

The app reaches the real test PostgreSQL through a TCP proxy the test cuts: before the
request, in the middle of its transaction, or at its commit, as a crash or restart would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from app.extensions import db
from helpers import Auth, Client
from sqlalchemy.engine import make_url
from tcp_proxy import Proxy, proxy_to


@pytest.fixture
def proxy(base_config: dict[str, Any]) -> Iterator[Proxy]:
    url = make_url(base_config["SQLALCHEMY_DATABASE_URI"])
    with proxy_to(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


@pytest.fixture
def app(make_app: Any, base_config: dict[str, Any], proxy: Proxy) -> Any:
    url = make_url(base_config["SQLALCHEMY_DATABASE_URI"]).set(port=proxy.port)
    return make_app(SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False))


@pytest.fixture
def signed_in(app: Any) -> Client:
    client = app.test_client()
    Auth(client).register("alice")
    Auth(client).login("alice")
    return client  # type: ignore[return-value]


def assert_503(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert int(response.headers["Retry-After"]) > 0


def people_count(app: Any) -> int:
    with app.app_context():
        return db.session.scalar(sa.text("SELECT count(*) FROM people")) or 0


def cut_on(app: Any, proxy: Proxy, event: str) -> None:
    """Cut the proxy the first time the engine fires `event`."""
    with app.app_context():
        engine = db.engine

    fired = []

    def cut(*_: Any) -> None:
        if not fired:
            fired.append(event)
            proxy.cut()

    sa.event.listen(engine, event, cut)


def test_database_down_before_the_request_is_a_503_page_then_heals(app, signed_in, proxy):
    proxy.cut()
    assert_503(signed_in.get("/dashboard"))
    as_json = signed_in.get("/dashboard", headers={"Accept": "application/json"})
    assert_503(as_json)
    assert as_json.get_json()["status"] == 503
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["postgres"] == "unavailable"

    proxy.heal()
    assert signed_in.get("/dashboard").status_code == 200  # no restart needed
    assert app.test_client().get("/readyz").status_code == 200


def test_connection_lost_mid_transaction_is_a_503(app, signed_in, proxy):
    cut_on(app, proxy, "after_cursor_execute")
    assert_503(signed_in.post_form("/people/new", {"name": "Ada"}))
    proxy.heal()
    assert signed_in.get("/people").status_code == 200


def test_connection_lost_at_commit_is_a_503_and_stores_nothing(app, signed_in, proxy):
    before = people_count(app)
    cut_on(app, proxy, "commit")
    assert_503(signed_in.post_form("/people/new", {"name": "Ada"}))
    proxy.heal()
    assert people_count(app) == before
    assert signed_in.get("/people").status_code == 200


def test_database_down_with_only_a_remember_me_cookie_is_a_503(app, proxy):
    client = app.test_client()
    Auth(client).register("bob")
    Auth(client).login("bob", remember=True)
    remember = client.get_cookie(app.config["REMEMBER_COOKIE_NAME"])
    assert remember is not None
    browser = app.test_client()  # a new browser session: only the remember-me cookie
    browser.set_cookie(remember.key, remember.value)
    proxy.cut()
    assert_503(browser.get("/dashboard"))
    proxy.heal()
    assert browser.get("/dashboard").status_code == 200
