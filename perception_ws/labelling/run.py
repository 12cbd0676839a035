"""The frame loop of `perception label`: every frame of a source through the node's :class:`Pipeline`, each
frame's files written atomically as soon as it is done, the manifest kept up to date (resumable).

Output folder (``NNNNNN`` = the frame's index in the source, six digits):

* ``labels/NNNNNN.label`` (format ``semantickitti``): :mod:`perception_ws.labelling.semantickitti`;
* ``label_velo/NNNNNN.txt`` and, for scans with a KITTI calibration, ``label_2/NNNNNN.txt`` (``kitti``):
  :mod:`perception_ws.labelling.kitti_lines`;
* ``pcd/NNNNNN.pcd`` (``pcd``): the scan's fields plus ``instance`` (uint32) and ``label`` (uint16), binary;
* ``labels.mcap`` (``mcap``): :mod:`perception_ws.labelling.mcap`, from ``results/NNNNNN.npz``;
* ``manifest.json``: :mod:`perception_ws.labelling.manifest`.

Detection is per scan (``process(track=False)``): a frame's labels, instances and boxes do not depend on the
frames before it, so a resumed or sharded run writes the same files as one uninterrupted run.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from perception_ws.config import PipelineConfig
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.io.manifest import PeriodicSave, file_sha256
from perception_ws.io.registry import find_reader
from perception_ws.labelling.kitti_lines import write_camera_lines, write_sensor_lines
from perception_ws.labelling.manifest import new_manifest, resume_manifest, write_manifest
from perception_ws.labelling.options import LabelOptions
from perception_ws.labelling.results import FrameResult, load_result, save_result
from perception_ws.labelling.semantickitti import write_label_file
from perception_ws.labelling.summary import LabelSummary
from perception_ws.pipeline import Pipeline, PipelineResult
from perception_ws.scan import Scan
from perception_ws.schema import flatten

MCAP_FILE = "labels.mcap"
#: stamp of a scan that carries none: its index at 10 Hz (as write_bag stamps scans).
_PERIOD_NS = 100_000_000


def label_dataset(path: str | Path, out: str | Path, config: PipelineConfig, options: LabelOptions) -> LabelSummary:
    """Label the frames of ``path`` chosen by ``options`` into ``out`` (resuming what is there)."""
    source = Path(path).expanduser().resolve()
    folder = Path(out).expanduser()
    dataset = open_dataset(source)
    if len(dataset) == 0:
        raise DatasetError(f"{source}: holds no frames ({'; '.join(dataset.notes) or 'it is empty'})")
    frames = options.shard.indices(len(dataset))[: options.max_frames]
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    settings = _settings(source, len(dataset), config, options)
    manifest = resume_manifest(folder, new_manifest(settings, len(frames)))
    done = {record["index"] for record in manifest["frames"]}
    todo = [index for index in frames if index not in done]
    pipeline = Pipeline(config)
    points, start = 0, time.perf_counter()
    bar = _progress(len(frames), len(done), options.progress)
    with PeriodicSave(partial(write_manifest, folder, manifest)) as saving:
        try:
            for batch in _batches(todo, options.batch_size):
                scans = [dataset[index] for index in batch]
                stamps_ns = [_stamp_ns(scan, index) for scan, index in zip(scans, batch, strict=True)]
                inputs = [_pipeline_input(scan, config) for scan in scans]
                results = pipeline.process_batch(inputs, [stamp / 1e9 for stamp in stamps_ns])
                for index, scan, result, stamp_ns in zip(batch, scans, results, stamps_ns, strict=True):
                    files = _write_frame(folder, index, scan, result, stamp_ns, options.formats)
                    manifest["frames"].append(_record(folder, index, scan, result, files))
                    points += len(scan)
                    bar.update(1)
                saving.tick()
        finally:
            bar.close()
    seconds = time.perf_counter() - start
    summary = LabelSummary.from_records(str(folder), manifest, len(todo), points, seconds)
    if "mcap" in options.formats:
        mcap = folder / MCAP_FILE
        if todo or not mcap.is_file():  # made from every frame's results: rebuilt when any frame is new
            result_of = partial(_stored_result, folder, pipeline.class_set.names)
            from perception_ws.labelling.mcap import write_mcap

            write_mcap(mcap, dataset, frames, result_of, pipeline)  # its tracker is untouched so far
        summary.files.append(str(mcap))
    return summary


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def _stamp_ns(scan: Scan, index: int) -> int:
    return scan.stamp_ns if scan.stamp_ns is not None else index * _PERIOD_NS


def frame_stem(index: int) -> str:
    """File stem of frame ``index`` of the source."""
    return f"{index:06d}"


def _pipeline_input(scan: Scan, config: PipelineConfig) -> np.ndarray:
    """The scan's points; with ``segmenter.kind: labels``, plus the class ids the reader gave the scan (a KITTI
    object frame's boxes, SemanticKITTI labels) in ``segmenter.label_field`` when the points lack that field.
    """
    field = config.segmenter.label_field
    if config.segmenter.kind != "labels" or scan.labels is None or field in (scan.points.dtype.names or ()):
        return scan.points
    from perception_ws.fusion import with_field

    return with_field(scan.points, field, scan.labels)


def _settings(source: Path, total: int, config: PipelineConfig, options: LabelOptions) -> dict[str, Any]:
    """What decides the files: a resume must match all of it."""
    return {
        "source": str(source),
        "reader": find_reader(source).name,
        "source_frames": total,
        "formats": list(options.formats),
        "shard": str(options.shard),
        "max_frames": options.max_frames,
        "config": flatten(config),
        "weights_sha256": _weights_digest(config),
    }


def _weights_digest(config: PipelineConfig) -> str | None:
    if config.segmenter.kind != "model":
        return None
    from perception_ws.models.weights import weights_for

    weights = weights_for(config)
    return file_sha256(weights) if weights.is_file() else None  # a missing file fails when the pipeline loads


def _write_frame(
    out: Path, index: int, scan: Scan, result: PipelineResult, stamp_ns: int, formats: tuple[str, ...]
) -> list[str]:
    """Write one frame's files; their paths relative to ``out``."""
    stem, classes = frame_stem(index), result.class_set
    files = []
    if "semantickitti" in formats:
        files.append(f"labels/{stem}.label")
        _parent(out / files[-1])
        write_label_file(out / files[-1], result.labels, result.instances, classes)
    if "kitti" in formats:
        files.append(f"label_velo/{stem}.txt")
        _parent(out / files[-1])
        write_sensor_lines(out / files[-1], result.detections, classes)
        if scan.calib is not None:
            files.append(f"label_2/{stem}.txt")
            _parent(out / files[-1])
            write_camera_lines(out / files[-1], result.detections, classes, scan.calib, scan.image)
    if "pcd" in formats:
        from perception_ws.io.pcd import write_pcd
        from perception_ws.nodes.conversions import labelled_points

        files.append(f"pcd/{stem}.pcd")
        _parent(out / files[-1])
        write_pcd(out / files[-1], labelled_points(scan.points, result.labels, result.instances))
    if "mcap" in formats:
        files.append(f"results/{stem}.npz")
        _parent(out / files[-1])
        save_result(out / files[-1], FrameResult(result.labels, result.instances, result.detections, stamp_ns))
    return files


def _record(out: Path, index: int, scan: Scan, result: PipelineResult, files: list[str]) -> dict[str, Any]:
    names = result.class_set.names
    return {
        "index": index,
        "name": scan.name,
        "points": len(scan),
        "objects": dict(Counter(names[box.label] for box in result.detections)),
        "timings_ms": {name: round(ms, 3) for name, ms in result.timings_ms.items()},
        "files": {name: file_sha256(out / name) for name in files},
    }


def _stored_result(out: Path, class_names: tuple[str, ...], index: int) -> FrameResult:
    return load_result(out / f"results/{frame_stem(index)}.npz", class_names)


def _parent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="frame", desc="label", disable=not enabled, file=sys.stderr)
