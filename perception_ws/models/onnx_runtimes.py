"""The CPU runtimes an exported segmenter file runs on (``segmenter.runtime``), without torch.

:func:`open_runtime` loads a ``.onnx`` file on onnxruntime's CPU provider or on OpenVINO's CPU plugin and returns
one function, (1, C, H, W) float32 range image -> (1, K, H, W) float32 logits, with a line naming the runtime.
An int8 file (QDQ, ``perception quantize``) runs on either as it is: both turn its quantise/dequantise pairs into
int8 kernels. Each runtime's package is imported only when it is asked for.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeAlias

import numpy as np

from perception_ws.errors import WeightsError
from perception_ws.models.onnx_format import INPUT_NAME, OUTPUT_NAME

#: the runtimes that run an exported file (segmenter.runtime other than torch).
ExportRuntime: TypeAlias = Literal["onnxruntime", "openvino"]
#: (1, C, H, W) range image -> (1, K, H, W) logits.
Infer: TypeAlias = Callable[[np.ndarray], np.ndarray]
#: the pip package each runtime needs (both are in the `onnx` extra of pyproject.toml).
PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def open_runtime(runtime: ExportRuntime, onnx_file: str | Path, threads: int = 0) -> tuple[Infer, str]:
    """``onnx_file`` loaded on ``runtime`` with ``threads`` CPU threads (0: the runtime's default, one per core);
    the inference function and a description such as ``onnxruntime 1.32.0 (CPU)``.
    """
    try:
        if runtime == "openvino":
            return _openvino(Path(onnx_file), threads)
        return _onnxruntime(Path(onnx_file), threads)
    except ImportError:
        raise WeightsError(
            f"segmenter.runtime = {runtime!r} needs the {PACKAGE[runtime]} package: pip install 'perception_ws[onnx]'"
        ) from None


def _onnxruntime(onnx_file: Path, threads: int) -> tuple[Infer, str]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one graph at a time: no second pool competing for the cores
    try:
        session = onnxruntime.InferenceSession(str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
        raise WeightsError(f"{onnx_file}: onnxruntime cannot load it ({error})") from None

    def infer(x: np.ndarray) -> np.ndarray:
        logits: np.ndarray = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        return logits

    return infer, f"onnxruntime {onnxruntime.__version__} (CPU)"


def _openvino(onnx_file: Path, threads: int) -> tuple[Infer, str]:
    import openvino

    # f32: on CPUs with bf16 or AMX OpenVINO would otherwise run the float layers in bf16 (labels would change);
    # the int8 layers of a quantised file stay int8 under this hint
    settings: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        settings["INFERENCE_NUM_THREADS"] = threads
    try:
        compiled = openvino.Core().compile_model(str(onnx_file), "CPU", settings)
    except RuntimeError as error:  # OpenVINO reports unreadable graphs as RuntimeError subclasses
        raise WeightsError(f"{onnx_file}: OpenVINO cannot load it ({error})") from None
    request = compiled.create_infer_request()  # one request reused: no allocation per scan

    def infer(x: np.ndarray) -> np.ndarray:
        request.infer({INPUT_NAME: x})
        # a copy: the request's output buffer is overwritten by the next scan
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    return infer, f"OpenVINO {importlib.metadata.version('openvino')} (CPU)"
