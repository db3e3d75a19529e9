"""DB_POOL_SIZE and DB_MAX_OVERFLOW bound each worker's PostgreSQL connections (the budget)."""

from __future__ import annotations

from typing import Any

import pytest
from app.config import ConfigError, load_config
from app.extensions import db


def test_the_pool_has_the_configured_size_and_overflow(monkeypatch, make_app: Any):
    monkeypatch.setenv("DB_POOL_SIZE", "2")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "1")
    app = make_app()
    with app.app_context():
        pool = db.engine.pool
        assert pool.size() == 2
        held = [db.engine.connect() for _ in range(3)]  # real connections to PostgreSQL
        try:
            assert pool.overflow() == 1  # the third is the one overflow connection allowed
        finally:
            for connection in held:
                connection.close()


def test_the_defaults_are_sqlalchemys_own():
    options = load_config({})["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"]) == (5, 10)


@pytest.mark.parametrize(("name", "value"), [("DB_POOL_SIZE", "0"), ("DB_MAX_OVERFLOW", "x")])
def test_a_bad_value_is_one_clear_error(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})
