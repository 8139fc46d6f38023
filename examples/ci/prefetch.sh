#!/usr/bin/env bash
# CI prefetch step: warm cache -> no request at all; cold cache -> fetch exactly the locked commits.
#   examples/ci/prefetch.sh [path/to/hfget.toml]
set -euo pipefail
manifest="${1:-hfget.toml}"
if hfget sync "$manifest" --offline --quiet >/dev/null 2>&1; then
    echo "HF cache already holds every locked file" >&2
else
    hfget sync "$manifest" --frozen --quiet
fi
export HF_HUB_OFFLINE=1  # the tests that follow must not reach the network
