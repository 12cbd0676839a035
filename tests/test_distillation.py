"""Knowledge distillation (training/distillation.py) and the narrower networks it trains (``channel_scale``): the
term against a hand-computed KL divergence, a 3-step sim-gpu run distilling the shipped weights into a quarter-width
SqueezeSegV2 with real unlabelled scans, the term of a student that is the teacher, and clear refusals."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception_ws.adapt.target import TargetScans
from perception_ws.cli import main
from perception_ws.errors import PerceptionError
from perception_ws.labels import KITTI3
from perception_ws.models.losses import KITTI3_WEIGHTS_SQUEEZESEGV2
from perception_ws.models.registry import build_model, model_from_config
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.weights import DEFAULT_WEIGHTS
from perception_ws.training import TrainConfig, train
from perception_ws.training.alignment import read_target, real_batch
from perception_ws.training.checkpoint import CHECKPOINT, load_checkpoint
from perception_ws.training.curves import LOG, read_log
from perception_ws.training.distillation import Distillation, distillation_loss, load_teacher
from perception_ws.training.gpu_data import SweepBatches
from perception_ws.training.teacher_agreement import teacher_agreement
from tests.helpers.training import small_config

CPU = torch.device("cpu")
SCALE = 0.25


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def _softmax(logits: list[float], temperature: float) -> list[float]:
    exps = [math.exp(v / temperature) for v in logits]
    return [e / sum(exps) for e in exps]


def _pixels(*logits: list[float]) -> torch.Tensor:
    """(1, C, 1, N) logits of N pixels in a row, from one list of C logits per pixel."""
    return torch.tensor(logits, dtype=torch.float32).T.reshape(1, len(logits[0]), 1, len(logits))


def distill_config(real_data: Path, **changes: object) -> TrainConfig:
    """The brief's tiny run: full-turn HDL-64E sweeps cut into 256-column crops, a quarter-width SqueezeSegV2
    taught by the shipped weights on the simulated batch and one real batch of KITTI odometry a step."""
    settings: dict[str, object] = {
        "sensor": "hdl64e",
        "columns": 2048,
        "crop_width": 256,
        "frames_per_scene": 1,
        "dropout": "physical",
        "channel_scale": SCALE,
        "teacher": str(DEFAULT_WEIGHTS),
        "target": str(real_data / "kitti_odometry_00"),
        "steps": 3,
    }
    return small_config("sim-gpu", **{**settings, **changes})


# --- the loss against a hand computation -----------------------------------------------------------------------


def test_the_loss_is_zero_for_equal_logits_and_positive_for_different_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(2, 4, 3, 5, generator=generator) * 3
    valid = torch.ones(2, 3, 5, dtype=torch.bool)
    assert float(distillation_loss(teacher.clone(), teacher, valid, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 4, 3, 5, generator=generator) * 3
    assert float(distillation_loss(student, teacher, valid, 2.0)) > 0.01


def test_the_loss_is_t_squared_times_the_kl_divergence_of_the_softened_probabilities() -> None:
    temperature = 2.0
    student, teacher = [-1.0, 1.0], [2.0, 0.0]
    p, q = _softmax(teacher, temperature), _softmax(student, temperature)
    expected = temperature**2 * _kl(p, q)
    valid = torch.ones(1, 1, 1, dtype=torch.bool)
    got = float(distillation_loss(_pixels(student), _pixels(teacher), valid, temperature))
    assert got == pytest.approx(expected, rel=1e-5)
    assert expected > 0.05  # not a trivially small example


def test_pixels_without_a_return_do_not_change_the_loss() -> None:
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(2, 4, 6, 8, generator=generator)
    teacher = torch.randn(2, 4, 6, 8, generator=generator)
    valid = torch.rand(2, 6, 8, generator=generator) > 0.5
    assert 0 < int(valid.sum()) < valid.numel()
    before = float(distillation_loss(student, teacher, valid, 2.0, torch.tensor(KITTI3_WEIGHTS_SQUEEZESEGV2)))
    invalid = (~valid).unsqueeze(1).expand_as(student)
    wild_student, wild_teacher = student.clone(), teacher.clone()
    wild_student[invalid] = torch.randn(int(invalid.sum()), generator=generator) * 1e4
    wild_teacher[invalid] = torch.randn(int(invalid.sum()), generator=generator) * 1e4 + 500
    after = float(distillation_loss(wild_student, wild_teacher, valid, 2.0, torch.tensor(KITTI3_WEIGHTS_SQUEEZESEGV2)))
    assert after == pytest.approx(before, rel=1e-6)
    # and the wild logits do change it where the pixels count
    assert float(distillation_loss(wild_student, wild_teacher, torch.ones_like(valid), 2.0)) > 10 * before


def test_no_valid_pixel_gives_zero() -> None:
    student, teacher = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2) * torch.tensor([3.0, 0.0]).view(1, 2, 1, 1)
    assert float(distillation_loss(student, teacher, torch.zeros(1, 2, 2, dtype=torch.bool), 2.0)) == 0.0


def test_class_weights_weight_each_pixel_by_the_teachers_best_class() -> None:
    temperature = 1.0
    # pixel a: the teacher says class 0, the student is unsure; pixel b: class 1, the student leans to class 0
    teacher_a, teacher_b, student_a, student_b = [3.0, 0.0], [-2.0, 2.0], [0.0, 0.0], [1.0, 0.0]
    kl_a = _kl(_softmax(teacher_a, temperature), _softmax(student_a, temperature))
    kl_b = _kl(_softmax(teacher_b, temperature), _softmax(student_b, temperature))
    weights = torch.tensor([1.0, 3.0])
    weighted = temperature**2 * (1.0 * kl_a + 3.0 * kl_b) / (1.0 + 3.0)
    plain = temperature**2 * (kl_a + kl_b) / 2
    assert abs(weighted - plain) > 0.05  # the example tells the two apart
    student, teacher = _pixels(student_a, student_b), _pixels(teacher_a, teacher_b)
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    assert float(distillation_loss(student, teacher, valid, temperature)) == pytest.approx(plain, rel=1e-5)
    got = float(distillation_loss(student, teacher, valid, temperature, weights))
    assert got == pytest.approx(weighted, rel=1e-5)
    # the teacher's class decides, not the student's: swapping the student's preference changes only the KL values
    swapped = _pixels([0.0, 1.0], student_a)
    kl_a2 = _kl(_softmax(teacher_a, temperature), _softmax([0.0, 1.0], temperature))
    kl_b2 = _kl(_softmax(teacher_b, temperature), _softmax(student_a, temperature))
    again = float(distillation_loss(swapped, teacher, valid, temperature, weights))
    assert again == pytest.approx(temperature**2 * (kl_a2 + 3.0 * kl_b2) / 4.0, rel=1e-5)


def test_mismatched_logit_shapes_are_refused() -> None:
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    with pytest.raises(PerceptionError, match=r"student logits \(1, 3, 2, 2\) vs teacher \(1, 4, 2, 2\)"):
        distillation_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2), valid, 2.0)


# --- a tiny run distilling the shipped weights -----------------------------------------------------------------


@pytest.fixture(scope="module")
def held_out(real_data: Path) -> np.ndarray:
    """Two 256-column crops of the kitti_object scans (unlabelled here; the tiny run is not distilled on them)."""
    scans = TargetScans(real_data / "kitti_object", sensor="hdl64e", columns=2048, crop_width=256, seed=0)
    return scans.batch(range(2))


@pytest.fixture(scope="module")
def distilled(real_data: Path, held_out: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """3 CPU steps of the brief's run, once, logging the agreement with the teacher on ``held_out`` at its one
    checkpoint (the last step); the teacher's checksum before and after."""
    before = _sha256(DEFAULT_WEIGHTS)
    out = tmp_path_factory.mktemp("distill") / "run"
    result = train(distill_config(real_data), out, agreement_scans=held_out, progress=False)
    assert result.finished
    return {"out": out, "before": before, "after": _sha256(DEFAULT_WEIGHTS)}


