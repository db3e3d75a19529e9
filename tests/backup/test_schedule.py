"""backup/schedule.py: the backup service's jobs and when they run (cron, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_defaults_parse_into_a_weekly_full_a_nightly_differential_and_a_restore_test():
    jobs = schedule.jobs({})
    assert [job.name for job in jobs] == ["full", "diff", "restore-test"]
    # 2026-12-05 is a Saturday: the differential at 01:00, the full on Sunday at 01:00.
    assert schedule.due(jobs, at("2026-12-05T00:30:00")) == (at("2026-12-05T01:00:00"), ["diff"])
    assert schedule.due(jobs, at("2026-12-05T01:00:00")) == (
        at("2026-12-05T04:00:00"),
        ["restore-test"],
    )
    assert schedule.due(jobs, at("2026-12-05T04:00:00")) == (at("2026-12-06T01:00:00"), ["full"])


def test_a_full_and_a_differential_due_together_run_the_full_alone():
    jobs = schedule.jobs({"BACKUP_FULL_SCHEDULE": "0 2 * * *", "BACKUP_DIFF_SCHEDULE": "0 * * * *"})
    assert schedule.due(jobs, at("2026-12-02T01:30:00")) == (at("2026-12-02T02:00:00"), ["full"])
    assert schedule.due(jobs, at("2026-12-02T02:00:00")) == (at("2026-12-02T03:00:00"), ["diff"])


def test_times_are_utc_whatever_the_zone_of_now():
    jobs = schedule.jobs({"RESTORE_TEST_SCHEDULE": "off", "BACKUP_DIFF_SCHEDULE": "off"})
    paris = datetime.fromisoformat("2026-12-06T01:30:00+01:00")  # 00:30 UTC, a Sunday
    assert schedule.due(jobs, paris) == (at("2026-12-06T01:00:00"), ["full"])


def test_off_turns_a_job_off_and_empty_means_the_default():
    jobs = schedule.jobs({"RESTORE_TEST_SCHEDULE": "off", "BACKUP_DIFF_SCHEDULE": " "})
    assert [(job.name, job.cron) for job in jobs] == [
        ("full", "0 1 * * 0"),
        ("diff", "0 1 * * 1-6"),
    ]


@pytest.mark.parametrize("bad", ["daily", "0 1 * *", "61 1 * * *", "0 1 * * * *", "@daily"])
def test_a_bad_setting_is_refused_with_its_name(bad):
    with pytest.raises(schedule.ScheduleError, match="BACKUP_DIFF_SCHEDULE=") as refused:
        schedule.jobs({"BACKUP_DIFF_SCHEDULE": bad})
    assert "\n" not in str(refused.value)


def test_every_job_off_is_refused_when_asked_what_is_due():
    off = {name: "off" for name, _ in schedule.DEFAULTS.values()}
    assert schedule.jobs(off) == []
    with pytest.raises(schedule.ScheduleError):
        schedule.due([], at("2026-12-02T00:00:00"))
