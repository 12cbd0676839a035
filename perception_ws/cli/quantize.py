"""`perception quantize`: an int8 copy of an fp32 export, calibrated on unlabelled real scans and checked against
fp32 on labelled real frames (refused when car IoU drops by more than a point).

    perception quantize FP32.onnx --out INT8.onnx --calibrate PATH --check PATH [--check PATH ...]
                        [--frames N] [--sensor NAME] [--max-car-iou-drop POINTS]

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
        "CRF stays fp32). fp32 and int8 then label the --check frames; if car IoU drops by more than "
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
    )
    for check in manifest["quantization"]["checks"]:
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
