"""SqueezeSeg / SqueezeSegV2: shapes over heights, widths and class sets, structure, config, complexity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.models import build_model, model_complexity, model_from_config
from perception_ws.models.cam import ContextAggregation
from perception_ws.models.fire import Fire, FireDeconv, FireExpand
from perception_ws.models.inference import fold_batch_norm, prepare_for_inference


def _range_image(channels: int, height: int, width: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A synthetic scan: points on a sphere-ish surface 5-30 m away, 10 % of the pixels empty (all zero)."""
    g = torch.Generator().manual_seed(seed)
    rng = 5 + 25 * torch.rand(batch, 1, height, width, generator=g)
    az = torch.linspace(0.8, -0.8, width).view(1, 1, 1, width)
    el = torch.linspace(0.03, -0.4, height).view(1, 1, height, 1)
    x = rng * torch.cos(el) * torch.cos(az)
    y = rng * torch.cos(el) * torch.sin(az)
    z = rng * torch.sin(el)
    inten = torch.rand(batch, 1, height, width, generator=g)
    valid = (torch.rand(batch, 1, height, width, generator=g) > 0.1).float()
    img = torch.cat([x, y, z, inten, rng, valid], dim=1)[:, :channels] * valid
    return img


CASES = [
    ("squeezesegv2", 16, 512),
    ("squeezesegv2", 16, 2048),
    ("squeezesegv2", 32, 1000),
    ("squeezesegv2", 64, 1000),
    ("squeezesegv2", 128, 1000),
    ("squeezeseg", 16, 1000),
    ("squeezeseg", 128, 512),
]


@pytest.mark.parametrize(("name", "height", "width"), CASES)
def test_output_shape_any_height_and_width(name: str, height: int, width: int) -> None:
    model = build_model(name, len(KITTI3), crf=True).eval()
    x = _range_image(model.in_channels, height, width)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (1, len(KITTI3), height, width)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["squeezeseg", "squeezesegv2"])
@pytest.mark.parametrize("num_classes", [len(KITTI3), len(SEMANTIC_KITTI)])
@pytest.mark.parametrize("crf", [False, True])
def test_output_shape_class_sets_with_and_without_crf(name: str, num_classes: int, crf: bool) -> None:
    model = build_model(name, num_classes, crf=crf).eval()
    x = _range_image(model.in_channels, 16, 200, batch=2)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (2, num_classes, 16, 200)


def test_default_input_channels_v1_five_v2_six_with_mask() -> None:
    assert build_model("squeezeseg", 4).in_channels == 5
    assert build_model("squeezesegv2", 4).in_channels == 6


def test_odd_width_is_padded_with_empty_columns_and_cropped() -> None:
    """A width that is not a multiple of 16 gives the same logits as the input padded by hand with empty
    (all-zero) columns, cropped: the padding is exactly "no return"."""
    model = build_model("squeezesegv2", 4).eval()
    x = _range_image(6, 16, 1000)
    padded = torch.nn.functional.pad(x, (0, 8))
    with torch.inference_mode():
        out = model(x)
        ref = model(padded)[..., :1000]
    assert torch.allclose(out, ref, atol=1e-5)


def test_width_is_downsampled_16x_and_height_never() -> None:
    model = build_model("squeezeseg", 4).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name in ("conv1", "fire3", "fire5", "fire9", "fire10", "fire13"):
        getattr(model.net, name).register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, tuple(o.shape)))
    with torch.inference_mode():
        model(_range_image(5, 64, 512))
    assert seen == {
        "conv1": (1, 64, 64, 256),
        "fire3": (1, 128, 64, 128),
        "fire5": (1, 256, 64, 64),
        "fire9": (1, 512, 64, 32),
        "fire10": (1, 256, 64, 64),
        "fire13": (1, 64, 64, 512),
    }


