#!/usr/bin/env bash
# Runs at container start (/docker-entrypoint.d/, after the templates are rendered).
# Uses the certificate at $TLS_CERT/$TLS_KEY when one is mounted; otherwise makes a
# self-signed one for $SERVER_NAME, localhost and 127.0.0.1 and keeps it in the `tls`
# volume, remaking it only when it is about to expire or SERVER_NAME changed.
set -Eeuo pipefail

cert="${TLS_CERT:?}" key="${TLS_KEY:?}" name="${SERVER_NAME:-localhost}"
marker="$(dirname "$cert")/.self-signed"   # present only next to a cert made here

if [ -s "$cert" ] && [ -s "$key" ] && [ ! -e "$marker" ]; then
	echo "$0: using the mounted certificate $cert"
	exit 0
fi
if [ -s "$cert" ] && [ -s "$key" ] && [ "$(cat "$marker")" = "$name" ] \
	&& openssl x509 -in "$cert" -noout -checkend $((7 * 86400)) >/dev/null; then
	echo "$0: reusing the self-signed certificate for $name"
	exit 0
fi

# An IP address goes in the SAN as IP:, a host name as DNS:.
if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="IP:$name"; else san="DNS:$name"; fi
[ "$name" = localhost ] || san="$san,DNS:localhost"
san="$san,IP:127.0.0.1,IP:::1"

echo "$0: no certificate mounted; making a self-signed one for $name (browsers will warn)"
mkdir -p "$(dirname "$cert")" "$(dirname "$key")"
(
	umask 077   # the key is readable by root (the nginx master) only
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
		-subj "/CN=$name" -addext "subjectAltName=$san" \
		-addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
		-addext "extendedKeyUsage=serverAuth" \
		-keyout "$key.tmp" -out "$cert.tmp" 2>/dev/null
)
chmod 0644 "$cert.tmp"
mv "$key.tmp" "$key" && mv "$cert.tmp" "$cert"
printf '%s' "$name" > "$marker"
