#!/usr/bin/env bash
# The workflow hfget exists for: prefetch a model's tokenizer and config and a dataset through a mirror, then
# load them with transformers and datasets with the network off (HF_HUB_OFFLINE=1).
#
#   HF_MIRROR=hf-mirror.com examples/transformers_offline.sh Duffy/Llama-820m org/some-dataset
set -euo pipefail
model="$1"; dataset="$2"
mirror="${HF_MIRROR:-hf-mirror.com}"

hfget "$model" --mirror "$mirror" -I '*.json' -I '*.txt' -I '*.model' --quiet >/dev/null
# the snapshot folder: datasets loads a local folder offline (by repo id it would want its own cache first)
data=$(hfget "datasets/$dataset" --mirror "$mirror" --quiet)

HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 - "$model" "$data" <<'PY'
import sys

import datasets
from transformers import AutoConfig, AutoTokenizer

model, data = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(model)  # by repo id: found in the HF cache hfget filled
tokenizer = AutoTokenizer.from_pretrained(model)
rows = datasets.load_dataset(data, split="train")
print(f"{config.model_type} {tokenizer('hello world')['input_ids']} {len(rows)} rows")
PY
