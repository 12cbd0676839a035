"""`perception eval`: score trained weights on a labelled source (class and instance P / R / IoU, boxes, runtime).

    perception eval [--weights W.pt] [--model NAME] --data PATH [--json] [--no-instances] [--no-boxes] [--config YAML]
                    [--device cpu] [--fov DEG] [--sensor NAME] [--frames N] [--quiet]

Boxes: where the source has ground-truth boxes (KITTI object, simulated datasets), the detections of the node's
detection stage on the predicted labels, with the ``detection.*`` settings of ``--config`` (the perception
node's params YAML, read as `perception label --config` reads it; default: the node's defaults). The network
runs with its ``segmenter`` settings (threads, precision, compile, crf_iterations), as the node would; the
view stays the source's (see the views of :mod:`perception_ws.evaluation`), whatever the YAML's sensor view.

The architecture is the one the weights' manifest names (SqueezeSegV2 on the range image, or SPVCNN / SPVNAS
labelling every scored point directly); ``--model`` checks it. Without ``--weights`` the shipped default weights
are used (one clear error if there are none). The table
(or, with ``--json``, exactly one JSON object) goes to stdout; the progress bar to stderr. See
:mod:`perception_ws.evaluation` for the views, the scoring and the runtimes. Only the standard library is
imported here, so `perception --help` stays instant.
"""

from __future__ import annotations

import argparse
import json

from perception_ws.cli.args import Subparsers, positive


def add_parser(sub: Subparsers) -> None:
    """Register ``perception eval``: score segmentation weights on labelled scans."""
    ev = sub.add_parser("eval", help="score segmentation weights on labelled scans: P/R/IoU per class, runtime")
    ev.add_argument("--weights", default=None, help="a .pt file saved with its .json manifest (default: shipped)")
    ev.add_argument(
        "--model", default=None,
        help="the architecture the weights must hold (squeezesegv2, spvcnn, spvnas …; default: the manifest's)",
    )  # fmt: skip
    ev.add_argument("--data", required=True, help="a scan file or a folder of scans of one kind (any reader)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ev.add_argument(
        "--instances", action=argparse.BooleanOptionalAction, default=True,
        help="also score instances: per-class DBSCAN of the predictions against the true instances (default on)",
    )  # fmt: skip
    ev.add_argument(
        "--boxes", action=argparse.BooleanOptionalAction, default=True,
        help="also score detections as boxes (P/R at BEV IoU 0.5, 0.25, centre in box) where the source has boxes",
    )  # fmt: skip
    ev.add_argument(
        "--config", default=None, metavar="YAML",
        help="the perception node's params YAML: its detection.* settings make the boxes, its segmenter threads, "
        "precision, compile and crf_iterations run the network (default: the node's defaults)",
    )  # fmt: skip
    ev.add_argument(
        "--node-labels", action="store_true",
        help="score the labels the node publishes: with the config's detection.consistent_labels (on by default) "
        "points of a detected class outside its detections are unlabelled (default: the network's own labels)",
    )  # fmt: skip
    ev.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N (default cpu)")
    ev.add_argument(
        "--fov", type=float, default=None, metavar="DEG",
        help="project every scan to this front field of view, 512 columns per 90 deg (default: per source)",
    )  # fmt: skip
    ev.add_argument("--sensor", default=None, help="sensor of scans that name none (default hdl64e)")
    ev.add_argument("--frames", type=positive, default=None, metavar="N", help="only the first N frames")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(handler=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from perception_ws.evaluation import evaluate
    from perception_ws.labelling.options import pipeline_config
    from perception_ws.models.weights import check_weights_model, load_any_weights, resolve_weights

    detection = pipeline_config(args.config, None, None)  # read first: a bad YAML fails before the weights load
    if args.model is not None:
        check_weights_model(str(resolve_weights(args.weights)), args.model, "--model")
    model = load_any_weights(args.weights, device=args.device)
    result = evaluate(
        model,
        args.data,
        instances=args.instances,
        device=args.device,
        fov_deg=args.fov,
        sensor=args.sensor,
        max_frames=args.frames,
        progress=not args.quiet,
        boxes=args.boxes,
        detection=detection,
        segmenter=detection.segmenter,
        node_labels=args.node_labels,
    )
    print(json.dumps(result.to_json(), allow_nan=False) if args.json else result.table())
    return 0
