"""The range-image network as a pipeline segmenter (``segmenter.kind: model``) and its weights.

:class:`NetworkSegmenter` runs the network with its CRF and gives class and confidence per pixel;
:func:`network_segmenter` builds one from the ``segmenter.*`` settings; :func:`load_network` loads the trained
weights the config names (empty: the shipped weights of its sensor).

A :class:`~perception_ws.models.segmenter.RangeSegmenter` runs as its two halves, ``backbone`` then ``refine``
(the CRF, then softmax and the best class), each timed (:attr:`NetworkSegmenter.stage_ms`): the same computation as
``forward``, so that the CRF's cost is visible beside the network's. ``compile`` compiles the backbone, and the
second half on a GPU only. On a GPU the fire modules' expand convs are merged (``prepare_for_inference``'s
``merge_expand``: 12 fewer launches; the same logits): at batch 1 the GPU is bound by kernel launches, not by
multiply-adds (docs/models.md, the GPU path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from perception_ws.config.perception import PipelineConfig, Precision, SegmenterConfig
from perception_ws.device_runtime import StageClock
from perception_ws.errors import WeightsError
from perception_ws.labels import ClassSet
from perception_ws.models.inference import prepare_for_inference
from perception_ws.models.segmenter import RangeSegmenter
from perception_ws.models.weights import check_weights_model, load_weights, weights_for
from perception_ws.schema import ConfigError


class NetworkSegmenter:
    """A range-image network (with its CRF, if it has one): class and confidence per pixel."""

    #: what the segmenter reads: the pipeline projects the cloud for a range-image segmenter.
    reads: Literal["range_image"] = "range_image"
    #: calls of the segmenter a pipeline warm-up makes: 3 with CUDA graphs (set in __init__), else 1
    warm_up_calls: int = 1

    def __init__(
        self,
        network: nn.Module,
        device: str,
        class_set: ClassSet,
        *,
        threads: int = 0,
        compile: bool = False,
        autotune: bool = False,
        precision: Precision = "fp32",
        crf_iterations: int = -1,
    ) -> None:
        classes = int(getattr(network, "num_classes", len(class_set)))
        if classes != len(class_set):
            raise WeightsError(
                f"the network predicts {classes} classes but class_set {class_set.name} has {len(class_set)}; "
                "use weights trained for this class set"
            )
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise WeightsError(f"segmenter.device = {device!r} but torch sees no CUDA device; use 'cpu'")
        self.device = torch.device(device)
        self.in_channels = int(getattr(network, "in_channels", 6))
        if threads > 0:  # process-wide: torch has one intra-op pool
            torch.set_num_threads(threads)
        self.precision = effective_precision(precision, self.device)
        self.dtype = PRECISION_DTYPES[self.precision]
        on_gpu = self.device.type == "cuda"
        self.network = prepare_for_inference(network, device=self.device, dtype=self.dtype, merge_expand=on_gpu)
        _set_crf_iterations(self.network, crf_iterations)
        if autotune and not (compile and on_gpu):
            raise ConfigError("autotune chooses kernels for a compiled network on a GPU: pass compile=True on cuda")
        # on a GPU, torch.compile's 'reduce-overhead' also replays the network as CUDA graphs (launch-bound here);
        # 'max-autotune' does too, and first times every conv and matmul against generated kernels (64x512 bf16 on
        # an H100: 0.497 against 0.655 ms; docs/models.md)
        mode = ("max-autotune" if autotune else "reduce-overhead") if on_gpu else None
        #: the network replays as CUDA graphs (compiled on a GPU)
        self._graphs = compile and on_gpu
        #: calls a warm-up makes: with CUDA graphs the first call of a thread runs the compiled code plainly, the
        #: second records the graphs and the third is the first replay (torch keeps graphs per thread, so the
        #: warm-up must run in the thread that segments the scans; the perception node's worker does)
        self.warm_up_calls = 3 if self._graphs else 1

        #: the two timed halves: the network (a RangeSegmenter's backbone, any other network whole) from the range
        #: images as they come (the channels-last cast inside its graph), then the CRF (a RangeSegmenter's refine)
        #: with softmax and the best class
        self._first: Callable[..., torch.Tensor] = self.network
        self._refine: Callable[..., torch.Tensor] | None = None
        if isinstance(self.network, RangeSegmenter):
            self._first, self._refine = self.network.backbone, self.network.refine
        self._network_half: Callable[..., tuple[torch.Tensor, torch.Tensor]] = (
            torch.compile(self._prepare_and_run, mode=mode) if compile else self._prepare_and_run
        )
        # the second half compiled only on a GPU, where eager it is bound by kernel launches (and softmax and the best
        # class join the CRF's graph); on a CPU inductor's code for the CRF's window sums is slower than eager
        # (64x2048, one step, one thread: fp32 39 vs 23 ms, bf16 98 vs 19)
        self._pick_half: Callable[..., tuple[torch.Tensor, torch.Tensor]] = (
            torch.compile(self._refine_and_pick, mode=mode) if compile and on_gpu else self._refine_and_pick
        )
        #: milliseconds of the last call's parts: ``network`` and, for a RangeSegmenter, ``crf`` (0 without one)
        self.stage_ms: dict[str, float] = {}
        self.summary = f"{getattr(network, 'name', type(network).__name__)} on {device}, {self.precision}" + (
            f" (asked for {precision}: not supported natively here)" if self.precision != precision else ""
        )

    def segment_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) class ids and (H, W) float32 probability of that class, from an (H, W, C) range image."""
        classes, confidence = self.segment_images(image[None])
        return classes[0], confidence[0]

    def segment_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W) class ids and (B, H, W) float32 probabilities from (B, H, W, C) range images, one network
        call for the whole batch (the CRF works on each image alone).
        """
        kept = torch.from_numpy(np.ascontiguousarray(images[..., : self.in_channels])).to(self.device)
        clock = StageClock(self.device, events=False)  # waits for the device at each part's end: the parts' own times
        with torch.inference_mode():
            confidence, classes = self._classes(kept, clock)
        self.stage_ms = clock.read()
        return classes.cpu().numpy(), confidence.float().cpu().numpy()

    def segment_on_device(self, image: torch.Tensor, clock: StageClock) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, W) class ids and (H, W) float32 probabilities, left on the device, from an (H, W, C) range image on
        the device (the device projection's); ``clock`` times the parts (``network``, ``crf``); nothing waits.
        """
        with torch.inference_mode():
            confidence, classes = self._classes(image[None], clock)
        return classes[0], confidence[0]

    def _classes(self, images: torch.Tensor, clock: StageClock) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W) probability of the best class and that class (int16), from (B, H, W, C) float32 range images on
        the device: the network then the CRF, each timed by ``clock``.
        """
        if self._graphs:  # a new scan: the CUDA graphs may reuse the last scan's output memory (both entry points)
            torch.compiler.cudagraph_mark_step_begin()  # type: ignore[no-untyped-call]
        with clock.stage("network"):
            logits, x = self._network_half(images)
        if self._refine is None:
            return self._pick_half(logits, x)
        with clock.stage("crf"):
            return self._pick_half(logits, x)

    def _prepare_and_run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first half: (B, H, W, C) images -> the network's (B, C, H, W) channels-last input in its precision
        (returned too: the CRF reads it) and the network's logits.
        """
        # (B, H, W, C) memory is already the channels-last layout of (B, C, H, W)
        x = images[..., : self.in_channels].permute(0, 3, 1, 2).to(self.dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        return self._first(x), x

    def _refine_and_pick(self, logits: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The second half: the CRF (a RangeSegmenter's), then the best class's probability and the class (int16:
        class ids fit 16 bits, less to copy back).
        """
        if self._refine is not None:
            logits = self._refine(logits, x)
        confidence, classes = torch.softmax(logits.float(), dim=1).max(dim=1)
        return confidence, classes.to(torch.int16)


def _set_crf_iterations(network: nn.Module, iterations: int) -> None:
    """``segmenter.crf_iterations`` on the prepared (private) copy: -1 as trained, 0 no CRF, N mean-field steps."""
    if iterations < 0:
        return
    crf = getattr(network, "crf", None)
    if crf is None:
        if iterations == 0:
            return
        raise ConfigError(
            f"segmenter.crf_iterations = {iterations} but the network has no CRF layer; use -1 (as trained) or 0"
        )
    if iterations == 0:
        setattr(network, "crf", None)  # noqa: B010 (nn.Module's attribute typing does not allow None)
    else:
        crf.iterations = iterations


def network_segmenter(network: nn.Module, settings: SegmenterConfig, class_set: ClassSet) -> NetworkSegmenter:
    """The segmenter the ``segmenter.*`` settings describe, running ``network`` (trained weights)."""
    return NetworkSegmenter(
        network,
        settings.device,
        class_set,
        threads=settings.threads,
        compile=settings.compile,
        autotune=settings.autotune,
        precision=settings.precision,
        crf_iterations=settings.crf_iterations,
    )


#: the torch dtype of each ``segmenter.precision``.
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def effective_precision(precision: Precision, device: torch.device) -> Precision:
    """``precision``, or fp32 where a CPU lacks native bf16 (emulated bf16 is several times slower than fp32)."""
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "fp32"
    return precision


def load_network(config: PipelineConfig) -> nn.Module:
    """The trained network of ``segmenter.model`` from ``segmenter.weights`` (empty: :func:`weights_for`).

    Loading, checksums and the manifest belong to :func:`perception_ws.models.load_weights`; a missing or
    refused file gives one WeightsError that says what to do.
    """
    settings = config.segmenter
    if settings.weights:  # a point model's file: one line naming both models, not a registry error
        check_weights_model(settings.weights, settings.model)
    try:
        network = load_weights(settings.weights or weights_for(config), device=settings.device)
    except WeightsError as error:
        if settings.weights:
            raise
        raise WeightsError(
            f"segmenter.kind 'model' needs trained weights for {settings.model!r} ({error}); set segmenter.weights "
            "to a .pt file, or segmenter.kind to 'labels' (the input carries a class-id field) or 'none'"
        ) from None
    name = str(getattr(network, "name", settings.model))
    if name != settings.model:
        raise WeightsError(
            f"segmenter.weights {settings.weights or '(shipped default)'!r} hold a {name!r} network, but "
            f"segmenter.model is {settings.model!r}"
        )
    return network
