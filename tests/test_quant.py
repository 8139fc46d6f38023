"""--quant picks one quantisation of a GGUF repo, split shards included, and names the others when none matches."""

from __future__ import annotations

from pathlib import Path

import hfget
from hfget import _quant
from hub import Hub

GGUF_REPO = {
    "README.md": b"# gguf",
    "model-Q4_K_M.gguf": b"q4km",
    "model-Q4_K_S.gguf": b"q4ks",
    "model.q8_0.gguf": b"q8",
    "model-IQ4_XS.gguf": b"iq4xs",
    "Q6_K/model-Q6_K-00001-of-00002.gguf": b"q6a",
    "Q6_K/model-Q6_K-00002-of-00002.gguf": b"q6b",
}


def _got(path: Path) -> set[str]:
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    return {f for f in files if not f.startswith(".cache/")}


def test_quant_selects_one_quantisation_case_insensitively(hub: Hub, run_hfget):
    hub.create_repo("org/gguf", GGUF_REPO)
    for label, expected in [("Q4_K_M", {"model-Q4_K_M.gguf"}), ("Q8_0", {"model.q8_0.gguf"}),
                            ("q6_k", {"Q6_K/model-Q6_K-00001-of-00002.gguf", "Q6_K/model-Q6_K-00002-of-00002.gguf"}),
                            ("IQ4_XS", {"model-IQ4_XS.gguf"})]:
        result = run_hfget("org/gguf", "--endpoint", hub.url, "--quant", label, "--local-dir",
                           str(Path(hub.root) / f"out-{label}"), "-q")
        assert result.returncode == 0, result.stderr
        assert _got(Path(result.stdout.strip())) == expected, label


def test_an_unknown_quant_names_the_available_ones(hub: Hub, run_hfget):
    hub.create_repo("org/gguf", GGUF_REPO)
    result = run_hfget("org/gguf", "--endpoint", hub.url, "--quant", "Q5_K_M")
    assert result.returncode == hfget.ExitCode.NOT_FOUND
    line = result.stderr.strip().splitlines()[-1]
    assert "Q5_K_M" in line and "Q4_K_M, Q4_K_S" in line and "Q6_K" in line and "IQ4_XS" in line
    assert hub.file_gets() == []


def test_label_matching_is_by_whole_token():
    assert _quant.matches("m-Q4_K_M.gguf", "Q4_K_M")
    assert not _quant.matches("m-Q4_K_M.gguf", "Q4_K")
    assert not _quant.matches("m-IQ4_XS.gguf", "Q4_XS")
    assert not _quant.matches("m-Q4_K_M.bin", "Q4_K_M")
