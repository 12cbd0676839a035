"""Which sparse engine builds the layers: ``builtin`` (this package, pure torch) or ``torchsparse``.

The setting ``sparse.engine`` (``SparseSettings.engine``) picks it. The models ask ``load_engine(name)`` for
their layer classes, so a user with torchsparse installed (it is not on our package registries) runs the same
network with torchsparse's conv kernels (``torchsparse_conv.TorchsparseConv3d``: same interface, our tensors
in and out). torchsparse is imported only when asked for; if it is missing, one ``SparseTensorError`` line
says so. Tensors, norms, activations and the point-voxel functions are this package's in both cases.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from perception_ws.errors import SparseTensorError
from perception_ws.schema import Schema

EngineName = Literal["builtin", "torchsparse"]
ENGINES: tuple[str, ...] = ("builtin", "torchsparse")


class SparseSettings(Schema):
    """The ``sparse:`` section of a config: ``engine: builtin | torchsparse`` (the node joins it in item 4)."""

    engine: EngineName = "builtin"


@dataclass(frozen=True)
class Engine:
    """The layer classes one engine provides, under torchsparse's names."""

    name: str
    SparseTensor: Any
    Conv3d: Any
    BatchNorm: Any
    ReLU: Any


def load_engine(name: str = "builtin") -> Engine:
    """The engine called ``name``; ``torchsparse`` needs the torchsparse package importable."""
    if name == "builtin":
        from perception_ws.models.sparse import conv, layers, tensor

        return Engine("builtin", tensor.SparseTensor, conv.Conv3d, layers.BatchNorm, layers.ReLU)
    if name == "torchsparse":
        try:
            importlib.import_module("torchsparse.nn")
        except ImportError as exc:
            raise SparseTensorError(
                f"sparse.engine is 'torchsparse' but torchsparse cannot be imported ({exc});"
                " install it or set sparse.engine: builtin"
            ) from None
        from perception_ws.models.sparse import layers, tensor
        from perception_ws.models.sparse.torchsparse_conv import TorchsparseConv3d

        return Engine("torchsparse", tensor.SparseTensor, TorchsparseConv3d, layers.BatchNorm, layers.ReLU)
    raise SparseTensorError(f"sparse.engine must be one of {', '.join(ENGINES)}; got {name!r}")