@pytest.mark.real_data
def test_a_run_with_a_teacher_logs_a_finite_positive_distill_term_and_no_gca(distilled: dict[str, object]) -> None:
    out = distilled["out"]
    assert isinstance(out, Path)
    rows = read_log(out / LOG)
    assert [r["step"] for r in rows] == [1.0, 2.0, 3.0]
    for row in rows:
        assert "gca" not in row
        assert math.isfinite(row["distill"])
        assert row["distill"] > 0
        assert row["loss"] > row["distill"]  # the focal loss is the rest
    header = (out / LOG).read_text().splitlines()[0].split(",")
    assert "distill" in header
    assert "gca" not in header
    state = load_checkpoint(out / CHECKPOINT)
    assert state["data"]["distillation"]["teacher"] == str(DEFAULT_WEIGHTS)
    assert state["data"]["distillation"]["real_batches"].endswith("kitti_odometry_00")
    assert "gca" not in state["data"]


@pytest.mark.real_data
def test_the_checkpoint_rebuilds_the_narrow_network(distilled: dict[str, object]) -> None:
    out = distilled["out"]
    assert isinstance(out, Path)
    state = load_checkpoint(out / CHECKPOINT)
    assert state["model_config"]["channel_scale"] == SCALE
    assert state["config"]["channel_scale"] == SCALE
    rebuilt = model_from_config(state["model_config"])
    assert rebuilt.channel_scale == SCALE
    saved = sum(t.numel() for t in state["model"].values())
    assert sum(t.numel() for t in rebuilt.state_dict().values()) == saved
    rebuilt.load_state_dict(state["model"])  # strict: every name and shape matches
    narrow = sum(p.numel() for p in rebuilt.parameters())
    full = sum(p.numel() for p in build_model("squeezesegv2", 4).parameters())
    assert narrow < full
    assert narrow < full / 4  # convolutions shrink with the square of the scale


