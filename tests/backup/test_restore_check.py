"""backup/restore_check.py: what the restore test calls the head, and what it calls plausible."""

from __future__ import annotations

from pathlib import Path

import restore_check
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parents[2] / "web" / "migrations"


def test_the_head_is_alembics_head_of_the_migrations_the_image_copies():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    [head] = ScriptDirectory.from_config(config).get_heads()
    assert restore_check.migration_head(MIGRATIONS / "versions") == head


def test_two_heads_are_an_error_not_a_guess(tmp_path):
    for name, down in (("a", None), ("b", "a"), ("c", "a")):
        parent = f'"{down}"' if down else "None"
        (tmp_path / f"{name}.py").write_text(f'revision = "{name}"\ndown_revision = {parent}\n')
    try:
        restore_check.migration_head(tmp_path)
    except RuntimeError as error:
        assert "['b', 'c']" in str(error)
    else:
        raise AssertionError("two heads were accepted")


def test_rows_are_plausible_unless_a_table_vanished_or_lost_more_than_half():
    before = {"users": 100, "people": 40, "alembic_version": 1}
    assert (
        restore_check.implausible({"users": 120, "people": 20, "alembic_version": 1}, before, 20)
        == []
    )
    assert restore_check.implausible(
        {"users": 49, "people": 40, "alembic_version": 1}, before, 20
    ) == ["users has 49 rows, 100 at the last test"]
    assert restore_check.implausible({"users": 100, "alembic_version": 1}, before, 20) == [
        "table people is missing"
    ]
    # Small tables come and go: below the minimum, no count is judged.
    assert restore_check.implausible({"users": 0, "people": 40}, {"users": 19}, 20) == []
    assert restore_check.implausible({"users": 0}, {}, 20) == []  # the first test
