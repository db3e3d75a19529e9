"""Every string a model stores is bounded by its column: nothing can make PostgreSQL refuse it."""

from __future__ import annotations

import app.models  # noqa: F401 (registers the models)
import pytest
import sqlalchemy as sa
from app.extensions import db

sa.orm.configure_mappers()  # installs the cut on every String attribute (models.py)

STRING_COLUMNS = [
    (mapper.class_, attribute.key, attribute.columns[0].type.length)
    for mapper in db.Model.registry.mappers
    for attribute in mapper.column_attrs
    if isinstance(attribute.columns[0].type, sa.String) and attribute.columns[0].type.length
]


def test_the_walk_finds_the_request_derived_columns():
    names = {f"{cls.__tablename__}.{key}" for cls, key, _ in STRING_COLUMNS}
    assert {"auth_events.device", "auth_events.ip", "remembered_devices.label"} <= names
    assert {"users.username", "people.name", "people.email"} <= names


@pytest.mark.parametrize(
    ("model", "key", "length"),
    STRING_COLUMNS,
    ids=[f"{cls.__tablename__}.{key}" for cls, key, _ in STRING_COLUMNS],
)
def test_every_string_column_cuts_what_it_is_given_to_its_length(app, model, key, length):
    with app.app_context():
        instance = model()
        setattr(instance, key, "\u00e9" * (length + 50))  # characters, as PostgreSQL counts
        assert getattr(instance, key) == "\u00e9" * length


def test_every_string_column_is_bounded():
    """A plain VARCHAR without a length (or TEXT) must be a decision, listed here."""
    unbounded = {
        f"{mapper.class_.__tablename__}.{attribute.key}"
        for mapper in db.Model.registry.mappers
        for attribute in mapper.column_attrs
        if isinstance(attribute.columns[0].type, sa.String) and not attribute.columns[0].type.length
    }
    assert unbounded == {"people.notes"}  # TEXT, bounded by MAX_CONTENT_LENGTH (1 MiB)
