"""`--quant Q4_K_M`: pick the GGUF files of one quantisation, split shards included.

GGUF repos name files like `model-Q4_K_M.gguf`, `model.q4_k_m.gguf`, `Q4_K_M/model-00001-of-00003.gguf` or
`model-Q4_K_M-00002-of-00003.gguf`. A label matches as a whole token, case-insensitive: `Q4_K` does not match
`Q4_K_M`, and `Q4_XS` does not match `IQ4_XS`.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"(?<![A-Za-z0-9])((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|F32|FP16|FP32)(?![A-Za-z0-9])",
                    re.IGNORECASE)


def _pattern(quant: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9]|_[A-Za-z0-9])", re.IGNORECASE)


def is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def matches(path: str, quant: str) -> bool:
    return is_gguf(path) and _pattern(quant).search(path) is not None


def available(paths: list[str]) -> list[str]:
    """The quantisation labels the repo's GGUF files carry, e.g. ['Q4_K_M', 'Q8_0']."""
    found = set()
    for path in paths:
        if is_gguf(path):
            for match in _LABEL.finditer(path):
                found.add(match.group(1).upper())
    return sorted(found)
