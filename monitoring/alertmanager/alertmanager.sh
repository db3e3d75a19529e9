#!/bin/bash
# Alertmanager's entrypoint: write its configuration from the stack's settings, then run it.
# Alertmanager expands no variable in its file, so the file is rendered here at each start:
#   SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_SECURITY (none, starttls, tls), MAIL_FROM: the same
#     mail settings as the worker's (docker-compose.yml);
#   SMTP_PASSWORD_FILE naming a file (compose: the secrets service's; empty means none), or
#     SMTP_PASSWORD: reaches Alertmanager as a file (smtp_auth_password_file), never in
#     argv, its environment, the rendered file or a log line;
#   ALERT_MAIL_TO: who gets every alert (addresses separated by commas). Empty: nobody, said
#     in one line; Alertmanager still keeps the alerts (API, amtool) and the silences;
#   ALERT_GROUP_WAIT, ALERT_GROUP_INTERVAL, ALERT_REPEAT_INTERVAL: grouping and repeats.
# docs/monitoring.md explains each; tests/images/test_alertmanager_entrypoint.py renders them all.
set -Eeuo pipefail

run_dir="${ALERTMANAGER_RUN_DIR:-/tmp/alertmanager}"  # tmpfs: the root filesystem is read-only
config="$run_dir/alertmanager.yml"

fail() {
	echo "alertmanager: $*" >&2
	exit 1
}

# A YAML double-quoted string; a control character (a newline) could add keys: refused.
quote() {
	local value="$1" name="$2"
	case "$value" in *[[:cntrl:]]*) fail "$name holds a control character" ;; esac
	value="${value//\\/\\\\}"
	printf '"%s"' "${value//\"/\\\"}"
}

# Prometheus' duration syntax (30s, 5m, 4h, 1h30m, 2d): checked here to name the setting.
duration() {
	local value="$1" name="$2"
	[[ "$value" =~ ^([0-9]+(ms|s|m|h|d|w|y))+$ ]] || fail "$name=$value is not a duration (30s, 5m, 4h)"
	printf '%s' "$value"
}

host="${SMTP_HOST:-mail}"
port="${SMTP_PORT:-1025}"
[[ "$port" =~ ^[0-9]+$ ]] || fail "SMTP_PORT=$port is not a port number"
case "${SMTP_SECURITY:-none}" in
	none) require_tls=false ;;
	starttls) require_tls=true ;;
	tls)
		# Alertmanager 0.28 speaks TLS from the first byte on port 465 only (notify/email).
		[[ "$port" == 465 ]] || fail "SMTP_SECURITY=tls needs SMTP_PORT=465 (Alertmanager's only implicit-TLS port); use starttls on $port"
		require_tls=false  # already encrypted: no STARTTLS on top
		;;
	*) fail "SMTP_SECURITY must be none, starttls or tls, not ${SMTP_SECURITY}" ;;
esac
# The app's default sender (web/app/config.py), so alerts come from where other mail does.
sender="${MAIL_FROM:-Flask stack <no-reply@localhost>}"

# Every value checked and quoted before anything is written (a failing $(...) inside echo
# would not stop the script).
smarthost="$(quote "$host:$port" SMTP_HOST)"
from="$(quote "$sender" MAIL_FROM)"
user="$(quote "${SMTP_USER:-}" SMTP_USER)"
to="$(quote "${ALERT_MAIL_TO:-}" ALERT_MAIL_TO)"
group_wait="$(duration "${ALERT_GROUP_WAIT:-30s}" ALERT_GROUP_WAIT)"
group_interval="$(duration "${ALERT_GROUP_INTERVAL:-5m}" ALERT_GROUP_INTERVAL)"
repeat_interval="$(duration "${ALERT_REPEAT_INTERVAL:-4h}" ALERT_REPEAT_INTERVAL)"

mkdir -p "$run_dir"
password_file=""
if [[ -n "${SMTP_PASSWORD_FILE:-}" ]]; then
	[[ -r "$SMTP_PASSWORD_FILE" ]] || fail "SMTP_PASSWORD_FILE=$SMTP_PASSWORD_FILE cannot be read"
	# Empty (compose's file when .env sets no SMTP_PASSWORD): no password, as for the worker.
	if [[ -s "$SMTP_PASSWORD_FILE" ]]; then
		password_file="$(quote "$SMTP_PASSWORD_FILE" SMTP_PASSWORD_FILE)"
	fi
elif [[ -n "${SMTP_PASSWORD:-}" ]]; then
	(umask 077 && printf '%s' "$SMTP_PASSWORD" >"$run_dir/smtp_password")  # builtin: no argv
	password_file="$(quote "$run_dir/smtp_password" ALERTMANAGER_RUN_DIR)"
fi
unset SMTP_PASSWORD  # not in Alertmanager's environment either

{
	echo "# Rendered by alertmanager.sh at start from the stack's settings: edit those, not this."
	echo "global:"
	echo "  smtp_smarthost: $smarthost"
	echo "  smtp_from: $from"
	echo "  smtp_require_tls: $require_tls"
	if [[ -n "${SMTP_USER:-}" ]]; then
		echo "  smtp_auth_username: $user"
		[[ -z "$password_file" ]] || echo "  smtp_auth_password_file: $password_file"
	fi
	echo "route:"
	echo "  receiver: mail"
	# One message per alert name: three targets down at once are one mail listing the three.
	echo "  group_by: [alertname]"
	echo "  group_wait: $group_wait"
	echo "  group_interval: $group_interval"
	echo "  repeat_interval: $repeat_interval"
	echo "receivers:"
	echo "  - name: mail"
	if [[ -n "${ALERT_MAIL_TO:-}" ]]; then
		echo "    email_configs:"
		echo "      - to: $to"
		echo "        send_resolved: true"
		# Beside the default HTML body, plain text: for any mail client, and for grep.
		cat <<'TEMPLATE'
        text: |
          {{ range .Alerts }}[{{ .Status | toUpper }}] {{ .Labels.alertname }}: {{ .Annotations.summary }}
            since {{ .StartsAt.Format "2006-01-02 15:04:05 MST" }}
            labels:{{ range .Labels.SortedPairs }} {{ .Name }}={{ .Value }}{{ end }}

          {{ end }}What each alert means and what to do: docs/monitoring.md, "Alerts".
TEMPLATE
	fi
} >"$config"

if [[ -z "${ALERT_MAIL_TO:-}" ]]; then
	echo "alertmanager: ALERT_MAIL_TO is empty: alerts are mailed to nobody (set it in .env)" >&2
else
	echo "alertmanager: every alert is mailed to $ALERT_MAIL_TO through $host:$port (${SMTP_SECURITY:-none})" >&2
fi
exec prometheus-alertmanager --config.file="$config" "$@"
