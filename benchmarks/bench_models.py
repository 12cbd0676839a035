"""Latency of SqueezeSegV2 with and without the CRF, batch 1, against the thesis' runtime anchor.

    .venv/bin/python benchmarks/bench_models.py                 # CPU, 2 threads, 64x512 and 64x2048
    .venv/bin/python benchmarks/bench_models.py --compile       # + torch.compile rows (about a minute to compile)
    python3 benchmarks/bench_models.py --device cuda            # GPU (also checks GPU logits against the CPU's)

Named baseline: thesis ch. 3 Table 2, SqueezeSeg on a TITAN X: 8.7 ± 0.5 ms without CRF, 13.6 ± 0.8 ms with
CRF (the text says 13.5). Project goal on 2 CPU cores: <= 60 ms with CRF at 64x512.

The CRF uses the default configuration (one set of sigmas for all classes); ``--per-class-sigmas`` uses the
release's KITTI-3 per-class values (two kernel maps instead of one).

Variants: ``eager`` (the model as trained: NCHW, batch norm), ``fast`` (prepare_for_inference: batch norm
folded into the convs, channels-last weights and input), ``compiled`` (``fast`` under torch.compile);
``bf16`` (``fast`` in bfloat16, on a CPU with native bf16 and on a GPU) and ``bf16+comp`` (that compiled);
on a GPU also ``fp16``, ``…+graph`` (replayed as one CUDA graph) and ``…+comp`` under torch.compile
(mode 'reduce-overhead', or 'max-autotune' with ``--autotune``).
Input: the real KITTI frame at 64x512 (4 of them side by side at 64x2048) when the real data is found
(PERCEPTION_REAL_DATA or ../shared/data/real), else a synthetic scan of the same size; latency does not
depend on the content. Times are mean ± std (as the thesis reports), median and minimum over ``--repeats``
runs after ``--warmup`` runs; on a machine shared with other jobs the median is the figure to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from perception_ws.errors import PerceptionError
from perception_ws.models import build_model
from perception_ws.models.crf import KITTI3_CRF_SIGMAS
from perception_ws.models.inference import prepare_for_inference
from perception_ws.models.weights import load_weights

THESIS_TITAN_X_MS = {False: (8.7, 0.5), True: (13.6, 0.8)}
GOAL_MS_WITH_CRF_64X512 = 60.0
GOAL_MS_GPU_WITH_CRF_64X512 = 1.0  # issue 5: on an H100-class GPU


def _real_frame() -> np.ndarray | None:
    root = Path(os.environ.get("PERCEPTION_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared/data/real"))
    files = sorted((root / "kitti_squeezeseg").glob("*.npy"))
    return np.load(files[0]) if files else None


def make_input(height: int, width: int) -> tuple[torch.Tensor, str]:
    """(1, 6, H, W) x y z intensity range mask."""
    frame = _real_frame()
    if frame is not None and height == frame.shape[0] and width % frame.shape[1] == 0:
        tiled = np.concatenate([frame] * (width // frame.shape[1]), axis=1)
        mask = (tiled[..., 4:5] > 0).astype(np.float32)
        channels = np.concatenate([tiled[..., :5].astype(np.float32), mask], axis=-1)
        return torch.from_numpy(np.ascontiguousarray(channels.transpose(2, 0, 1)))[None], "real KITTI frame"
    g = torch.Generator().manual_seed(0)
    rng = 5 + 40 * torch.rand(1, 1, height, width, generator=g)
    hit = (torch.rand(1, 1, height, width, generator=g) > 0.13).float()
    az = torch.linspace(np.pi / 4, -np.pi / 4, width).view(1, 1, 1, -1)
    el = torch.linspace(0.03, -0.43, height).view(1, 1, -1, 1)
    xyz = torch.cat([rng * el.cos() * az.cos(), rng * el.cos() * az.sin(), rng * el.sin()], dim=1)
    img = torch.cat([xyz, torch.rand(1, 1, height, width, generator=g), rng, hit], dim=1) * hit
    return img, "synthetic scan"


def with_shipped_weights(model: torch.nn.Module) -> str:
    """Load the shipped weights' tensors that fit ``model`` (all but the CRF's when it has none), so the
    half-precision label check below compares trained logits, not near-ties of random ones."""
    try:
        shipped = load_weights().state_dict()
    except PerceptionError:
        return "fresh weights"
    own = model.state_dict()
    fitting = {k: v for k, v in shipped.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return f"shipped weights ({len(fitting)}/{len(own)} tensors)"


def time_it(fn: Callable[[], object], warmup: int, repeats: int, sync: Callable[[], None]) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def cuda_graph(net: torch.nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` captured once as a CUDA graph on a static input; calling it copies the input in and replays."""
    static_in = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires
            net(static_in)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        static_out = net(static_in)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_in.copy_(x)
        graph.replay()
        return static_out

    return replay


