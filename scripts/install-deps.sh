#!/usr/bin/env bash
# Installs what a fresh Debian or Ubuntu machine lacks to build and test
# tessera, and nothing when it is all there already. Safe to run repeatedly.
#
# Needs: a Rust toolchain (cargo), GDAL's development files (libgdal-dev) and
# pkg-config. Uses sudo only when not running as root.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is missing. Install Rust first: https://rustup.rs" >&2
    exit 1
fi

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists gdal 2>/dev/null; then
    missing+=(libgdal-dev)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The tests drive the interactive demo clients in a real terminal.
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# echo-demo's reply-path tests count TIME_WAIT sockets with ss.
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
# echo-demo's SIGTERM test runs the kill program (not the shell builtin).
type -P kill >/dev/null 2>&1 || missing+=(procps)
# tile-server's packaging test verifies its systemd unit.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# tile-server's mod_tile tests put tessera in renderd's place: Apache with
# Debian's mod_tile serves its .meta files, render_list and render_expired
# (Debian's renderd package) drive its renderd socket.
[ -x /usr/sbin/apache2 ] || missing+=(apache2)
[ -e /usr/lib/apache2/modules/mod_tile.so ] || missing+=(libapache2-mod-tile)
command -v render_list >/dev/null 2>&1 || missing+=(renderd)
# tile-server's viewer test drives Debian's chromium with playwright-core
# (node; its package is installed below).
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# render-core's text tests draw with the faces the classic OSM style and the
# Japanese application ask for: DejaVu Sans and Noto Sans CJK JP.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
# tile-server's cluster tests start their own Redis (the scale-out engine)
# and put fronts and render nodes in network namespaces of their own (ip).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# render-core's PostGIS test starts its own throwaway cluster: it needs the
# server binaries (initdb, pg_ctl, psql) and PostGIS for that server.
pg_bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bindir" ] || [ ! -x "$pg_bindir/initdb" ]; then
    missing+=(postgresql)
    pg_major=""
else
    pg_major=$(basename "$(dirname "$pg_bindir")")
fi
if ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
    # The PostGIS package is named after the server's major version
    # (Debian 12: postgresql-15-postgis-3); resolved after apt-get update.
    missing+=("postgis-for-postgresql${pg_major:+-$pg_major}")
fi

# The browser test's npm package (playwright-core, pinned by the lock file),
# after the system packages (npm may be one of them).
browser_test_packages() {
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/bins/tile-server/tests/browser"
    if [ ! -d "$dir/node_modules/playwright-core" ]; then
        echo "install-deps: npm ci in $dir" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

if [ ${#missing[@]} -eq 0 ]; then
    browser_test_packages
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: please install ${missing[*]} with your system's package manager" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
for i in "${!missing[@]}"; do
    case ${missing[$i]} in
        postgis-for-postgresql*)
            major=${missing[$i]#postgis-for-postgresql}
            major=${major#-}
            if [ -z "$major" ]; then   # the version the postgresql package depends on
                major=$(apt-cache depends postgresql 2>/dev/null |
                    sed -nE 's/^ *Depends: postgresql-([0-9]+)$/\1/p' | head -1)
            fi
            missing[$i]=postgresql-${major:-15}-postgis-3 ;;
    esac
done
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
browser_test_packages
