"""The manifest of a resumable output folder (``perception sim generate``, ``perception label``).

A JSON file listing the run's settings and every finished frame with its files' checksums. It is rewritten
atomically as frames finish, so a killed run always leaves a readable one, and the same command resumes
from the frames whose files still match their checksums.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
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


class PeriodicSave:
    """``with PeriodicSave(save):`` calls ``save()`` from :meth:`tick` at most every ``every_s`` seconds while
    frames finish, and once more when the block ends, however it ends (a kill between saves loses at most
    ``every_s`` of finished frames from the manifest; their files are found again on resume).
    """

    def __init__(self, save: Callable[[], None], every_s: float = 2.0) -> None:
        self._save, self._every_s = save, every_s
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self._every_s:
            self._save()
            self._last = time.monotonic()

    def __enter__(self) -> PeriodicSave:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._save()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
