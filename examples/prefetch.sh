#!/usr/bin/env bash
# Prefetch a model through a mirror (a CI step, or a machine that cannot reach huggingface.co), then use it with
# the network off: huggingface_hub, transformers and datasets find it in the cache.
#
#   HF_MIRROR=hf-mirror.com examples/prefetch.sh Duffy/Llama-820m '*.json' '*.safetensors'
set -euo pipefail

repo="$1"; shift
patterns=()
for pattern in "$@"; do patterns+=(--include "$pattern"); done

# the last line on stdout is the snapshot folder
snapshot=$(hfget "$repo" --mirror "${HF_MIRROR:-hf-mirror.com}" "${patterns[@]}" --quiet)
echo "prefetched into $snapshot" >&2

# from here on, nothing may touch the network
# (with the same patterns: huggingface_hub refuses a snapshot that lacks files it was not told to skip)
HF_HUB_OFFLINE=1 python3 - "$repo" "$snapshot" "$@" <<'PY'
import sys
from huggingface_hub import snapshot_download

repo, expected, patterns = sys.argv[1], sys.argv[2], sys.argv[3:]
found = snapshot_download(repo, local_files_only=True, allow_patterns=patterns or None)
assert found == expected, (found, expected)
print(found)
PY