def test_v2_has_batch_norm_after_convs_and_three_cams_v1_has_neither() -> None:
    v1, v2 = build_model("squeezeseg", 4), build_model("squeezesegv2", 4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in v1.modules())
    assert not any(isinstance(m, ContextAggregation) for m in v1.modules())
    cams = [n for n, m in v2.named_modules() if isinstance(m, ContextAggregation)]
    assert cams == ["net.cam1", "net.cam2", "net.cam3"]
    # every conv of the backbone is followed by BN, except conv14 (logits) and the CAM gates (thesis Fig. 3)
    convs = [n for n, m in v2.net.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    backbone = [n for n in convs if n != "conv14" and not n.startswith("cam")]
    assert len(backbone) == sum(isinstance(m, nn.BatchNorm2d) for m in v2.modules()) == 2 + 8 * 3 + 4 * 4
    for name, module in v2.net.named_modules():
        if isinstance(module, nn.Sequential) and isinstance(module[0], nn.Conv2d | nn.ConvTranspose2d):
            assert isinstance(module[1], nn.BatchNorm2d), name


def test_fire_modules_channels_and_deconv_doubles_width_by_interpolation() -> None:
    fire = Fire(64, 16, 64, 64, batch_norm=False)
    assert fire(torch.rand(1, 64, 8, 40)).shape == (1, 128, 8, 40)
    deconv = FireDeconv(64, 16, 32, 32, batch_norm=False)
    assert deconv(torch.rand(1, 64, 8, 40)).shape == (1, 64, 8, 80)
    # the transposed conv starts as linear interpolation: a ramp stays a ramp of half the slope (interior)
    up = deconv.upsample[0]
    ramp = torch.arange(10, dtype=torch.float32).view(1, 1, 1, 10).repeat(1, 16, 1, 1)
    out = up(ramp)[0, 0, 0, 1:-1]
    assert torch.allclose(out.diff(), torch.full_like(out.diff(), 0.5))


def test_cam_gate_uses_a_7x7_max_pool_and_shrinks_activations() -> None:
    cam = ContextAggregation(32)
    x = torch.rand(2, 32, 16, 40)
    assert torch.equal(cam.pool(x), nn.MaxPool2d(7, stride=1, padding=3)(x))
    out = cam(x)
    assert out.shape == x.shape
    # sigmoid gate in (0, 1) on non-negative inputs
    assert (out <= x).all()
    assert (out >= 0).all()


def test_config_round_trips_through_json_with_fitted_normaliser(tmp_path: Path) -> None:
    model = build_model("squeezesegv2", 20, crf=True, crf_params={"sigma_beta": 0.2, "iterations": 2}, dropout=0.3)
    x = _range_image(6, 16, 512, batch=2)
    model.normalizer.fit(x, x[:, 4] > 0, skip=[5])
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model.config))
    clone = model_from_config(json.loads(path.read_text()))
    clone.load_state_dict(model.state_dict())
    assert clone.config == model.config
    assert clone.crf is not None
    assert clone.crf.iterations == 2
    model.eval()
    clone.eval()
    with torch.inference_mode():
        assert torch.equal(model(x), clone(x))


@pytest.mark.real_data
def test_normaliser_fit_matches_numpy_statistics_of_a_real_frame(real_data: Path) -> None:
    record = np.load(sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[0])
    valid = record[..., 4] > 0
    x = torch.from_numpy(np.concatenate([record[..., :5], valid[..., None]], -1).astype(np.float32))
    x = x.permute(2, 0, 1)[None]
    model = build_model("squeezesegv2", 4)
    model.normalizer.fit(x, torch.from_numpy(valid)[None], skip=[5])
    pts = record[valid][:, :5].astype(np.float64)
    assert np.allclose(model.normalizer.mean[:5].numpy(), pts.mean(0), rtol=1e-5, atol=1e-5)
    assert np.allclose(model.normalizer.std[:5].numpy(), pts.std(0), rtol=1e-4)
    assert model.normalizer.mean[5] == 0
    assert model.normalizer.std[5] == 1
    # forward pass on the real frame normalises valid pixels to zero mean
    normed = model.normalizer(x)[0, :5][:, torch.from_numpy(valid)]
    assert normed.mean(dim=1).abs().max() < 1e-3
    # a constant channel (simulated scans carry no intensity) keeps std 1 instead of blowing up
    model.normalizer.fit(x * torch.tensor([1, 1, 1, 0, 1, 1.0]).view(1, 6, 1, 1), torch.from_numpy(valid)[None])
    assert model.normalizer.std[3] == 1


