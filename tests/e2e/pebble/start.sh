#!/usr/bin/env bash
# Starts Pebble with a fresh listener certificate for "pebble" and "localhost". The
# certificate goes to /pebble-ca (shared with the acme service, which trusts it through
# REQUESTS_CA_BUNDLE); its key stays in this container's tmpfs. DNS for the names it
# validates comes from challtestsrv.
set -Eeuo pipefail
mkdir -p /run/pebble
(
	umask 077
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=pebble" -addext "subjectAltName=DNS:pebble,DNS:localhost" \
		-keyout /run/pebble/listener.key -out /pebble-ca/listener.pem.tmp 2>/dev/null
)
chmod 0644 /pebble-ca/listener.pem.tmp
mv /pebble-ca/listener.pem.tmp /pebble-ca/listener.pem
exec pebble -config /etc/pebble/config.json -dnsserver "${PEBBLE_DNS:?}"
