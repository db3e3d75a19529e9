#!/usr/bin/env bash
# Runs at container start (/docker-entrypoint.d/, after the templates are rendered).
# TRUSTED_PROXIES: the addresses or CIDRs of a proxy or load balancer in front of nginx,
# separated by commas or spaces; empty (the default) means none. From those peers only,
# nginx takes the client's address from X-Forwarded-For (ngx_http_realip_module): the
# rightmost address that is not itself a trusted proxy, so entries a client forged to the
# left are ignored. Everything keyed on the client then sees the real one: the access log,
# the auth rate limit, and X-Forwarded-For to the app (which trusts nginx, one hop).
set -Eeuo pipefail

out="${REAL_IP_CONF:-/etc/nginx/conf.d/real-ip.conf}"
entries="$(printf '%s' "${TRUSTED_PROXIES:-}" | tr ',' ' ')"

{
	echo "# generated at start from TRUSTED_PROXIES by $(basename "$0"); do not edit"
	count=0
	for entry in $entries; do
		# An address or CIDR, nothing else: the value lands in nginx's configuration.
		if ! [[ "$entry" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*)(/[0-9]{1,3})?$ ]]; then
			echo "$0: TRUSTED_PROXIES: '$entry' is not an IP address or CIDR" >&2
			exit 1
		fi
		echo "set_real_ip_from $entry;"
		count=$((count + 1))
	done
	if [ "$count" -gt 0 ]; then
		echo "real_ip_header X-Forwarded-For;"
		echo "real_ip_recursive on;"
	fi
} > "$out.tmp"
mv "$out.tmp" "$out"
if [ -n "$entries" ]; then
	echo "$0: client addresses from X-Forwarded-For of: $entries"
fi
