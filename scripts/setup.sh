#!/usr/bin/env bash
# Set up a development machine (Debian bookworm): system packages, Pebble 2.10,
# and a virtualenv in .venv with certctl and its test tools installed.
# Idempotent; run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi

packages=(python3 python3-venv ca-certificates)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if ((${#missing[@]})); then
        $SUDO apt-get update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
    fi
fi

$SUDO scripts/install-pebble.sh

# BIND9 for the DNS-01 tests: named (bind9), nsupdate (bind9-dnsutils, used by the hook test).
if { ! command -v named >/dev/null && [[ ! -x /usr/sbin/named ]]; } || ! command -v nsupdate >/dev/null; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y bind9 bind9-utils bind9-dnsutils
fi

# PostgreSQL for the PostgreSQL store tests: initdb, postgres and pg_dump (Debian keeps them in
# /usr/lib/postgresql/<version>/bin). The tests start their own server on a free loopback port;
# the cluster Debian's package creates and starts is never used by them.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y postgresql
fi

# PowerDNS for the DNS provider (dns-lexicon) tests. The tests start their own pdns_server from
# a temp dir on free loopback ports; the service Debian's package starts is stopped and disabled.
if ! command -v pdns_server >/dev/null && [[ ! -x /usr/sbin/pdns_server ]] \
    || [[ ! -f /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql ]]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y pdns-server pdns-backend-sqlite3
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        $SUDO systemctl disable --now pdns >/dev/null 2>&1 || true
    else
        $SUDO service pdns stop >/dev/null 2>&1 || true
    fi
fi

# nginx for the endpoint probe end-to-end test: the test starts its own nginx on a free loopback
# port from a temp-dir config; Debian's own service (started by the package) is stopped and disabled.
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
        $SUDO systemctl disable --now nginx || true
    elif [[ -f /run/nginx.pid ]]; then
        $SUDO /usr/sbin/nginx -s quit || true
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
echo "setup: done (.venv ready, pebble: $(command -v pebble))" >&2
