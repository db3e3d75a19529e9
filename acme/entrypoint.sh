#!/usr/bin/env bash
# The acme service: gets a certificate for $SERVER_NAME from an ACME CA (HTTP-01, answered by
# nginx from the shared webroot), installs it where nginx reads it (acme-deploy), then checks
# twice a day whether it is due for renewal (acme-renew). nginx notices the new files and
# reloads itself (nginx/cert-watch.sh): this container needs no Docker socket.
set -Eeuo pipefail

name="${SERVER_NAME:-localhost}"
webroot=/var/www/acme
retry="${ACME_RETRY_SECONDS:-3600}"       # after a failed issuance: the CA allows 5 an hour
interval="${ACME_RENEW_SECONDS:-43200}"   # twice a day, as Let's Encrypt recommends
jitter="${ACME_RENEW_JITTER_SECONDS:-3600}"  # spreads many hosts' checks over an hour

# PID 1 gets SIGTERM from `docker stop`: end at once instead of waiting out a sleep.
sleeper=""
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
pause() { sleep "$1" & sleeper=$!; wait "$sleeper"; sleeper=""; }

if [ -z "${ACME_EMAIL:-}" ]; then
	echo "acme: ACME_EMAIL is not set: no certificate is requested; nginx keeps its own"
	while true; do pause 86400; done
fi
if ! acme-config public-name "$name"; then
	echo "acme: no certificate is requested for $name; nginx keeps its self-signed one"
	while true; do pause 86400; done
fi
# A contradiction in the settings stops the container: better loud than the wrong CA.
directory="$(acme-config directory)"

# `certonly --keep-until-expiring` asks the CA only when no certificate exists or the one
# held is due for renewal (30 days before expiry), so restarts cost no rate limit. Switching
# CA (staging -> production) is the exception: the held one is from the wrong CA.
issue() {
	local -a force=()
	local conf="/etc/letsencrypt/renewal/$name.conf"
	if [ -f "$conf" ] && ! grep -qxF "server = $directory" "$conf"; then
		echo "acme: the certificate held for $name is from another CA; asking $directory"
		force=(--force-renewal)
	fi
	certbot certonly --non-interactive --agree-tos --no-eff-email --email "$ACME_EMAIL" \
		--server "$directory" --webroot --webroot-path "$webroot" \
		--cert-name "$name" --domains "$name" --keep-until-expiring "${force[@]}"
}

echo "acme: certificate for $name from $directory (HTTP-01 through nginx on port 80)"
until issue; do
	echo "acme: no certificate for $name yet (see above); next try in ${retry}s." \
		"nginx serves the current certificate meanwhile"
	pause "$retry"
done
acme-deploy

while true; do
	pause $((interval + RANDOM % (jitter + 1)))
	acme-renew || echo "acme: renewal check failed (see above); next one in about ${interval}s"
done
