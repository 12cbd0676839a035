"""The point-voxel networks in the product: ``perception eval`` on real sources and the pipeline's
``segmenter.model: spvnas|spvcnn``, with a tiny super-network trained for two steps in a fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.cli import main
from perception_ws.config import ConfigError, PipelineConfig
from perception_ws.errors import WeightsError
from perception_ws.evaluation import evaluate, prepare_frame
from perception_ws.io import load
from perception_ws.models.point_segmenter import PointSegmenter
from perception_ws.models.sparse import Conv3d
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.weights import load_any_weights, save_weights
from perception_ws.pipeline import Pipeline
from perception_ws.scan import Scan
from perception_ws.training import train
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint
from perception_ws.training.loop import build_training_model
from tests.helpers.training import small_config


@pytest.fixture(scope="module")
def supernet(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SPVNAS super-network (an eighth of SPVCNN's widths, 0.2 m voxels) trained 2 steps on real frames."""
    root = tmp_path_factory.mktemp("spvnas")
    config = small_config(real_data / "kitti_squeezeseg", model="spvnas", steps=2, width_ratio=0.125, voxel_size=0.2)
    train(config, root / "run", progress=False)
    model = build_training_model(config)
    model.load_state_dict(load_checkpoint(root / "run" / CHECKPOINT)["model"])
    return save_weights(model.eval(), root / "spvnas.pt", training={"data": config.data, "steps": 2}, scores={})


@pytest.fixture(scope="module")
def semantic_scan(real_data: Path) -> Scan:
    return load(real_data / "semantickitti" / "000000.bin")


def _node_config(weights: Path, model: str = "spvnas") -> PipelineConfig:
    return PipelineConfig().replace(**{"segmenter.model": model, "segmenter.weights": str(weights)})


@pytest.mark.real_data
def test_eval_labels_every_scored_point_of_the_range_image_frames_directly(
    supernet: Path, real_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = real_data / "kitti_squeezeseg"
    args = ["eval", "--weights", str(supernet), "--model", "spvnas", "--data", str(data), "--frames", "2"]
    assert main([*args, "--json", "--no-instances", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 2
    assert result["labelled_frames"] == 2
    assert set(result["class"]) >= {"car", "pedestrian", "cyclist"}
    # the prediction is one class per point of the frame (its pixels' points), from the points alone
    model = load_any_weights(supernet)
    assert isinstance(model, PointVoxelSegmenter)
    frame = prepare_frame(load(sorted(data.glob("*.npy"))[0]))
    seen: list[int] = []

    def spy(points: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        seen.append(len(points))
        return PointVoxelSegmenter.forward_points(model, points, feats)

    model.forward_points = spy  # type: ignore[method-assign]
    evaluate(model, data, max_frames=1, instances=False, warmup=False)
    assert seen == [len(frame.xyz)]


@pytest.mark.real_data
def test_eval_scores_kitti_object_boxes_with_a_point_model(
    supernet: Path, real_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--weights", str(supernet), "--data", str(real_data / "kitti_object"), "--frames", "1"]
    assert main([*args, "--json", "--no-instances", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["detection"] is not None  # the boxes were scored on the point model's labels


@pytest.mark.real_data
def test_eval_refuses_weights_of_another_model_in_one_line(
    supernet: Path, real_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(real_data / "kitti_squeezeseg")
    assert main(["eval", "--weights", str(supernet), "--model", "spvcnn", "--data", data]) == 2
    err = capsys.readouterr().err.strip()
    assert "hold a 'spvnas' network, but --model is 'spvcnn'" in err
    assert "\n" not in err


@pytest.mark.real_data
def test_the_pipeline_runs_spvnas_on_every_point_of_a_semantickitti_scan(supernet: Path, semantic_scan: Scan) -> None:
    points = semantic_scan.points.copy()
    points["x"][:100] = np.nan  # not finite: left out, class 0
    # the network's own labels, to compare with a direct forward (consistent labels would unlabel stray points)
    pipeline = Pipeline(_node_config(supernet).replace(**{"detection.consistent_labels": False}))
    result = pipeline.process(points, stamp_s=0.0)
    assert len(result.labels) == len(points)
    assert np.all(result.labels[:100] == 0)
    assert "projection" not in result.timings_ms  # no range image on this path
    model = load_any_weights(supernet)
    assert isinstance(model, PointVoxelSegmenter)
    xyz = semantic_scan.xyz[100:]
    feats = np.column_stack([xyz, points["intensity"][100:]]).astype(np.float32)
    with torch.no_grad():
        direct = model.forward_points(torch.from_numpy(xyz), torch.from_numpy(feats)).argmax(1).numpy()
    assert np.array_equal(result.labels[100:], direct)


@pytest.mark.real_data
def test_segmenter_precision_bf16_runs_the_point_model_under_autocast(supernet: Path, semantic_scan: Scan) -> None:
    fp32 = Pipeline(_node_config(supernet)).process(semantic_scan.points, stamp_s=0.0).labels
    pipeline = Pipeline(_node_config(supernet).replace(**{"segmenter.precision": "bf16"}))
    segmenter = pipeline.segmenter
    assert isinstance(segmenter, PointSegmenter)
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():  # then it runs fp32 and says so (as the range models)
        assert "asked for bf16" in segmenter.summary
        return
    assert ", bf16," in segmenter.summary
    dtypes: list[torch.dtype] = []  # what the sparse convolutions computed in
    for module in segmenter.network.modules():
        if isinstance(module, Conv3d):
            module.register_forward_hook(lambda _m, _i, out: dtypes.append(out.feats.dtype))
    bf16 = pipeline.process(semantic_scan.points, stamp_s=0.0).labels
    assert dtypes
    assert set(dtypes) == {torch.bfloat16}
    assert not np.array_equal(bf16, np.zeros_like(bf16))
    # bf16 matmuls move a few logits across a decision boundary, no more (the hashing and maps stay exact)
    assert np.mean(bf16 == fp32) > 0.98


@pytest.mark.real_data
def test_the_node_config_refuses_a_family_mismatch_in_one_line(supernet: Path) -> None:
    with pytest.raises(WeightsError, match=r"hold a 'spvnas' network, but segmenter\.model is 'squeezesegv2'"):
        Pipeline(_node_config(supernet, model="squeezesegv2"))
    with pytest.raises(WeightsError, match=r"needs segmenter\.weights"):
        Pipeline(PipelineConfig().replace(**{"segmenter.model": "spvcnn"}))
    with pytest.raises(ConfigError, match="labels points with torch"):
        _node_config(supernet).replace(**{"segmenter.runtime": "onnxruntime", "segmenter.onnx": "x.onnx"})
    with pytest.raises(ConfigError, match="projection cpu"):
        _node_config(supernet).replace(**{"segmenter.projection": "device"})