def row(model: str, size: str, variant: str, mean: float, std: float, median: float, low: float) -> str:
    return f"{model:<34} {size:>8} {variant:>9} {mean:>9.1f} {std:>8.1f} {median:>9.1f} {low:>8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--widths", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--compile", action="store_true", help="add torch.compile rows")
    ap.add_argument(
        "--autotune",
        action="store_true",
        help="GPU: compile the half-precision rows with mode='max-autotune' (minutes), not 'reduce-overhead'",
    )
    ap.add_argument("--per-class-sigmas", action="store_true", help="CRF with the release's per-class KITTI-3 sigmas")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.backends.cudnn.benchmark = True  # batch 1 at a fixed size: let cuDNN pick each conv's fastest kernel
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} torch threads"
    print(f"SqueezeSegV2 latency, batch 1, {where}; torch {torch.__version__}, {os.cpu_count()} cores visible")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other jobs on this machine slow every row)")
    print()
    header = f"{'model':<34} {'input':>8} {'variant':>9} {'mean ms':>9} {'std ms':>8} {'median ms':>9} {'min ms':>8}"
    print(header)
    print("-" * len(header))
    nan = float("nan")
    for crf in (False, True):
        mean, std = THESIS_TITAN_X_MS[crf]
        print(row("baseline: thesis SqueezeSeg" + (" +CRF" if crf else ""), "64x512", "TITAN X", mean, std, nan, nan))
    results: dict[tuple[int, bool, str], float] = {}
    for width in args.widths:
        x, source = make_input(args.height, width)
        for crf in (False, True):
            torch.manual_seed(0)
            crf_params = dict(KITTI3_CRF_SIGMAS) if crf and args.per_class_sigmas else None
            model = build_model("squeezesegv2", 4, crf=crf, crf_params=crf_params)
            weights_note = with_shipped_weights(model)
            model.eval().to(device)
            variants: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]] = {
                "eager": (model, x.to(device)),
                "fast": (prepare_for_inference(model), x.to(device).contiguous(memory_format=torch.channels_last)),
            }
            if args.compile:
                variants["compiled"] = (prepare_for_inference(model, compile=True), variants["fast"][1])
            if cuda:
                # half precision (the CRF's exponentials too) and the whole forward replayed as one CUDA graph,
                # which removes the per-kernel launch cost that dominates a network this small
                for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                    half_net = prepare_for_inference(model, dtype=dtype)
                    half_in = variants["fast"][1].to(dtype)
                    variants[name] = (half_net, half_in)
                    variants[f"{name}+graph"] = (cuda_graph(half_net, half_in), half_in)
                    if args.compile:
                        # inductor fuses the pointwise work (ReLU, concat, the CRF's exp and sums) and, in both
                        # modes, replays the result as CUDA graphs
                        mode = "max-autotune" if args.autotune else "reduce-overhead"
                        compiled = prepare_for_inference(model, dtype=dtype, compile=True, compile_mode=mode)
                        variants[f"{name}+comp"] = (compiled, half_in)
            elif torch.ops.mkldnn._is_mkldnn_bf16_supported():  # a CPU with AVX-512 BF16 or AMX
                bf16_net = prepare_for_inference(model, dtype=torch.bfloat16)
                bf16_in = variants["fast"][1].to(torch.bfloat16)
                variants["bf16"] = (bf16_net, bf16_in)
                if args.compile:
                    bf16_comp = prepare_for_inference(model, dtype=torch.bfloat16, compile=True)
                    variants["bf16+comp"] = (bf16_comp, bf16_in)
            for variant, (net, inp) in variants.items():
                with torch.inference_mode():
                    times = time_it(partial(net, inp), args.warmup, args.repeats, sync)
                median = statistics.median(times)
                results[(width, crf, variant)] = median
                label = "SqueezeSegV2" + (" +CRF" if crf else "")
                stats = (statistics.fmean(times), statistics.stdev(times), median, min(times))
                print(row(label, f"{args.height}x{width}", variant, *stats), flush=True)
            if not cuda and "bf16" in variants:
                with torch.inference_mode():
                    full, low = model(x), variants["bf16"][0](variants["bf16"][1]).float()
                valid = (x[0, 5] > 0).flatten()
                same = (full.argmax(1) == low.argmax(1)).flatten()[valid].float().mean()
                print(f"{'':<34} bf16 same label as fp32 (valid pixels, {weights_note}): {100 * float(same):.2f} %")
            if cuda:
                with torch.inference_mode():
                    gpu = model(x.to(device)).cpu()
                    # the label a half-precision variant gives each valid pixel, against fp32 on the GPU
                    valid = (x[0, 5] > 0).flatten()
                    agree = {
                        name: (net(inp).float().cpu().argmax(1) == gpu.argmax(1)).flatten()[valid].float().mean()
                        for name, (net, inp) in variants.items()
                        if "16" in name
                    }
                    cpu = model.cpu()(x)
                print(f"{'':<34} max |GPU - CPU| logits: {(gpu - cpu).abs().max().item():.2e}")
                same = ", ".join(f"{name} {100 * float(v):.2f} %" for name, v in agree.items())
                print(f"{'':<34} same label as fp32 (valid pixels, {weights_note}): {same}")
        print(f"  ({source})")
    print()
    if cuda and 512 in args.widths:
        best = min(v for (w, c, _), v in results.items() if w == 512 and c)
        verdict = "meets" if best <= GOAL_MS_GPU_WITH_CRF_64X512 else "misses"
        goal = GOAL_MS_GPU_WITH_CRF_64X512
        print(f"goal: <= {goal:.0f} ms with CRF at 64x512 on the GPU -> best {best:.2f} ms ({verdict})")
    if not cuda and 512 in args.widths:
        best = min(v for (w, c, _), v in results.items() if w == 512 and c)
        verdict = "meets" if best <= GOAL_MS_WITH_CRF_64X512 else "misses"
        print(
            f"goal: <= {GOAL_MS_WITH_CRF_64X512:.0f} ms with CRF at 64x512 on 2 cores -> best {best:.1f} ms ({verdict})"
        )
    for crf in (False, True):
        ours = min(v for (w, c, _), v in results.items() if w == 512 and c == crf) if 512 in args.widths else None
        if ours is not None:
            ratio = ours / THESIS_TITAN_X_MS[crf][0]
            print(f"vs baseline{' +CRF' if crf else ''}: best median {ours:.1f} ms = {ratio:.1f}x the TITAN X mean")


if __name__ == "__main__":
    main()
