"""`perception quantize`: an int8 copy of an fp32 export, calibrated on unlabelled real scans (which convolutions
stay fp32 chosen on unlabelled held-back scans, or a fixed list) and checked against fp32 on labelled real frames
(refused when car IoU drops by more than a point).

    perception quantize FP32.onnx --out INT8.onnx --calibrate PATH --check PATH [--check PATH ...]
                        [--frames N] [--sensor NAME] [--max-car-iou-drop POINTS]
                        [--fp32-layers auto|fixed] [--held-back N]

Writes INT8.onnx and INT8.onnx.json (:mod:`perception_ws.quantization`). Only the standard library is imported here.
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, positive


def add_parser(sub: Subparsers) -> None:
    """Register ``perception quantize``."""
    quantize = sub.add_parser(
        "quantize",
        help="int8 copy of an ONNX export, calibrated on unlabelled real scans, checked against fp32",
        description="Quantise an fp32 export (perception export --format onnx, fixed size) to int8: per-channel "
        "int8 weights, uint8 activations calibrated on unlabelled real scans (QDQ, onnxruntime.quantization; the "
        "CRF stays fp32; the convolutions kept fp32 are chosen on further unlabelled scans held back from "
        "calibrating, or a fixed list). fp32 and int8 then label the --check frames; if car IoU drops by more than "
        "--max-car-iou-drop points on any source, nothing is written. Runs on segmenter.runtime onnxruntime or "
        "openvino.",
    )
    quantize.add_argument("onnx", metavar="FP32.onnx", help="an fp32 export with its manifest")
    quantize.add_argument("--out", required=True, metavar="INT8.onnx", help="the int8 file to write")
    quantize.add_argument(
        "--calibrate", required=True, metavar="PATH", help="unlabelled real scans (file, folder or bag) of the sensor"
    )
    quantize.add_argument(
        "--check", required=True, action="append", metavar="PATH",
        help="labelled real frames to compare int8 with fp32 on (repeat for several sources)",
    )  # fmt: skip
    quantize.add_argument("--frames", type=positive, default=12, help="calibration scans to use (default 12)")
    quantize.add_argument(
        "--fp32-layers", choices=("auto", "fixed"), default="auto",
        help="convolutions kept fp32: auto = the fewest most sensitive ones for the agreement target with fp32 on "
        "the held-back scans (unlabelled); fixed = the first layers, the CAM modules and the logits (default auto)",
    )  # fmt: skip
    quantize.add_argument(
        "--held-back", type=positive, default=4, metavar="N",
        help="with auto: scans of --calibrate after the calibration ones, not calibrated on, on which the layers "
        "are chosen (taken off the calibration's end where the source holds fewer; default 4)",
    )  # fmt: skip
    quantize.add_argument("--sensor", default="hdl64e", help="beam table of scans that name none (default hdl64e)")
    quantize.add_argument(
        "--max-car-iou-drop", type=float, default=1.0, metavar="POINTS",
        help="refuse the int8 model if car IoU on any --check source drops by more (default 1.0)",
    )  # fmt: skip
    quantize.set_defaults(handler=_cmd_quantize)


def _cmd_quantize(args: argparse.Namespace) -> int:
    from perception_ws.quantization import quantize_export

    manifest = quantize_export(
        args.onnx,
        args.out,
        args.calibrate,
        args.check,
        calibration_frames=args.frames,
        sensor=args.sensor,
        max_car_iou_drop=args.max_car_iou_drop,
        fp32_layers=args.fp32_layers,
        held_back=args.held_back,
    )
    recipe = manifest["quantization"]
    choice = recipe["fp32_choice"]
    if choice["mode"] == "auto":
        reached = "reached" if choice["target_reached"] else "NOT reached"
        print(
            f"perception quantize: fp32 layers chosen on {choice['held_back_scans']} held-back scans: "
            f"{choice['held_back_agreement']:.3%} labelled as fp32 (target {choice['agreement_target']:.1%}, {reached})"
        )
    fp32_layers = ", ".join(recipe["fp32_layers"])
    print(
        f"perception quantize: {recipe['quantised_layers']} convolutions int8 ({recipe['int8_mac_share']:.1%} of their "
        f"MACs); fp32: {fp32_layers}"
    )
    for check in recipe["checks"]:
        fp32, int8 = check["iou_fp32"], check["iou_int8"]
        ious = ", ".join(f"{name} {_points(fp32[name])} -> {_points(int8[name])}" for name in fp32)
        print(
            f"perception quantize: {check['source']}: {check['frames']} frames, {check['labels_same']:.3%} of "
            f"{check['points']} points labelled as fp32; IoU fp32 -> int8: {ious}"
        )
    print(f"perception quantize: wrote {args.out} and {args.out}.json")
    return 0


def _points(iou: float | None) -> str:
    return "-" if iou is None else f"{iou:.1f}"
