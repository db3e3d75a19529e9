#!/usr/bin/env bash
# Reloads nginx when the certificate or key it serves ($TLS_CERT, $TLS_KEY) changes, e.g.
# after the acme service renewed it. `nginx -s reload` is graceful: new workers take the new
# certificate, old ones finish their requests, no connection is dropped (a restart would).
# Polls every CERT_WATCH_INTERVAL seconds: the image has no inotify tools, and a certificate
# renewed 30 days before expiry needs no faster reaction.
set -Eeuo pipefail

cert="${TLS_CERT:?}" key="${TLS_KEY:?}"
interval="${CERT_WATCH_INTERVAL:-30}"

# A missing file (mid-replacement, or no certificate yet) is a fingerprint like any other.
fingerprint() { cat -- "$cert" "$key" 2>/dev/null | cksum || true; }

seen="$(fingerprint)"
rejected=""
echo "cert-watch: watching $cert and $key every ${interval}s"
while sleep "$interval"; do
	now="$(fingerprint)"
	# Unchanged, or already refused by nginx -t (retried when the files change again).
	[ "$now" != "$seen" ] && [ "$now" != "$rejected" ] || continue
	# The key and the certificate are replaced one after the other: wait until both are.
	sleep 1
	[ "$(fingerprint)" = "$now" ] || continue
	if nginx -t -q; then
		if nginx -s reload; then
			seen="$now"
			echo "cert-watch: $cert changed; nginx reloaded (graceful)"
		fi
	else
		# nginx -t said why above (a key that does not match the certificate?). A reload
		# would fail the same way: keep serving the running configuration.
		rejected="$now"
		echo "cert-watch: $cert changed but nginx -t rejects it; still serving the old one" >&2
	fi
done
