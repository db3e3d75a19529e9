"""Liveness and readiness probes."""

from __future__ import annotations


def test_healthz_touches_neither_database_nor_redis(make_app):
    app = make_app(
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_200_when_both_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_readyz_names_the_failing_dependency(make_app):
    no_redis = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")
    assert no_redis.status_code == 503
    assert no_redis.get_json()["checks"] == {"postgres": "ok", "redis": "unavailable"}
    no_db = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://x@127.0.0.1:1/x")
    response = no_db.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"postgres": "unavailable", "redis": "ok"}
