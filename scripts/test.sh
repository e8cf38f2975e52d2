#!/usr/bin/env bash
# The one command that sets up and runs every test, on a fresh machine too:
#   scripts/test.sh
# 1. installs qemu-utils 10 (qemu-img, qemu-io) when missing or older,
# 2. installs the registry test servers (Glance, Keystone) into a cached
#    venv (scripts/setup-registry.sh) when that script is present,
# 3. runs cargo fmt --check, cargo clippy -D warnings, a build check of the
#    fuzz harness (fuzz/) and cargo test.
# Every step fails loudly; no test is skipped for a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

qemu_major() { qemu-img --version 2>/dev/null | sed -n 's/^qemu-img version \([0-9]*\)\..*/\1/p'; }

if ! command -v qemu-io >/dev/null || [ "$(qemu_major)" != 10 ]; then
    echo "test.sh: installing qemu-utils 10 (qemu-img, qemu-io)" >&2
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
        # Debian 12 has qemu 7.2; qemu 10 comes from bookworm-backports.
        echo "deb http://deb.debian.org/debian bookworm-backports main" |
            as_root tee /etc/apt/sources.list.d/diskforge-backports.list >/dev/null
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports qemu-utils
    else
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils
    fi
fi
if [ "$(qemu_major)" != 10 ]; then
    echo "test.sh: qemu-img 10 is required, found: $(qemu-img --version | head -1)" >&2
    exit 1
fi

if [ -x scripts/setup-registry.sh ]; then
    scripts/setup-registry.sh
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# The fuzz harness is a crate of its own: keep it building with the library.
cargo check --quiet --manifest-path fuzz/Cargo.toml --lib
cargo test
