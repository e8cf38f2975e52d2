#!/usr/bin/env bash
# Installs a real OpenStack Glance 33 and Keystone 30 (plus gunicorn to serve
# them) into a Python venv for `cargo test --test register` and the register
# benchmark. Idempotent and cached: a no-op in well under a second when the
# venv already has the pinned versions.
#
#   scripts/setup-registry.sh            # venv at ${DISKFORGE_CACHE:-$HOME/.cache/diskforge}/venv
#   DISKFORGE_VENV=/some/dir scripts/setup-registry.sh
#
# Needs python3 >= 3.11 with the venv module, and gcc for a few wheels.
set -euo pipefail

GLANCE_VERSION=33.0.0
KEYSTONE_VERSION=30.0.0
GUNICORN_VERSION=23.0.0

cache=${DISKFORGE_CACHE:-$HOME/.cache/diskforge}
venv=${DISKFORGE_VENV:-$cache/venv}
stamp="$venv/.diskforge-registry-ready"
want="glance==$GLANCE_VERSION keystone==$KEYSTONE_VERSION gunicorn==$GUNICORN_VERSION"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -x "$venv/bin/gunicorn" ] && [ -x "$venv/bin/glance-manage" ] \
    && [ -x "$venv/bin/keystone-manage" ]; then
    echo "setup-registry: $venv already has $want"
    exit 0
fi

fail() { echo "setup-registry: error: $*" >&2; exit 1; }

python=${PYTHON:-python3}
command -v "$python" >/dev/null || fail "$python not found (install python3 >= 3.11 and python3-venv)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || fail "$python is $("$python" --version 2>&1); Glance $GLANCE_VERSION needs Python >= 3.11"

mkdir -p "$cache"
export PIP_CACHE_DIR="$cache/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-registry: creating venv $venv"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        # Debian/Ubuntu ship venv (ensurepip) separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup-registry: installing python3-venv" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
                || fail "apt-get install python3-venv failed"
            "$python" -m venv "$venv" || fail "cannot create a venv at $venv"
        else
            fail "cannot create a venv at $venv (install python3-venv)"
        fi
    fi
fi
echo "setup-registry: installing $want into $venv"
"$venv/bin/pip" install --quiet --upgrade pip setuptools wheel \
    || fail "pip could not upgrade itself in $venv"
"$venv/bin/pip" install --quiet $want \
    || fail "pip install $want failed (see above)"
"$venv/bin/python" -c 'import glance.wsgi.api, keystone.server.wsgi' 2>/dev/null \
    || "$venv/bin/python" -c 'import glance, keystone' \
    || fail "glance/keystone installed but do not import"
for tool in gunicorn glance-manage keystone-manage; do
    [ -x "$venv/bin/$tool" ] || fail "$venv/bin/$tool missing after install"
done
echo "$want" > "$stamp"
echo "setup-registry: ready ($venv)"
