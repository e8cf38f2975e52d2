#!/usr/bin/env bash
# A local, no-auth Glance 33 for the register benchmark (and for trying
# `diskforge register` by hand).
#
#   scripts/glance-for-bench.sh start [WATCH_PID]  # prints "URL PID STATE_DIR"
#   scripts/glance-for-bench.sh purge URL          # deletes every image
#   scripts/glance-for-bench.sh stop PID STATE_DIR
#
# `start` uses the venv of scripts/setup-registry.sh (installing it if
# needed), starts Glance on a free port with its state in a temp dir, and
# waits until it answers. With WATCH_PID, Glance is stopped and its state
# removed when that process exits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cache=${DISKFORGE_CACHE:-$HOME/.cache/diskforge}
venv=${DISKFORGE_VENV:-$cache/venv}

case "${1:-}" in
start)
    "$here/setup-registry.sh" >&2
    port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    state=$(mktemp -d "${TMPDIR:-/tmp}/diskforge-glance.XXXXXX")
    DISKFORGE_GLANCE_DB_TEMPLATE="$cache/registry-templates/glance-33.0.0.sqlite" \
        setsid "$venv/bin/python" "$top/tests/registry_support/serve.py" glance "$state" "$port" noauth \
        >"$state/server.log" 2>&1 </dev/null &
    pid=$!
    url="http://127.0.0.1:$port"
    for _ in $(seq 1 600); do
        if curl -sf -m 2 -o /dev/null "$url/healthcheck"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "glance-for-bench: Glance exited; log:" >&2; tail -20 "$state/server.log" >&2; exit 1
        fi
        sleep 0.2
    done
    curl -sf -m 2 -o /dev/null "$url/healthcheck" || { echo "glance-for-bench: Glance not ready" >&2; exit 1; }
    if [ -n "${2:-}" ]; then
        watch=$2
        (while kill -0 "$watch" 2>/dev/null; do sleep 1; done
         kill -INT "$pid" 2>/dev/null; sleep 3; kill -KILL "$pid" 2>/dev/null; rm -rf "$state") \
            >/dev/null 2>&1 </dev/null &
        disown
    fi
    echo "$url $pid $state"
    ;;
purge)
    url=$2
    ids=$(curl -sf -H 'Accept: application/json' "$url/v2/images?limit=1000" \
        | "$venv/bin/python" -c 'import json,sys; print(" ".join(i["id"] for i in json.load(sys.stdin)["images"]))')
    for id in $ids; do curl -sf -X DELETE "$url/v2/images/$id" >/dev/null || true; done
    ;;
stop)
    kill -INT "$2" 2>/dev/null || true
    sleep 2
    kill -KILL "$2" 2>/dev/null || true
    rm -rf "$3"
    ;;
*)
    echo "usage: $0 start [WATCH_PID] | purge URL | stop PID STATE_DIR" >&2
    exit 2
    ;;
esac
