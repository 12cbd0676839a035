"""`perception export`: the segmenter (network + CRF) as an ONNX file, checked against torch on real scans.

    perception export [--weights W.pt] --format onnx --out FILE.onnx --check-data PATH
                      [--height H] [--width W] [--fov DEG] [--dynamic] [--frames N] [--opset N]

Writes FILE.onnx and its manifest FILE.onnx.json (:mod:`perception_ws.models.onnx_export`). Only the standard
library is imported here.
"""

from __future__ import annotations

import argparse

from perception_ws.cli.args import Subparsers, positive

#: the lowest ONNX opset the export supports (perception_ws.models.onnx_export.MIN_OPSET; that module imports torch).
MIN_OPSET = 17


def opset(text: str) -> int:
    """argparse type: an ONNX opset number >= 17."""
    value = int(text)
    if value < MIN_OPSET:
        raise ValueError(text)
    return value


opset.__name__ = f"opset >= {MIN_OPSET}"


def add_parser(sub: Subparsers) -> None:
    """Register ``perception export``."""
    export = sub.add_parser(
        "export",
        help="write the segmenter (network + CRF) as an ONNX file, checked against torch on real scans",
        description="Export the segmenter to ONNX: input the raw (1, 6, H, W) range image, output the (1, K, H, W) "
        "logits after the CRF. onnxruntime and torch run the same real scans first; below 99.9 %% same labels "
        "nothing is written. Writes OUT and OUT.json (the manifest).",
    )
    export.add_argument("--weights", default=None, help="a .pt file saved with its .json manifest (default: shipped)")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the output format (default onnx)")
    export.add_argument("--out", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    export.add_argument(
        "--check-data", required=True, metavar="PATH",
        help="real scans (any readable file, folder or bag) to compare onnxruntime with torch on",
    )  # fmt: skip
    export.add_argument("--height", type=positive, default=64, help="image rows (default 64)")
    export.add_argument(
        "--width", type=positive, default=512,
        help="image columns (default 512; 2048 for --fov 360); with --dynamic the width traced and checked",
    )  # fmt: skip
    export.add_argument("--fov", type=float, default=90.0, metavar="DEG", help="field of view of the check images")
    export.add_argument(
        "--dynamic", action="store_true",
        help="a symbolic width (any multiple of 16), batch 1; checked at --width and twice it",
    )  # fmt: skip
    export.add_argument("--frames", type=positive, default=4, help="scans of --check-data to compare (default 4)")
    export.add_argument("--opset", type=opset, default=18, help=f"ONNX opset (default 18; at least {MIN_OPSET})")
    export.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from perception_ws.models.onnx_export import ExportShape, export_onnx

    shape = ExportShape(args.height, args.width, args.dynamic)
    manifest = export_onnx(
        args.weights, args.out, shape, args.check_data, fov_deg=args.fov, frames=args.frames, opset=args.opset
    )
    for check in manifest["agreement"]["checks"]:
        print(
            f"perception export: width {check['width']}: {check['labels_same']:.4%} same labels, max |logit diff| "
            f"{check['max_abs_logit_diff']:.2e} over {check['frames']} frames"
        )
    print(f"perception export: wrote {args.out} and {args.out}.json")
    return 0
