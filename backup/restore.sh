#!/bin/sh
# pgbackrest-restore [TIME]: restore the `db` stanza into PGDATA from the backup repository
# (reached over TLS, settings in the environment: docker-compose.yml, service `restore`).
# Without TIME: the latest state (the newest backup, then every archived WAL). With TIME
# (ISO 8601, checked by `backupctl check-target` first): the state at that moment, then
# PostgreSQL promotes and starts a new timeline. Runs as postgres with db stopped.
set -eu
set -- "${1:-}"
target="$1"
set -- --stanza="${PGBACKREST_STANZA:?}"
# An existing cluster is restored in place, file by file (only what differs is copied);
# an empty volume (a lost disk) gets every file.
if [ -f "${PGDATA:?}/PG_VERSION" ]; then
    set -- "$@" --delta
fi
if [ -n "$target" ]; then
    set -- "$@" --type=time "--target=$target" --target-action=promote
fi
exec pgbackrest "$@" restore