def test_bad_inputs_and_configs_raise_one_clear_error() -> None:
    model = build_model("squeezesegv2", 4)
    with pytest.raises(CloudFormatError, match=r"\(B, 6, H, W\)"):
        model(torch.zeros(1, 5, 16, 512))
    with pytest.raises(CloudFormatError):
        model(torch.zeros(6, 16, 512))
    with pytest.raises(PerceptionError, match="unknown model"):
        build_model("squeezenet", 4)
    with pytest.raises(PerceptionError, match="unknown config keys"):
        build_model("squeezeseg", 4, kernel=3)
    with pytest.raises(PerceptionError, match="num_classes"):
        build_model("squeezeseg", 1)
    with pytest.raises(PerceptionError, match="CRF needs"):
        build_model("squeezeseg", 4, in_channels=3, crf=True)
    with pytest.raises(PerceptionError, match="CRF config"):
        build_model("squeezeseg", 4, crf=True, crf_params={"sigma": 1.0})
    with pytest.raises(PerceptionError, match="sigma_beta"):
        build_model("squeezeseg", 4, crf=True, crf_params={"sigma_beta": [0.1, 0.2]})


def _fire_params(cin: int, s: int, e1: int, e3: int, deconv: bool = False) -> int:
    """Parameters of a v1 fire(deconv) module from the thesis' layer description (weights + biases)."""
    n = cin * s + s + s * e1 + e1 + 9 * s * e3 + e3
    return n + (4 * s * s + s if deconv else 0)


def test_parameter_count_matches_the_architecture_table() -> None:
    k = 4
    expected = (
        (9 * 5 * 64 + 64)  # conv1
        + (5 * 64 + 64)  # conv1_skip
        + _fire_params(64, 16, 64, 64)
        + _fire_params(128, 16, 64, 64)
        + _fire_params(128, 32, 128, 128)
        + _fire_params(256, 32, 128, 128)
        + _fire_params(256, 48, 192, 192)
        + _fire_params(384, 48, 192, 192)
        + _fire_params(384, 64, 256, 256)
        + _fire_params(512, 64, 256, 256)
        + _fire_params(512, 64, 128, 128, deconv=True)
        + _fire_params(256, 32, 64, 64, deconv=True)
        + _fire_params(128, 16, 32, 32, deconv=True)
        + _fire_params(64, 16, 32, 32, deconv=True)
        + (9 * 64 * k + k)  # conv14
    )
    model = build_model("squeezeseg", k)
    assert model_complexity(model, _range_image(5, 64, 512)).params == expected


