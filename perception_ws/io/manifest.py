"""The manifest of a resumable output folder (``perception sim generate``, ``perception label``).

A JSON file listing the run's settings and every finished frame with its files' checksums. It is rewritten
atomically as frames finish, so a killed run always leaves a readable one, and the same command resumes
from the frames whose files still match their checksums.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perception_ws.io.atomic import atomic_file


def write_frames_manifest(path: Path, manifest: dict[str, Any], order: Callable[[dict[str, Any]], Any]) -> None:
    """Write ``manifest`` to ``path`` atomically, its ``frames`` sorted by ``order`` and ``complete`` set
    (every one of ``planned_frames`` is done).
    """
    manifest["frames"].sort(key=order)
    manifest["complete"] = len(manifest["frames"]) == manifest["planned_frames"]
    with atomic_file(path) as handle:
        handle.write(json.dumps(manifest, indent=1).encode())


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