@pytest.mark.real_data
def test_the_teacher_weights_are_unchanged(distilled: dict[str, object]) -> None:
    assert distilled["after"] == distilled["before"]


# --- the label-free check: agreement with the teacher on unlabelled real scans -----------------------------------


def _student(distilled: dict[str, object]) -> RangeSegmenter:
    """The tiny run's student as its checkpoint saved it."""
    out = distilled["out"]
    assert isinstance(out, Path)
    state = load_checkpoint(out / CHECKPOINT)
    student = model_from_config(state["model_config"])
    student.load_state_dict(state["model"])
    return student


@pytest.mark.real_data
def test_the_teacher_agrees_with_itself_everywhere(held_out: np.ndarray) -> None:
    teacher = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU)
    found = teacher_agreement(teacher, load_teacher(str(DEFAULT_WEIGHTS), 4, CPU), held_out, KITTI3)
    assert found.images == 2
    assert found.pixels == 1.0
    assert found.classes["car"].iou == 1.0  # the crops hold cars (else the IoU would be undefined)


@pytest.mark.real_data
def test_a_barely_trained_student_agrees_less_and_is_scored_against_the_teachers_labels(
    distilled: dict[str, object], held_out: np.ndarray
) -> None:
    student = _student(distilled)
    teacher = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU)
    found = teacher_agreement(student, teacher, held_out, KITTI3)
    assert 0.0 < found.pixels < 1.0
    # by hand: the teacher's labels as ground truth over the pixels with a return
    x = torch.from_numpy(held_out)
    valid = (x[:, 4] > 0).numpy()
    with torch.no_grad():
        taught = teacher(x).argmax(1).numpy()[valid]
        labelled = student.eval()(x).argmax(1).numpy()[valid]
    assert found.pixels == pytest.approx(float(np.mean(taught == labelled)))
    car = ((taught == 1) & (labelled == 1)).sum() / ((taught == 1) | (labelled == 1)).sum()
    assert found.classes["car"].iou == pytest.approx(float(car))


@pytest.mark.real_data
def test_the_checkpoint_logs_the_agreement_with_the_teacher_on_the_held_out_scans(
    distilled: dict[str, object], held_out: np.ndarray
) -> None:
    out = distilled["out"]
    assert isinstance(out, Path)
    rows = read_log(out / LOG)
    assert all("agree_pixels" not in row for row in rows[:-1])  # only checkpoint rows are scored
    last = rows[-1]
    found = teacher_agreement(_student(distilled), load_teacher(str(DEFAULT_WEIGHTS), 4, CPU), held_out, KITTI3)
    assert last["agree_pixels"] == pytest.approx(100 * found.pixels, abs=1e-3)
    for name in ("car", "pedestrian", "cyclist"):
        assert last[f"agree_{name}"] == pytest.approx(100 * found.classes[name].iou, abs=1e-3, nan_ok=True)
    assert "agree_unknown" not in last


