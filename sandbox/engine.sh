#!/usr/bin/env bash
# A private Docker engine for SyncroX's code execution, and the execution image in it.
#
#   sandbox/engine.sh run [--require] -- CMD [ARG...]
#                                         start a private engine, build or reuse the image, run
#                                         CMD with DOCKER_HOST pointing there, stop the engine
#                                         (always, also when CMD fails or is interrupted).
#                                         --require (tests): a failed image build is fatal, and
#                                         CMD gets SYNCROX_REQUIRE_DOCKER=1
#   sandbox/engine.sh start                 start a long-lived private engine + image
#   sandbox/engine.sh env                   print `export DOCKER_HOST=...` for it
#   sandbox/engine.sh stop                  stop it by PID and remove its state
#
# Why a private engine: CI machines of this kind have no engine running and no image registry.
# The daemon gets its own data-root, exec-root, pidfile, socket and config file, runs with
# --bridge=none --iptables=false --ip-masq=false (sandboxes use --network none only) and inside
# its own network namespace (`unshare --net`): without it, --bridge=none deletes the host's
# docker0 and breaks any other daemon. It runs in its own session so a Ctrl-C meant for the
# foreground program does not kill it before that program has removed its containers.
#
# As root, docker.io and debootstrap are installed with apt-get when missing. Without root, an
# engine already reachable (DOCKER_HOST or the default socket) is used as it is, and `run`
# still runs CMD (Docker tests then skip, or fail under SYNCROX_REQUIRE_DOCKER=1).
#
# Environment: SYNCROX_PYTHON (the interpreter with syncrox installed, default .venv/bin/python),
# SYNCROX_ENGINE_DIR (state of `start`/`stop`, default /tmp/syncrox-engine), SYNCROX_ENGINE=
# system (use the engine DOCKER_HOST already names, never start one).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
py=${SYNCROX_PYTHON:-$repo/.venv/bin/python}
ready_timeout_s=60
stop_timeout_s=30

log() { echo "engine: $*" >&2; }
die() { log "error: $*"; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Start dockerd with its state in $1 (a short path: containerd's sockets live under it).
start_daemon() {
    local dir=$1
    mkdir -p "$dir/data" "$dir/exec"
    echo '{}' >"$dir/daemon.json"  # never pick up the host's /etc/docker/daemon.json
    log "starting a private dockerd in $dir"
    setsid unshare --net -- dockerd \
        --config-file "$dir/daemon.json" \
        --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
        -H "unix://$dir/docker.sock" \
        --bridge=none --iptables=false --ip-masq=false --log-level=warn \
        </dev/null >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/launcher.pid"
    local waited=0
    until DOCKER_HOST="unix://$dir/docker.sock" docker version >/dev/null 2>&1; do
        if ! kill -0 "$(cat "$dir/launcher.pid")" 2>/dev/null; then
            tail -n 20 "$dir/dockerd.log" >&2 || true
            die "dockerd exited during start-up (log above)"
        fi
        waited=$((waited + 1))
        if [ "$waited" -gt $((ready_timeout_s * 10)) ]; then
            die "dockerd not ready after ${ready_timeout_s} s"
        fi
        sleep 0.1
    done
    log "dockerd ready (pid $(daemon_pid "$dir"), socket $dir/docker.sock)"
}

daemon_pid() {
    local dir=$1
    if [ -s "$dir/dockerd.pid" ]; then cat "$dir/dockerd.pid"; else cat "$dir/launcher.pid"; fi
}

# Stop the dockerd whose state is in $1 by its PID; remove its state. Idempotent.
stop_daemon() {
    local dir=$1 pid waited=0
    [ -d "$dir" ] || return 0
    if [ -s "$dir/launcher.pid" ] || [ -s "$dir/dockerd.pid" ]; then
        pid=$(daemon_pid "$dir")
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping dockerd (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do
                waited=$((waited + 1))
                if [ "$waited" -gt $((stop_timeout_s * 10)) ]; then
                    log "dockerd did not stop in ${stop_timeout_s} s; killing it"
                    kill -KILL "$pid" 2>/dev/null || true
                    break
                fi
                sleep 0.1
            done
        fi
    fi
    # Anything the daemon left mounted under its directories (overlays, shm) goes first, so
    # that removing the state can never reach through a mount point.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$dir"
}

build_image() {
    [ -x "$py" ] || die "no Python at $py (run make install, or set SYNCROX_PYTHON)"
    (cd "$repo" && "$py" -m syncrox sandbox build)
}

cmd_run() {
    local require=0
    [ "${1:-}" = "--require" ] && { require=1; shift; }
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: engine.sh run [--require] -- CMD [ARG...]"
    if [ "${SYNCROX_ENGINE:-}" = system ] || ! is_root; then
        is_root || log "not root: using the engine DOCKER_HOST names, if any"
        if ! (cd "$repo" && "$py" -m syncrox sandbox check >&2); then
            log "no usable engine or image: code execution will answer SANDBOX_UNAVAILABLE"
        fi
        "$@"
        return
    fi
    ensure_packages
    local dir status=0
    dir=$(mktemp -d /tmp/sxe.XXXXXX)
    trap 'stop_daemon "'"$dir"'"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_daemon "$dir"
    export DOCKER_HOST="unix://$dir/docker.sock"
    if ! build_image; then
        [ "$require" = 1 ] && die "the sandbox image could not be built"
        log "warning: no sandbox image; code execution will answer SANDBOX_UNAVAILABLE"
    fi
    # With --require (tests), an engine was started on purpose: Docker tests must run, not skip.
    [ "$require" = 1 ] && export SYNCROX_REQUIRE_DOCKER=${SYNCROX_REQUIRE_DOCKER:-1}
    "$@" || status=$?
    return "$status"
}

cmd_start() {
    is_root || die "starting a private engine needs root"
    ensure_packages
    local dir=${SYNCROX_ENGINE_DIR:-/tmp/syncrox-engine}
    if [ -S "$dir/docker.sock" ] && DOCKER_HOST="unix://$dir/docker.sock" docker version \
        >/dev/null 2>&1; then
        log "already running in $dir"
    else
        stop_daemon "$dir"
        start_daemon "$dir"
    fi
    DOCKER_HOST="unix://$dir/docker.sock" build_image
    echo "export DOCKER_HOST=unix://$dir/docker.sock"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    start) cmd_start ;;
    env) echo "export DOCKER_HOST=unix://${SYNCROX_ENGINE_DIR:-/tmp/syncrox-engine}/docker.sock" ;;
    stop) stop_daemon "${SYNCROX_ENGINE_DIR:-/tmp/syncrox-engine}" ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
