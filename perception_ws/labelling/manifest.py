"""``DIR/manifest.json`` of a labelling run: the settings the files were made with and the frames done.

A rerun with the same settings resumes: a frame whose files are all present with the checksums the manifest
recorded is kept, any other is labelled again. A rerun with other settings is refused (one line naming the
settings that differ), so one folder never mixes labels of two configurations. Leftover temporary files
(``.NAME.XXXX.tmp``, from a run killed mid-write) are removed first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perception_ws import __version__
from perception_ws.errors import DatasetError
from perception_ws.io.manifest import file_sha256, write_frames_manifest

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "perception_ws.label/1"


def new_manifest(settings: dict[str, Any], planned: int) -> dict[str, Any]:
    """The manifest of a run about to start: its settings and how many frames it will label."""
    return {
        "format": MANIFEST_FORMAT,
        "generator": {"package": "perception_ws", "version": __version__},
        "settings": settings,
        "planned_frames": planned,
        "frames": [],
        "complete": False,
    }


def resume_manifest(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with the intact frames of an earlier run in ``out`` (same settings, else a DatasetError)."""
    for stale in (p for p in out.rglob(".*.tmp")):
        if stale.is_file():
            stale.unlink(missing_ok=True)
    path = out / MANIFEST
    if not path.is_file():
        return manifest
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        stored_settings = stored["settings"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path}: not a readable labelling manifest ({err}); choose a new --out") from None
    wanted = manifest["settings"]
    differ = sorted(k for k in set(stored_settings) | set(wanted) if stored_settings.get(k) != wanted.get(k))
    if differ:
        raise DatasetError(
            f"{out}: holds labels made with other settings ({', '.join(differ)}); "
            "rerun with the same settings to resume, or choose a new --out"
        )
    manifest["frames"] = [record for record in stored.get("frames", []) if _intact(out, record)]
    return manifest


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` atomically (frames sorted, ``complete`` set)."""
    write_frames_manifest(out / MANIFEST, manifest, order=lambda record: record["index"])


def _intact(out: Path, record: dict[str, Any]) -> bool:
    files: dict[str, str] = record.get("files", {})
    return all((out / name).is_file() and file_sha256(out / name) == sha for name, sha in files.items())
