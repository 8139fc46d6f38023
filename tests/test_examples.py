"""The examples in examples/ work as written, against the test Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub import Hub

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _env(hf_home: Path, hub: Hub) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where the installed `hfget` and this python live
    return {**os.environ, "HF_MIRROR": hub.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_prefetch_then_offline(hub: Hub, hf_home: Path):
    commit = hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": b"W" * 1000,
                                           "extra.bin": b"skip me"})
    proc = subprocess.run(["bash", str(EXAMPLES / "prefetch.sh"), "org/model", "*.json", "*.safetensors"],
                          capture_output=True, text=True, env=_env(hf_home, hub), timeout=120)
    assert proc.returncode == 0, proc.stderr
    snapshot = Path(proc.stdout.strip())
    assert snapshot.name == commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]


def test_hfd_shell_function(hub: Hub, hf_home: Path, tmp_path: Path):
    hub.create_repo("org/data", {"train.parquet": b"PAR1"}, repo_type="dataset")
    script = f'source {EXAMPLES / "hfd.sh"} && hfd datasets/org/data --local-dir {tmp_path / "d"} -q'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(hf_home, hub),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "train.parquet").read_bytes() == b"PAR1"


def _tokenizer_files() -> dict[str, bytes]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return {
        "tokenizer.json": tokenizer.to_str().encode(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                             "unk_token": "[UNK]"}).encode(),
        "config.json": json.dumps({"model_type": "bert", "vocab_size": 3, "hidden_size": 8,
                                   "num_hidden_layers": 1, "num_attention_heads": 1,
                                   "intermediate_size": 8}).encode(),
        "model.safetensors": b"weights are not needed for this",
    }


def test_prefetch_then_load_with_transformers_and_datasets_offline(hub: Hub, hf_home: Path):
    hub.create_repo("org/tiny-bert", _tokenizer_files())
    rows = b"".join(b'{"text": "hello world", "label": %d}\n' % i for i in range(3))
    hub.create_repo("org/tiny-data", {"data/train.jsonl": rows}, repo_type="dataset")

    proc = subprocess.run(["bash", str(EXAMPLES / "transformers_offline.sh"), "org/tiny-bert", "org/tiny-data"],
                          capture_output=True, text=True, env=_env(hf_home, hub), timeout=300)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "bert [1, 2] 3 rows"
    assert not [s for s in hub.file_gets() if "model.safetensors" in s.path]  # only what -I asked for


def test_ci_prefetch_with_a_lock_then_a_warm_cache_needs_no_request(hub: Hub, hf_home: Path, tmp_path: Path):
    hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": b"W" * 1000})
    project = tmp_path / "project"
    project.mkdir()
    (project / "hfget.toml").write_text(f'[defaults]\nmirror = ["{hub.url}"]\n\n[[repo]]\nid = "org/model"\n')
    env = _env(hf_home, hub)
    developer = {**env, "HF_HOME": str(tmp_path / "developer-home")}
    assert subprocess.run([sys.executable, "-m", "hfget", "sync", str(project / "hfget.toml")], env=developer,
                          capture_output=True, timeout=120).returncode == 0
    assert (project / "hfget.lock").exists()

    script = ["bash", str(EXAMPLES / "ci" / "prefetch.sh"), str(project / "hfget.toml")]
    cold = subprocess.run(script, capture_output=True, text=True, env=env, timeout=120)
    assert cold.returncode == 0, cold.stderr
    hub.clear_log()
    warm = subprocess.run(script, capture_output=True, text=True, env=env, timeout=120)
    assert warm.returncode == 0, warm.stderr
    assert "already holds" in warm.stderr and hub.log == []


def test_the_github_actions_example_caches_on_the_lock():
    import yaml

    workflow = yaml.safe_load((EXAMPLES / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert "hashFiles('hfget.lock')" in cache["with"]["key"]
    assert any("prefetch.sh" in s.get("run", "") for s in steps)