def test_fire_modules_cost_what_the_thesis_says() -> None:
    """Thesis ch. 3 §3.2: for C channels in and out (squeeze C/4, expand C/2 + C/2) a fire module has
    3/2 C^2 weights and 3/2 HWC^2 MACs (a 3x3 conv: 9 C^2); a fireDeconv 7/4 C^2 (a 1x4 deconv: 4 C^2)."""
    c, h, w = 128, 8, 32
    fire = Fire(c, c // 4, c // 2, c // 2, batch_norm=False)
    weights = sum(p.numel() for n, p in fire.named_parameters() if n.endswith("weight"))
    assert weights == 3 * c * c // 2
    assert model_complexity(fire, torch.rand(1, c, h, w)).macs == 3 * h * w * c * c // 2
    deconv = FireDeconv(c, c // 4, c // 2, c // 2, batch_norm=False)
    weights = sum(p.numel() for n, p in deconv.named_parameters() if n.endswith("weight"))
    assert weights == 7 * c * c // 4
    # MACs at the OUTPUT size (2W): squeeze runs at W, so a little less than 7/4 H (2W) C^2
    macs = model_complexity(deconv, torch.rand(1, c, h, w)).macs
    assert macs == h * w * c * c // 4 + h * w * 4 * (c // 4) ** 2 + h * 2 * w * 10 * c * c // 8


def test_mac_hooks_count_conv_and_deconv_by_the_thesis_formula() -> None:
    conv = nn.Conv2d(8, 16, 3, padding=1)
    deconv = nn.ConvTranspose2d(16, 16, (1, 4), stride=(1, 2), padding=(0, 1))
    seq = nn.Sequential(conv, deconv)
    c = model_complexity(seq, torch.rand(1, 8, 10, 20))
    assert [layer.kind for layer in c.layers] == ["conv", "deconv"]
    assert c.layers[0].macs == 10 * 20 * 16 * 8 * 9  # outputs x C_in x kh x kw
    assert c.layers[1].macs == 10 * 20 * 16 * 16 * 4  # inputs x C_out x kh x kw
    assert c.params == (8 * 9 * 16 + 16) + (16 * 16 * 4 + 16)


def test_crf_adds_few_macs_and_counts_per_iteration() -> None:
    x = _range_image(6, 64, 512)
    plain = model_complexity(build_model("squeezesegv2", 4), x)
    with_crf = model_complexity(build_model("squeezesegv2", 4, crf=True), x)
    crf_macs = with_crf.macs - plain.macs
    # 3 iterations x (2 messages x 14 neighbours x 4 classes + 1x1 compat 4x4) per pixel
    assert crf_macs == 3 * (2 * 14 * 4 + 16) * 64 * 512
    assert crf_macs < 0.01 * plain.macs


def test_folded_batch_norm_and_channels_last_give_the_same_logits() -> None:
    torch.manual_seed(0)
    model = build_model("squeezesegv2", 4, crf=True)
    x = _range_image(6, 16, 512, batch=2)
    model.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            model(x)
    model.eval()
    folded = fold_batch_norm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    fast = prepare_for_inference(model)
    with torch.inference_mode():
        ref = model(x)
        assert torch.allclose(folded(x), ref, atol=1e-4)
        assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


@pytest.mark.real_data
def test_merged_fire_expands_give_the_shipped_networks_logits_on_real_frames(real_data: Path) -> None:
    """One 3x3 conv per fire expand (1x1 weights as its centre taps): the shipped weights' logits unchanged."""
    from perception_ws.config import PipelineConfig
    from perception_ws.io import load
    from perception_ws.models.network_segmenter import load_network
    from perception_ws.projection import project

    network = load_network(PipelineConfig())
    plain, merged = prepare_for_inference(network), prepare_for_inference(network, merge_expand=True)
    convs = [sum(isinstance(m, nn.Conv2d) for m in model.modules()) for model in (plain, merged)]
    assert convs[0] - convs[1] == 12  # 8 fire and 4 fireDeconv modules, one conv fewer each
    assert not any(isinstance(m, FireExpand) for m in merged.modules())
    for name in ("000000", "000002"):
        image = project(load(real_data / "kitti_object" / "velodyne" / f"{name}.bin").points, "hdl64e", 90.0, 512).image
        x = torch.from_numpy(image[..., :6]).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            expected, got = plain(x), merged(x)
        assert torch.allclose(got, expected, atol=1e-4)
        assert torch.equal(got.argmax(1), expected.argmax(1))


def test_training_step_updates_every_parameter_of_both_models() -> None:
    for name in ("squeezeseg", "squeezesegv2"):
        torch.manual_seed(0)
        model = build_model(name, 4, crf=True, dropout=0.0).train()
        x = _range_image(model.in_channels, 16, 64, batch=2)
        labels = torch.randint(0, 4, (2, 16, 64))
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert missing == [], name
