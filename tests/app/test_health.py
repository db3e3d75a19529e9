"""Liveness and readiness probes."""

from __future__ import annotations

from app.extensions import db
from flask_migrate import downgrade, upgrade


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
    assert response.get_json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "schema": "ok"},
    }


def test_readyz_names_the_failing_dependency(make_app):
    no_redis = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client().get("/readyz")
    assert no_redis.status_code == 503
    assert no_redis.get_json()["checks"]["redis"] == "unavailable"
    no_db = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://x@127.0.0.1:1/x")
    response = no_db.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {
        "postgres": "unavailable",
        "redis": "ok",
        "schema": "unknown",
    }


def test_readyz_is_503_while_gunicorn_drains(make_app, tmp_path):
    flag = tmp_path / "draining"
    client = make_app(DRAIN_FILE=str(flag)).test_client()
    assert client.get("/readyz").status_code == 200
    flag.touch()  # what gunicorn.conf.py does on SIGTERM
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "draining"
    assert client.get("/healthz").status_code == 200  # still alive: it keeps serving


def test_readyz_is_503_while_the_database_is_behind_the_image(app):
    client = app.test_client()
    with app.app_context():
        downgrade(revision="-1")
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["schema"] == "behind"
    finally:
        with app.app_context():
            upgrade()
    assert client.get("/readyz").status_code == 200


def test_readyz_stays_ready_when_a_newer_image_migrated_the_database(app):
    # Expand/contract: old replicas keep serving after `make deploy` ran newer migrations.
    with app.app_context():
        head = db.session.scalar(db.text("SELECT version_num FROM alembic_version"))
        db.session.execute(db.text("UPDATE alembic_version SET version_num = '9999_newer'"))
        db.session.commit()
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 200, response.get_json()
    finally:
        with app.app_context():
            db.session.execute(db.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
            db.session.commit()