def test_agreement_scans_without_a_teacher_are_refused(tmp_path: Path) -> None:
    config = small_config("sim-gpu", sensor="hdl64e", columns=2048, crop_width=256, steps=1)
    with pytest.raises(PerceptionError, match="need --teacher"):
        train(config, tmp_path / "run", agreement_scans=np.zeros((1, 6, 64, 256), np.float32), progress=False)
    assert not (tmp_path / "run").exists()


def test_agreement_of_networks_with_other_class_counts_is_refused() -> None:
    images = np.zeros((1, 6, 64, 32), dtype=np.float32)
    with pytest.raises(PerceptionError, match="same number of classes"):
        teacher_agreement(build_model("squeezesegv2", 20), build_model("squeezesegv2", 4), images, KITTI3)


# --- the term of one step ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def step_inputs(real_data: Path) -> dict[str, object]:
    """The run's config, its real scans and the simulated batch of step 0."""
    config = distill_config(real_data)
    images, _ = next(SweepBatches(config).batches(0, 1, CPU, workers=0))
    return {"config": config, "target": read_target(config), "images": images}


@pytest.mark.real_data
def test_a_student_that_is_the_teacher_has_a_zero_term_and_a_narrow_one_does_not(
    step_inputs: dict[str, object],
) -> None:
    config, images = step_inputs["config"], step_inputs["images"]
    assert isinstance(config, TrainConfig)
    assert isinstance(images, torch.Tensor)
    target = step_inputs["target"]
    assert target is not None
    teacher = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU)
    copy = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU).eval()
    weights = KITTI3_WEIGHTS_SQUEEZESEGV2
    real = real_batch(target, config.batch_size, 6, 0, 0, 1)  # type: ignore[arg-type]
    assert bool((real[:, 4] > 0).any())  # the real batch holds returns
    assert bool((images[:, 4] > 0).any())
    terms: dict[str, float] = {}
    for name, student in (("copy", copy), ("narrow", build_model("squeezesegv2", 4, channel_scale=SCALE).eval())):
        torch.manual_seed(0)
        with_real = Distillation(config, teacher, student, target, weights)  # type: ignore[arg-type]
        logits, term = with_real.forward(student, images, 0, 0, 1, amp=False)
        assert logits.shape == (images.shape[0], 4, *images.shape[2:])
        sim_only = Distillation(config, teacher, student, None, weights)
        _, sim_term = sim_only.forward(student, images, 0, 0, 1, amp=False)
        # the term with a target is the mean of the simulated batch's and the real batch's
        both, sim = float(term.detach()), float(sim_term.detach())
        terms[name], terms[name + "_sim"], terms[name + "_real"] = both, sim, 2 * both - sim
    assert terms["copy"] == pytest.approx(0.0, abs=1e-6)
    assert terms["copy_sim"] == pytest.approx(0.0, abs=1e-6)
    assert terms["copy_real"] == pytest.approx(0.0, abs=1e-5)
    assert terms["narrow_sim"] > 1e-3
    assert terms["narrow_real"] > 1e-3
    assert terms["narrow"] > 1e-3


@pytest.mark.real_data
def test_the_term_is_weighted_and_matches_the_loss_on_the_real_batch(step_inputs: dict[str, object]) -> None:
    config, images, target = step_inputs["config"], step_inputs["images"], step_inputs["target"]
    assert isinstance(config, TrainConfig)
    assert isinstance(images, torch.Tensor)
    teacher = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU)
    torch.manual_seed(1)
    student = build_model("squeezesegv2", 4, channel_scale=SCALE).eval()
    weights = torch.tensor(KITTI3_WEIGHTS_SQUEEZESEGV2)
    heavy = TrainConfig(**{**config.to_json(), "distill_weight": 3.0, "distill_temperature": 4.0})
    distillation = Distillation(heavy, teacher, student, target, KITTI3_WEIGHTS_SQUEEZESEGV2)  # type: ignore[arg-type]
    _, term = distillation.forward(student, images, 0, 0, 1, amp=False)
    real = real_batch(target, config.batch_size, 6, 0, 0, 1)  # type: ignore[arg-type]
    with torch.no_grad():
        expected = [
            distillation_loss(student(batch), teacher(batch), student.valid_mask(batch), 4.0, weights)
            for batch in (images, real)
        ]
    assert float(term.detach()) == pytest.approx(3.0 * float(torch.stack(expected).mean()), rel=1e-5)
    assert term.requires_grad  # the student learns from it


