#!/usr/bin/env bash
# make restore [TIME=2026-12-01T23:00:00Z]: bring the database back from the pgBackRest
# repository (the `backup` service), to its latest state or to a moment, and end every
# session. docs/operations.md, "Back up and restore".
#
#   1. check TIME against the repository (one line and exit 2 if it cannot be had);
#   2. stop everything that writes (web, worker, housekeeping), then `pgbackrest check`:
#      PostgreSQL switches to a new WAL segment and waits until the repository holds it,
#      so every transaction committed before the restore began is in the repository;
#   3. stop db, restore into its volume (the `restore` service), start db: it replays the
#      archived WAL (to TIME, then promotes onto a new timeline) and archives again;
#   4. migrate, end every session and remember-me device, start everything again.
set -euo pipefail

read -r -a compose <<<"${COMPOSE:-docker compose}"
when="${TIME:-}"

target=""
if [[ -n "$when" ]]; then
    target="$("${compose[@]}" exec -T backup backupctl check-target "$when")" || exit 2
fi

"${compose[@]}" stop web worker housekeeping
if [[ "$("${compose[@]}" ps --status running --quiet db)" ]]; then
    echo "restore: archiving the last WAL (every committed transaction reaches the repository)"
    # One commit now, after TIME: recovery to a time stops at the first commit past it, and
    # PostgreSQL refuses to finish a recovery that never met one (a quiet site). Then `check`
    # switches to a new WAL segment and waits until the repository holds it.
    # shellcheck disable=SC2016 # expanded by the container's shell
    "${compose[@]}" exec -T --user postgres db sh -ec \
        'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atqc "SELECT txid_current()" >/dev/null
         pgbackrest check'
else
    # A lost disk: what was not archived yet is gone; the restore brings back the rest.
    echo "restore: db is not running: restoring what the repository holds" >&2
fi
"${compose[@]}" stop db-agent db
"${compose[@]}" run --rm --no-deps restore ${target:+"$target"}
if ! "${compose[@]}" up -d --wait db db-agent; then
    echo "restore: db did not start: \`make logs SERVICE=db\`. \"recovery ended before configured" \
        "recovery target was reached\" means no archived transaction came after TIME (the" \
        "database was down): \`make restore\` restores the latest state instead" >&2
    exit 1
fi
"${compose[@]}" run --rm migrate
# The accounts that sessions and remember-me cookies vouch for may have changed: end them
# all before web serves again.
"${compose[@]}" run --rm migrate flask sessions end --all
"${compose[@]}" up -d --wait
echo "restored to ${when:-the latest state}; every session and remember-me cookie was ended: everyone signs in again"
