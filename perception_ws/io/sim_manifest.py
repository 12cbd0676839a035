"""Where a simulated dataset's manifest lives, and how the manifests of its shards read as one.

An unsharded run (``perception sim generate``, or ``--shard 1/1``) writes ``manifest.json``. Shard ``K/N``
writes ``manifest-shard-K-of-N.json`` instead, listing only its own frames, so N shards generated in N
folders merge by copying the folders into one: frame names never collide (each scene belongs to one
shard) and neither do the manifests. :func:`read_manifest` reads such a folder as the one manifest an
unsharded run would have written (the same frames, ``planned_frames`` of the whole dataset); shards not
there yet show as missing frames.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from perception_ws.errors import DatasetError
from perception_ws.shard import Shard

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "perception-sim-dataset"
_SHARD_NAME = re.compile(r"manifest-shard-(\d+)-of-(\d+)\.json")
#: the fields a shard's manifest has of its own; every other field is the same in all shards of a dataset.
_PER_SHARD = ("shard", "frames", "planned_frames", "complete")


def manifest_name(shard: Shard) -> str:
    """The manifest file name of ``shard`` (``manifest.json`` for the whole dataset)."""
    return MANIFEST if shard.whole else f"manifest-shard-{shard.index}-of-{shard.count}.json"


def shard_manifests(folder: Path) -> list[Path]:
    """The shard manifests in ``folder``, in (N, K) order."""
    keyed = []
    for path in folder.glob("manifest-shard-*-of-*.json"):
        match = _SHARD_NAME.fullmatch(path.name)
        if match is not None and path.is_file():
            keyed.append(((int(match.group(2)), int(match.group(1))), path))
    return [path for _, path in sorted(keyed)]


def read_manifest_file(path: Path) -> dict[str, Any]:
    """One manifest file, or one clear error."""
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the dataset manifest ({exc})") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"{path}: format {manifest.get('format')!r}; expected {MANIFEST_FORMAT!r}")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a dataset folder (its shards' manifests merged into one), or one clear error."""
    shards = shard_manifests(folder)
    if not shards:
        return read_manifest_file(folder / MANIFEST)
    if (folder / MANIFEST).exists():
        raise DatasetError(
            f"{folder}: holds both {MANIFEST} and shard manifests ({shards[0].name}, ...); keep one of the two layouts"
        )
    return merge_shards({path: read_manifest_file(path) for path in shards})


def merge_shards(manifests: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    """The manifest of the whole dataset from those of its shards (all of one dataset and one ``N``)."""
    (first_path, first), *rest = manifests.items()
    common = {k: v for k, v in first.items() if k not in _PER_SHARD}
    for path, manifest in rest:
        differ = sorted(k for k in set(common) | set(manifest) - set(_PER_SHARD) if manifest.get(k) != common.get(k))
        count = manifest.get("shard", {}).get("count")
        if differ or count != first.get("shard", {}).get("count"):
            named = ", ".join(differ) or "the shard count N"
            raise DatasetError(f"{path} and {first_path.name}: shards of different datasets (they differ in {named})")
    frames = sorted((r for m in manifests.values() for r in m["frames"]), key=lambda r: (r["scene"], r["frame"]))
    config = common["config"]
    planned = int(config["scenes"]) * int(config["frames"])
    return {**common, "planned_frames": planned, "frames": frames, "complete": len(frames) == planned}
