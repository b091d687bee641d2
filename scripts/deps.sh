#!/usr/bin/env bash
# Installs what lumos needs on a Debian machine that already has Go.
#   deps.sh dev   what `make dev` needs
#   deps.sh test  what `make test` needs
set -euo pipefail
what=${1:-dev}

if ! command -v go >/dev/null 2>&1; then
	echo "lumos needs Go (https://go.dev/dl/) on PATH" >&2
	exit 1
fi

missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
# The local cluster script waits on the API with curl.
[ "$what" = dev ] || command -v curl >/dev/null 2>&1 || missing+=(curl)
# The dashboard's browser test drives headless Chromium.
[ "$what" = dev ] || command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The built-in DNS server is also checked with dig.
[ "$what" = dev ] || command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
	# lumos dev runs without HAProxy (its shield then serves nothing); the
	# tests need the real thing.
	[ "$what" = dev ] && exit 0
	exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# lumos supervises its own HAProxy; keep the distribution's service from
	# holding ports 80/443 on a development machine.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
		systemctl stop haproxy || true
	fi
else
	echo "no apt-get: install ${missing[*]} yourself" >&2
	[ "$what" = dev ] || exit 1
fi
