#!/usr/bin/env bash
# Install Pebble (ACME test CA) and pebble-challtestsrv >= 2.10 from Debian sid,
# without touching the machine's apt configuration.
#
# Usage: sudo scripts/install-pebble.sh [PREFIX]
#   PREFIX defaults to $PEBBLE_PREFIX, else /opt/pebble. The .deb is unpacked
#   there (dpkg -x) and the two binaries are symlinked into /usr/local/bin.
#
# Idempotent: if /usr/local/bin/pebble is already version 2.10 or newer it
# does nothing. Note that Debian's build prints "Pebble version: dev" for
# `pebble -version`, so the version is also read from the package changelog
# unpacked next to the binary.
set -euo pipefail

MIN_VERSION="2.10"
PREFIX="${1:-${PEBBLE_PREFIX:-/opt/pebble}}"
BIN_DIR="/usr/local/bin"
SOURCES="/etc/apt/sources.list.d/debian.sources"

log() { printf 'install-pebble: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Print the version of the pebble binary at $1, or nothing if unknown.
pebble_version() {
    local bin="$1" out real changelog
    [[ -x "$bin" ]] || return 0
    out="$("$bin" -version 2>&1 || true)"
    if [[ "$out" =~ ([0-9]+\.[0-9]+(\.[0-9]+)?) ]]; then
        printf '%s\n' "${BASH_REMATCH[1]}"
        return 0
    fi
    # Debian build: "Pebble version: dev". Use the changelog shipped alongside.
    real="$(readlink -f "$bin")"
    changelog="$(dirname "$(dirname "$real")")/share/doc/pebble/changelog.Debian.gz"
    if [[ -r "$changelog" ]]; then
        zcat "$changelog" | head -n 1 | sed -n 's/^pebble (\([^)]*\)).*/\1/p'
    fi
}

current="$(pebble_version "$BIN_DIR/pebble")"
if [[ -n "$current" ]] && dpkg --compare-versions "$current" ge "$MIN_VERSION" \
    && [[ -x "$BIN_DIR/pebble-challtestsrv" ]]; then
    log "pebble $current already installed in $BIN_DIR; nothing to do"
    exit 0
fi

[[ "$(id -u)" -eq 0 ]] || die "must run as root (try: sudo $0)"
command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu only)"
[[ -r "$SOURCES" ]] || die "$SOURCES not found"

work="$(mktemp -d /tmp/install-pebble.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# apt fetches as the unprivileged _apt user: let it into the work dir.
chmod 0755 "$work"
mkdir -p "$work/lists/partial" "$work/deb"
chown -R _apt:root "$work/lists/partial" "$work/deb" 2>/dev/null || true

# First deb822 stanza of the machine's sources, with the suite set to sid.
awk '
    /^[[:space:]]*$/ { if (seen) exit; next }
    { seen = 1 }
    /^Suites:/ { print "Suites: sid"; next }
    { print }
' "$SOURCES" >"$work/sid.sources"
grep -q '^Suites: sid$' "$work/sid.sources" || die "no Suites: line in first stanza of $SOURCES"

apt_opts=(
    -o "Dir::Etc::sourcelist=$work/sid.sources"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Get::List-Cleanup=0"
)

log "fetching sid package lists into $work"
apt-get -q update "${apt_opts[@]}" >&2
log "downloading pebble"
(cd "$work/deb" && apt-get -q download "${apt_opts[@]}" pebble >&2)

deb="$(find "$work/deb" -maxdepth 1 -name 'pebble_*.deb' -print -quit)"
[[ -n "$deb" ]] || die "apt-get download produced no pebble_*.deb"
version="$(dpkg-deb -f "$deb" Version)"
dpkg --compare-versions "$version" ge "$MIN_VERSION" \
    || die "sid has pebble $version, need >= $MIN_VERSION"

log "unpacking $(basename "$deb") into $PREFIX"
mkdir -p "$PREFIX"
dpkg -x "$deb" "$PREFIX"

for name in pebble pebble-challtestsrv; do
    [[ -x "$PREFIX/usr/bin/$name" ]] || die "$PREFIX/usr/bin/$name missing from package"
    ln -sfn "$PREFIX/usr/bin/$name" "$BIN_DIR/$name"
done

log "installed pebble $(pebble_version "$BIN_DIR/pebble") -> $BIN_DIR/pebble, $BIN_DIR/pebble-challtestsrv"
