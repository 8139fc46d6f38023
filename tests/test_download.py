"""The whole download path through the real `hfget` command against the test Hub, checked by huggingface_hub."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hfget._cache import LIST_FROM
from hub import Hub


def _files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "llama", "hidden_size": 64}',
        "empty.txt": b"",
        "README.md": b"# A test model\n",
        "nested/deeper/tokenizer.json": b'{"version": "1.0"}' * 50,
        "nested/vocab.txt": "\n".join(f"token{i}" for i in range(2000)).encode(),
        "model.safetensors": os.urandom(2_500_000),
        "weights/part-00002.bin": os.urandom(700_000),
    }


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(root).parts
    }


def _hf_python(code: str, hf_home: Path, **env: str) -> str:
    """Run huggingface_hub in a fresh interpreter (it reads HF_* variables at import)."""
    full_env = {**os.environ, "HF_HOME": str(hf_home), **env}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_repo_downloads_byte_identical_and_huggingface_hub_reads_it_offline(hub: Hub, hf_home: Path, run_hfget):
    files = _files()
    commit = hub.create_repo("org/model", files)

    result = run_hfget("org/model", "--mirror", hub.url)

    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.strip().splitlines()[-1])
    assert snapshot == hf_home / "hub" / "models--org--model" / "snapshots" / commit
    assert _tree_bytes(snapshot) == files
    # several tree pages were listed, and every file was fetched at the resolved commit
    assert len(hub.requests(contains="/tree/")) > 1
    resolves = hub.requests(method="GET", contains="/resolve/")
    assert resolves and all(f"/resolve/{commit}/" in s.path for s in resolves)
    # both LFS files came from the CDN origin, after a redirect
    assert len(hub.requests(origin="cdn", method="GET")) == 2
    assert not hub.requests(method="HEAD")  # the listing gave size and hash: no HEAD per file

    hub.stop()
    code = f"""
import json
from pathlib import Path
from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir
snap = snapshot_download("org/model", local_files_only=True)
paths = {{name: hf_hub_download("org/model", name, local_files_only=True) for name in {list(files)!r}}}
info = scan_cache_dir()
repo = [r for r in info.repos if r.repo_id == "org/model"][0]
print(json.dumps({{"snap": snap, "paths": paths, "size": repo.size_on_disk, "warnings": [str(w) for w in info.warnings],
                  "revisions": [r.commit_hash for r in repo.revisions], "refs": sorted(repo.refs)}}))
