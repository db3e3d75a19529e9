"""When the backup service's jobs run: cron expressions from the settings, in UTC.

BACKUP_FULL_SCHEDULE, BACKUP_DIFF_SCHEDULE and RESTORE_TEST_SCHEDULE hold standard
five-field cron expressions (croniter, Debian's python3-croniter); empty means the default
below and `off` turns a job off.
When a full and a differential backup fall due together, only the full one runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

# job -> (setting, default). A weekly full (Sunday 01:00 UTC), a differential every other
# night, the restore test every morning: the newest backup is never more than a day old.
DEFAULTS = {
    "full": ("BACKUP_FULL_SCHEDULE", "0 1 * * 0"),
    "diff": ("BACKUP_DIFF_SCHEDULE", "0 1 * * 1-6"),
    "restore-test": ("RESTORE_TEST_SCHEDULE", "0 4 * * *"),
}


class ScheduleError(ValueError):
    """A setting that is not a cron expression: the message names it."""


@dataclass(frozen=True)
class Job:
    name: str
    cron: str

    def next_after(self, moment: datetime) -> datetime:
        return croniter(self.cron, moment).get_next(datetime)


def jobs(environ: Mapping[str, str] = os.environ) -> list[Job]:
    """The scheduled jobs from the settings; raises ScheduleError naming a bad one."""
    found = []
    for name, (setting, default) in DEFAULTS.items():
        cron = environ.get(setting, "").strip() or default
        if cron.lower() == "off":
            continue
        if not croniter.is_valid(cron) or len(cron.split()) != 5:
            raise ScheduleError(
                f"{setting}={cron!r} is not a cron expression of five fields"
                " (minute hour day-of-month month day-of-week, in UTC), or `off`"
            )
        found.append(Job(name, cron))
    return found


def due(schedule: list[Job], now: datetime) -> tuple[datetime, list[str]]:
    """The next moment after `now` when something runs, and what runs then."""
    now = now.astimezone(UTC)
    moments = {job.name: job.next_after(now) for job in schedule}
    if not moments:
        raise ScheduleError("every job is off")
    first = min(moments.values())
    names = [name for name, moment in moments.items() if moment == first]
    if "full" in names and "diff" in names:
        names.remove("diff")  # a full backup is everything a differential would have been
    return first, names