# --- refusals ---------------------------------------------------------------------------------------------------

REFUSED = [
    ({"channel_scale": 0.3}, "channel_scale must be a multiple of 1/16 in (0, 2.0]; got 0.3"),
    ({"channel_scale": 0.0}, "channel_scale must be a multiple of 1/16 in (0, 2.0]; got 0.0"),
    ({"channel_scale": 3.0}, "channel_scale must be a multiple of 1/16 in (0, 2.0]; got 3.0"),
    ({"channel_scale": math.nan}, "channel_scale must be a multiple of 1/16 in (0, 2.0]; got nan"),
    ({"distill_weight": 0.0}, "distill_weight must be a finite number > 0; got 0.0"),
    ({"distill_weight": math.inf}, "distill_weight must be a finite number > 0; got inf"),
    ({"distill_temperature": -1.0}, "distill_temperature must be a finite number > 0; got -1.0"),
    ({"teacher": "{tmp}/missing.pt"}, "missing.pt' is not a weights file with its .json manifest"),
    ({"teacher": str(DEFAULT_WEIGHTS), "model": "spvcnn"}, "--teacher and --channel-scale are for the range-image"),
]


@pytest.mark.real_data
@pytest.mark.parametrize(("changes", "expected"), REFUSED)
def test_bad_distillation_settings_are_refused_by_the_config(
    changes: dict[str, object], expected: str, real_data: Path, tmp_path: Path
) -> None:
    changes = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in changes.items()}
    with pytest.raises(PerceptionError, match="train: ") as error:
        small_config(real_data / "kitti_squeezeseg", **changes)
    assert expected in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def _flags(changes: dict[str, object]) -> list[str]:
    return [a for k, v in changes.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.real_data
@pytest.mark.parametrize(("changes", "expected"), REFUSED)
def test_bad_distillation_flags_are_one_line_and_exit_status_2(
    changes: dict[str, object],
    expected: str,
    real_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["train", "--data", str(real_data / "kitti_squeezeseg"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(args + [a.format(tmp=tmp_path) for a in _flags(changes)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("perception train: error:")
    assert expected in err
    assert not (tmp_path / "out").exists()


def test_a_teacher_of_another_class_count_is_refused_naming_both() -> None:
    with pytest.raises(PerceptionError, match=r"default\.pt: 4 classes; this run trains 20"):
        load_teacher(str(DEFAULT_WEIGHTS), 20, CPU)


def test_the_teacher_is_frozen_in_eval_mode() -> None:
    teacher = load_teacher(str(DEFAULT_WEIGHTS), 4, CPU)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("scale", [100.0, 0.0, -0.5, 2.0625])
def test_build_model_refuses_a_channel_scale_out_of_bounds(scale: float) -> None:
    refused = r"model squeezesegv2: channel_scale must be a multiple of 1/16 in \(0, 2\.0\]"
    with pytest.raises(PerceptionError, match=refused):
        build_model("squeezesegv2", 4, channel_scale=scale)


def test_build_model_refuses_a_channel_scale_off_the_sixteenths() -> None:
    refused = r"model squeezesegv2: channel_scale must be a multiple of 1/16 .*; got 0\.3"
    with pytest.raises(PerceptionError, match=refused):
        build_model("squeezesegv2", 4, channel_scale=0.3)


def test_only_a_narrowed_model_records_its_channel_scale() -> None:
    assert "channel_scale" not in build_model("squeezesegv2", 4).config
    assert "channel_scale" not in build_model("squeezeseg", 4, channel_scale=1.0).config
    narrow = build_model("squeezesegv2", 4, channel_scale=0.5)
    assert narrow.config["channel_scale"] == 0.5
    assert model_from_config(narrow.config).config == narrow.config
