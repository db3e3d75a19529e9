#!/usr/bin/env bash
# pgbouncer-healthcheck: exit 0 when PgBouncer accepts a TCP connection on its port. Says
# nothing about PostgreSQL behind it (web's /readyz does): a database outage must not get
# every PgBouncer task restarted.
set -Eeuo pipefail
port="${PGBOUNCER_LISTEN_PORT:-6432}"
# shellcheck disable=SC2016 # $1 is the inner bash's argument, not this script's
exec timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$port"
