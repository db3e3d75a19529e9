#!/usr/bin/env bash
# Render pgbouncer.ini and the auth file into /tmp (a tmpfs / emptyDir: the root filesystem
# may be read-only) from the environment, then exec pgbouncer as PID 1. Passwords are read
# from files, written only to a 0600 file, and never echoed or put in argv.
#
#   PGBOUNCER_DB_HOST (db)  PGBOUNCER_DB_PORT (5432)  PGBOUNCER_DB_NAME (app)
#   PGBOUNCER_POOL_MODE (transaction)  PGBOUNCER_DEFAULT_POOL_SIZE (20)
#   PGBOUNCER_MAX_CLIENT_CONN (500)  PGBOUNCER_MAX_DB_CONNECTIONS (60)
#   PGBOUNCER_MAX_PREPARED_STATEMENTS (200)
#   PGBOUNCER_USERS  space-separated name=/path/to/password-file pairs (required)
#   PGBOUNCER_RUN_DIR (/tmp/pgbouncer) where the files are rendered
set -Eeuo pipefail

die() { echo >&2 "pgbouncer-entrypoint: error: $*"; exit 1; }

# number NAME DEFAULT: the variable's value (or the default), which must be a whole number.
number() {
	local value="${!1:-$2}"
	[[ "$value" =~ ^[0-9]+$ ]] || die "$1 must be a whole number, got '$value'"
	printf '%s' "$value"
}

db_host="${PGBOUNCER_DB_HOST:-db}"
db_name="${PGBOUNCER_DB_NAME:-app}"
pool_mode="${PGBOUNCER_POOL_MODE:-transaction}"
db_port="$(number PGBOUNCER_DB_PORT 5432)"
pool_size="$(number PGBOUNCER_DEFAULT_POOL_SIZE 20)"
max_client="$(number PGBOUNCER_MAX_CLIENT_CONN 500)"
max_db="$(number PGBOUNCER_MAX_DB_CONNECTIONS 60)"
max_prepared="$(number PGBOUNCER_MAX_PREPARED_STATEMENTS 200)"
listen_port="$(number PGBOUNCER_LISTEN_PORT 6432)"
# Names and hosts go into an ini file: allow only characters that cannot break its syntax.
[[ "$db_host" =~ ^[A-Za-z0-9._:-]+$ ]] || die "PGBOUNCER_DB_HOST has unexpected characters"
[[ "$db_name" =~ ^[A-Za-z0-9_]+$ ]] || die "PGBOUNCER_DB_NAME has unexpected characters"
case "$pool_mode" in session | transaction | statement) ;; *)
	die "PGBOUNCER_POOL_MODE must be session, transaction or statement" ;;
esac
[ -n "${PGBOUNCER_USERS:-}" ] || die "PGBOUNCER_USERS is empty: give name=/path/to/password-file pairs"

dir="${PGBOUNCER_RUN_DIR:-/tmp/pgbouncer}"  # a tmpfs in the container; tests point it elsewhere
umask 077
mkdir -p "$dir"
auth="$dir/userlist.txt"
: >"$auth"
for pair in $PGBOUNCER_USERS; do
	name="${pair%%=*}" file="${pair#*=}"
	[ "$name" != "$pair" ] && [ -n "$name" ] && [ -n "$file" ] ||
		die "PGBOUNCER_USERS entry '$pair' is not name=/path/to/password-file"
	[[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || die "user name '$name' has unexpected characters"
	[ -r "$file" ] || die "the password file of '$name' is missing or unreadable: $file"
	password="$(<"$file")"
	[ -n "$password" ] || die "the password file of '$name' is empty: $file"
	# auth_file syntax: "name" "password", a double quote inside doubled. A plain-text
	# password lets PgBouncer do SCRAM both with the client and with PostgreSQL.
	printf '"%s" "%s"\n' "$name" "${password//\"/\"\"}" >>"$auth"
done
unset password

cat >"$dir/pgbouncer.ini" <<INI
[databases]
$db_name = host=$db_host port=$db_port dbname=$db_name

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = $listen_port
; TCP only: no socket file to place
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $auth
pool_mode = $pool_mode
; server connections per user and database
default_pool_size = $pool_size
; all client connections (every web worker's pool)
max_client_conn = $max_client
; server connections to the database, all users together: stay under max_connections
max_db_connections = $max_db
; psycopg 3 prepares statements; PgBouncer tracks them across server connections
max_prepared_statements = $max_prepared
; after PostgreSQL restarts, retry its login after 2 s rather than 15 s: heal quickly
server_login_retry = 2
; a client waits at most this long for a server connection, then gets an error
query_wait_timeout = 30
; logs go to stderr (the container's log); no file, no syslog
logfile =
syslog = 0
; one line per connection is noise at N replicas; errors are still logged
log_connections = 0
log_disconnections = 0
stats_period = 300
INI

exec pgbouncer "$dir/pgbouncer.ini"
