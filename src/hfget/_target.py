"""What a download is asked for, settled before any I/O: the repo, the endpoints in order, the selection, the
token, the store (resolve_target); the endpoints by the documented order of precedence (choose_endpoints)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._cache import CacheStore, LocalDirStore, Store
from ._errors import UsageError
from ._repo import DEFAULT_ENDPOINT, Repo, RepoSpec, normalize_endpoint, parse_repo
from ._select import DEFAULT, Selection, Wanted

if TYPE_CHECKING:
    from ._options import Options


@dataclass(frozen=True)
class Target:
    """Everything a download needs to know before its first request."""

    repo: Repo
    endpoints: tuple[str, ...]  # the endpoint to use, then the mirrors to fail over to
    selection: Selection
    token: str | None = field(repr=False)
    store: Store
    offline: bool

    @property
    def revision(self) -> str:
        return self.selection.revision


def resolve_target(repo: str, files: Sequence[str], options: Options, wanted: Wanted = DEFAULT) -> Target:
    """Turn what the caller asked for into a Target (no I/O)."""
    from huggingface_hub import constants

    from ._compat import get_token

    spec = parse_repo(repo, repo_type=wanted.repo_type)
    if options.cache_dir is not None and options.local_dir is not None:
        raise UsageError("Use --cache-dir or --local-dir, not both.")
    store: Store
    if options.local_dir is not None:
        if Path(options.local_dir).expanduser().exists() and not Path(options.local_dir).expanduser().is_dir():
            raise UsageError(f"--local-dir {options.local_dir} is a file, not a folder.",
                             hint="Name a folder (it is created if missing).")
        store = LocalDirStore(Path(options.local_dir))
    else:
        store = CacheStore(Path(options.cache_dir or constants.HF_HUB_CACHE), spec.repo)
    paths = tuple(f.strip("/") if not f.endswith("/") else f for f in files)
    if spec.path:
        paths += (spec.path,)
    quant = wanted.quant.strip() if wanted.quant else None
    selection = Selection(repo=spec.repo, revision=wanted.revision or spec.revision or "main", files=paths,
                          include=wanted.include, exclude=wanted.exclude, quant=quant)
    return Target(repo=spec.repo, endpoints=choose_endpoints(spec, options), selection=selection,
                  token=options.token or get_token(), store=store,
                  offline=constants.is_offline_mode() if options.offline is None else options.offline)


def choose_endpoints(spec: RepoSpec, options: Options) -> tuple[str, ...]:
    """--endpoint, else --mirror (or mirrors=), else the repo URL's host, else HFGET_MIRROR, else HF_ENDPOINT,
    else the config file's mirrors, else huggingface.co."""
    mirror_origin = options.origins.get("mirror", "default")
    if options.endpoint and options.mirror and mirror_origin == "explicit":
        raise UsageError("Use --endpoint or --mirror, not both.")
    if options.endpoint and spec.endpoint and normalize_endpoint(options.endpoint) != spec.endpoint:
        raise UsageError(f"The repo URL names {spec.endpoint} and --endpoint names {options.endpoint}.",
                         hint="Give the endpoint once: a plain org/name with --endpoint, or the URL alone.")
    chosen: Sequence[str]
    if options.endpoint:
        chosen = [options.endpoint]
    elif options.mirror and mirror_origin == "explicit":
        chosen = options.mirror
    elif spec.endpoint:  # a repo URL names its host: no setting sends it (or the token) elsewhere
        chosen = [spec.endpoint]
    elif options.mirror and mirror_origin == "environment":
        chosen = options.mirror
    elif os.environ.get("HF_ENDPOINT"):
        chosen = [os.environ["HF_ENDPOINT"]]
    else:
        chosen = options.mirror or [DEFAULT_ENDPOINT]
    return tuple(dict.fromkeys(normalize_endpoint(e) for e in chosen))
