"""Every error is a page of its own (or JSON for JSON clients), never a stack trace."""

from __future__ import annotations

import pytest
from werkzeug.exceptions import Forbidden

JSON = {"Accept": "application/json"}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "Page not found" in body and 'href="/"' in body


def test_unknown_user_profile_is_a_friendly_404(client):
    response = client.get("/user/nobody")
    assert response.status_code == 404
    assert "There is no user called “nobody”." in response.get_data(as_text=True)


def test_profile_of_a_registered_user(client, auth):
    auth.register("Alice")
    response = client.get("/user/alice")
    assert response.status_code == 200
    assert "<h1>Alice</h1>" in response.get_data(as_text=True)


def test_wrong_method_is_a_405_page_with_allow_header(client):
    response = client.delete("/login")
    assert response.status_code == 405
    assert "That method is not allowed here" in response.get_data(as_text=True)
    assert "POST" in response.headers["Allow"]


def test_too_large_body_is_a_413_page(client):
    response = client.post("/login", data={"username": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "Requests are limited to 1024 KiB" in response.get_data(as_text=True)


def test_json_clients_get_json_errors(client):
    response = client.get("/no/such/page", headers=JSON)
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "Not Found",
        "status": 404,
        "message": response.get_json()["message"],
    }
    assert client.post("/login", headers=JSON).get_json()["status"] == 400


def test_unexpected_exception_is_a_500_page_without_traceback(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/forbidden")
    def forbidden():
        raise Forbidden()

    client = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side" in body
    assert "secret internals" not in body and "Traceback" not in body
    assert client.get("/boom", headers=JSON).get_json()["status"] == 500
    assert "You may not see this page" in client.get("/forbidden").get_data(as_text=True)


@pytest.mark.parametrize("code", [400, 403, 404, 405, 413, 429, 500, 503])
def test_each_error_has_its_own_template(app, code):
    import os

    assert os.path.exists(os.path.join(app.root_path, "templates", "errors", f"{code}.html"))


def test_untrusted_host_is_a_400(make_app):
    app = make_app(APP_ENV="production", BCRYPT_LOG_ROUNDS=12, TRUSTED_HOSTS_EXTRA=["example.com"])
    client = app.test_client()
    assert client.get("/healthz", base_url="https://evil.example").status_code == 400
    assert client.get("/healthz", base_url="https://example.com").status_code == 200
    assert client.get("/healthz", base_url="http://localhost:8000").status_code == 200


def test_connections_postgresql_dropped_are_replaced_before_use(make_app, clock):
    """A restart of PostgreSQL kills every pooled connection; the next request still works."""
    import sqlalchemy as sa
    from app.extensions import db
    from helpers import Auth

    app = make_app()
    client = app.test_client()
    Auth(client).signed_in("alice")
    assert client.get("/dashboard").status_code == 200
    with app.app_context():
        engine = db.engine
    with sa.create_engine(engine.url, poolclass=sa.pool.NullPool).connect() as admin:
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
        )
    clock.advance(app.config["DB_PING_AFTER_IDLE"])  # PostgreSQL took a moment to return
    # The idle connection is pinged and replaced: not even one request fails.
    assert client.get("/dashboard").status_code == 200
