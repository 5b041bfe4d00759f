#!/usr/bin/env bash
# Sets up Cairn on a fresh Debian machine with Swift and shows it doing its main job on the
# embedded default: a data directory (./.cairn) holding the SQLite log and the node's key.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for pkg in libsodium-dev libb2-dev libsqlite3-dev pkg-config; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
swift build --product cairn
cairn() { .build/debug/cairn "$@"; }
export CAIRN_DIR="${CAIRN_DIR:-./.cairn}"

step() { printf '\n\033[1m$ cairn %s\033[0m\n' "$*"; cairn "$@"; }
[ -e "$CAIRN_DIR/cairn.db" ] || step init --name demo
step put manifests/orders '{"version":1,"objects":["obj-1"]}'
step put manifests/orders '{"version":2,"objects":["obj-1","obj-2"]}'
step put manifests/users '{"version":1,"objects":["obj-7"]}'
step delete manifests/users
step get manifests/orders
step ls manifests --long
step log --oneline --limit 5
step history manifests/orders
step verify
step tail --since 0
step status
