"""backupctl check-target: `make restore TIME=...` refuses, in one line, what it cannot do."""

from __future__ import annotations

from datetime import UTC, datetime

import backupctl
import pytest

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# As `pgbackrest info --output=json` lists them: the oldest ended 2026-12-01T01:00:30Z.
BACKUPS = [
    {"type": "full", "timestamp": {"start": 1796086800, "stop": 1796086830}},
    {"type": "diff", "timestamp": {"start": 1796173200, "stop": 1796173210}},
]


def test_a_time_between_the_oldest_backup_and_now_becomes_pgbackrests_target_in_utc():
    assert backupctl.check_target("2026-12-01T23:00:00Z", BACKUPS, NOW) == (
        "2026-12-01 23:00:00.000000+00"
    )
    # Another zone is converted; fractions of a second are kept (a restore to 23:00:00.5
    # keeps what was committed at 23:00:00.4).
    assert backupctl.check_target("2026-12-02T00:00:00.5+01:00", BACKUPS, NOW) == (
        "2026-12-01 23:00:00.500000+00"
    )
    assert backupctl.check_target("2026-12-01T01:00:30Z", BACKUPS, NOW)  # the oldest's end


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2026-12-02T12:00:01Z", "is in the future"),
        ("2026-12-01T01:00:29Z", "is before the oldest backup, which ended 2026-12-01T01:00:30Z"),
        ("2026-11-01", "has no time zone"),
        ("2026-12-01T23:00:00", "has no time zone"),
        ("yesterday", "is not a time"),
        ("", "is not a time"),
        ("2026-13-01T00:00:00Z", "is not a time"),
    ],
)
def test_a_time_it_cannot_restore_to_is_refused_with_one_line(given, says):
    with pytest.raises(ValueError, match=says) as refused:
        backupctl.check_target(given, BACKUPS, NOW)
    assert "\n" not in str(refused.value)


def test_an_empty_repository_says_to_take_a_backup_first():
    with pytest.raises(ValueError, match="no backup yet"):
        backupctl.check_target("2026-12-01T23:00:00Z", [], NOW)
    failed = [{**BACKUPS[0], "error": True}]
    with pytest.raises(ValueError, match="no backup yet"):
        backupctl.check_target("2026-12-01T23:00:00Z", failed, NOW)


def test_the_command_prints_the_refusal_on_stderr_and_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(backupctl, "info", lambda: {"name": "db", "backup": BACKUPS})
    assert backupctl.main(["check-target", "2999-01-01T00:00:00Z"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("restore refused: TIME='2999-01-01T00:00:00Z' is in the future")
    assert err.count("\n") == 1


def test_serve_with_a_bad_schedule_stops_at_once_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("BACKUP_FULL_SCHEDULE", "every sunday")
    assert backupctl.main(["serve"]) == 78
    _, err = capsys.readouterr()
    assert err == (
        "backup: configuration error: BACKUP_FULL_SCHEDULE='every sunday' is not a cron"
        " expression of five fields (minute hour day-of-month month day-of-week, in UTC),"
        " or `off`\n"
    )