"""
    report = json.loads(_hf_python(code, hf_home, HF_HUB_OFFLINE="1"))
    assert Path(report["snap"]) == snapshot
    for name, content in files.items():
        assert Path(report["paths"][name]).read_bytes() == content
    assert report["size"] == sum(len(c) for c in files.values())
    assert report["warnings"] == []
    assert report["revisions"] == [commit]
    assert report["refs"] == ["main"]


def _layout(repo_folder: Path) -> dict:
    return {
        "blobs": sorted(p.name for p in (repo_folder / "blobs").iterdir()),
        "refs": {p.relative_to(repo_folder / "refs").as_posix(): p.read_text()
                 for p in (repo_folder / "refs").rglob("*") if p.is_file()},
        "links": {p.relative_to(repo_folder / "snapshots").as_posix(): os.readlink(p)
                  for p in (repo_folder / "snapshots").rglob("*") if p.is_symlink()},
        "trees": {p.name: json.loads(p.read_text()) for p in (repo_folder / "trees").iterdir()},
    }


def test_cache_layout_is_the_one_huggingface_hub_writes(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    hub.create_repo("org/model", _files())
    ours = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert ours.returncode == 0, ours.stderr

    theirs = tmp_path / "official-cache"
    _hf_python(f"from huggingface_hub import snapshot_download; snapshot_download('org/model', "
               f"cache_dir={str(theirs)!r}, endpoint={hub.url!r})", hf_home)

    assert _layout(hf_home / "hub" / "models--org--model") == _layout(theirs / "models--org--model")


def test_local_dir_gives_plain_files_that_huggingface_hub_does_not_fetch_again(
    hub: Hub, hf_home: Path, tmp_path: Path, run_hfget
):
    files = _files()
    hub.create_repo("org/model", files)
    target = tmp_path / "plain"

    result = run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target))

    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]) == target.absolute()
    assert _tree_bytes(target) == files
    assert not any(p.is_symlink() for p in target.rglob("*"))
    assert not list(target.rglob("*.incomplete"))
    assert (target / ".cache" / "huggingface" / "download" / "nested" / "vocab.txt.metadata").is_file()

    hub.clear_log()
    _hf_python(f"from huggingface_hub import snapshot_download; snapshot_download('org/model', "
               f"local_dir={str(target)!r}, endpoint={hub.url!r})", hf_home)
    assert hub.file_gets() == []
    assert _tree_bytes(target) == files


def test_a_rerun_costs_one_request_for_a_branch_and_none_for_a_cached_commit(hub: Hub, run_hfget):
    commit = hub.create_repo("org/model", _files())
    assert run_hfget("org/model", "--endpoint", hub.url).returncode == 0

    hub.clear_log()
    again = run_hfget("org/model", "--endpoint", hub.url)
    assert again.returncode == 0, again.stderr
    assert [s.path for s in hub.log] == ["/api/models/org/model/revision/main"]
    assert "up to date" in again.stderr

    hub.clear_log()
    pinned = run_hfget("org/model", "--endpoint", hub.url, "--revision", commit)
    assert pinned.returncode == 0, pinned.stderr
    assert hub.log == []


def test_after_the_branch_moved_only_the_changed_file_is_fetched_and_the_rest_are_linked(hub: Hub, run_hfget):
    # enough files for the plan to look for known blobs in one listing of blobs/ (LIST_FROM)
    files = {**_files(), **{f"extra/part-{i:03d}.txt": b"part %d" % i for i in range(LIST_FROM)}}
    hub.create_repo("org/model", files)
    assert run_hfget("org/model", "--endpoint", hub.url).returncode == 0
    changed = {"config.json": b'{"model_type": "llama", "hidden_size": 128}'}
    hub.commit("org/model", changed)

    hub.wait_idle()
    hub.clear_log()
    dry = run_hfget("org/model", "--endpoint", hub.url, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert (plan["files_total"], plan["files_to_fetch"]) == (len(files), 1)  # the others: known blobs

    again = run_hfget("org/model", "--endpoint", hub.url)

    assert again.returncode == 0, again.stderr
    hub.wait_idle()
    assert [s.path for s in hub.requests(method="GET", contains="/resolve/")] == [
        f"/org/model/resolve/{hub.repos[('model', 'org/model')].refs['main']}/config.json"]
    snapshot = Path(again.stdout.strip())
    assert {path: (snapshot / path).read_bytes() for path in files} == {**files, **changed}


def test_quiet_prints_exactly_the_path_for_shell_capture(hub: Hub, hf_home: Path, run_hfget):
    commit = hub.create_repo("org/model", {"a.txt": b"a"})
    result = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert result.returncode == 0
    assert result.stdout == f"{hf_home / 'hub' / 'models--org--model' / 'snapshots' / commit}\n"
    assert result.stderr == ""


def test_hf_endpoint_is_honoured_and_a_repo_url_names_its_endpoint(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"from env"})
    by_env = run_hfget("org/model", "-q", env={"HF_ENDPOINT": hub.url})
    assert by_env.returncode == 0, by_env.stderr
    assert (Path(by_env.stdout.strip()) / "a.txt").read_bytes() == b"from env"

    hub.create_repo("org/other", {"b.txt": b"from url"}, repo_type="dataset")
    by_url = run_hfget(f"{hub.url}/datasets/org/other", "-q")
    assert by_url.returncode == 0, by_url.stderr
    assert (Path(by_url.stdout.strip()) / "b.txt").read_bytes() == b"from url"


def test_mirror_pagination_links_naming_huggingface_co_stay_on_the_mirror(tmp_path: Path, hf_home: Path, run_hfget):
    # hf-mirror leaves `Link: <https://huggingface.co/...>` in tree pages; following it would leave the mirror
    mirror = Hub(tmp_path / "mirror", page_size=2, link_base="https://huggingface.co").start()
    try:
        files = _files()
        mirror.create_repo("org/model", files)
        mirror.tokens.add("hf_token_for_the_mirror")
        result = run_hfget("org/model", "--mirror", mirror.url, "--token", "hf_token_for_the_mirror")
        assert result.returncode == 0, result.stderr
        pages = mirror.requests(contains="/tree/")
        assert len(pages) == 5  # 7 files and 3 folders, 2 entries a page: every page came from the mirror
        assert all(page.authorized for page in pages)
        assert _tree_bytes(Path(result.stdout.strip().splitlines()[-1])) == files
    finally:
        mirror.stop()


def test_symlinks_disabled_gives_real_files_that_huggingface_hub_still_finds(hub: Hub, hf_home: Path, run_hfget):
    files = _files()
    hub.create_repo("org/model", files)
    result = run_hfget("org/model", "--endpoint", hub.url, "-q", env={"HF_HUB_DISABLE_SYMLINKS": "1"})
    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.strip())
    assert not any(p.is_symlink() for p in snapshot.rglob("*"))
    assert _tree_bytes(snapshot) == files
    out = _hf_python("from huggingface_hub import snapshot_download; print(snapshot_download('org/model', "
                     "local_files_only=True))", hf_home, HF_HUB_OFFLINE="1")
    assert Path(out.strip()) == snapshot


def test_python_module_entry_point_and_version(run_hfget):
    result = run_hfget("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("hfget ")


@pytest.mark.parametrize("resolve_cache", [False, True])
def test_regular_files_behind_a_relative_redirect(hub: Hub, run_hfget, resolve_cache: bool):
    hub.resolve_cache_redirect = resolve_cache
    hub.create_repo("org/model", {"config.json": b"{}", "a/b.txt": b"bbb"})
    result = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "a" / "b.txt").read_bytes() == b"bbb"
    assert bool(hub.requests(contains="/api/resolve-cache/")) is resolve_cache


@pytest.mark.parametrize("mode", ["cache", "local-dir"])
def test_files_with_the_same_content_all_arrive_and_share_one_fetch_in_the_cache(
    hub: Hub, tmp_path: Path, run_hfget, mode: str
):
    weights = os.urandom(500_000)
    files = {"pkg/__init__.py": b"", "pkg/sub/__init__.py": b"", "tests/__init__.py": b"",
             "a/model.safetensors": weights, "b/model.safetensors": weights, "c.txt": b"same",
             "d.txt": b"same"}
    hub.create_repo("org/model", files)
    args = ["--local-dir", str(tmp_path / "plain")] if mode == "local-dir" else []

    result = run_hfget("org/model", "--endpoint", hub.url, *args)

    assert result.returncode == 0, result.stderr
    assert _tree_bytes(Path(result.stdout.strip().splitlines()[-1])) == files
    assert f"done: {len(files)} files" in result.stderr
    # only the cache shares: a local dir keeps one partial per path (LocalDirStore.partial_path), so each copy is
    # fetched there, and only the bytes and the count are checked
    if mode == "cache":
        assert len(hub.requests(origin="cdn", method="GET")) == 1
        assert len(hub.file_gets()) == 3  # weights (redirect + CDN) and "same"; empty files need no request


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_blobs_get_the_permissions_huggingface_hub_gives_them(hub: Hub, tmp_path: Path, run_hfget):
    """A shared cache (umask 002) keeps its group's write bit on small and large blobs, as huggingface_hub's do."""
    from huggingface_hub import hf_hub_download

    hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": os.urandom(9 << 20)})
    old = os.umask(0o002)
    try:
        result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path / "ours"), "-q")
        theirs = hf_hub_download("org/model", "config.json", cache_dir=tmp_path / "theirs", endpoint=hub.url)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    expected = stat.S_IMODE(os.stat(theirs).st_mode)
    assert expected == 0o664
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE(os.stat(Path(result.stdout.strip()) / name).st_mode) == expected, name
