"""Weight layouts of other sparse-conv libraries, so the same weights can be loaded into them (tests, benchmarks)."""

from __future__ import annotations

import torch


def to_spconv_weight(kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Our (k^3, C_in, C_out) kernel (first axis fastest) -> spconv 2.x's (C_out, k, k, k, C_in)."""
    k = kernel_size
    c_in, c_out = kernel.shape[1], kernel.shape[2]
    if k == 1:  # spconv 2.3.8 runs a 1x1x1 conv as a matmul that reads the weight's memory as (C_in, C_out)
        return kernel.reshape(c_out, 1, 1, 1, c_in).contiguous()
    # our flat index is x + k*y + k*k*z, so the view is (z, y, x, in, out); spconv wants (out, x, y, z, in)
    return kernel.reshape(k, k, k, c_in, c_out).permute(4, 2, 1, 0, 3).contiguous()


def to_spconv_inverse_weight(kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """A transposed conv's (k^3, C_in, C_out) kernel -> spconv's SparseInverseConv3d weight (C_out, k, k, k, C_in)."""
    return to_spconv_weight(kernel, kernel_size)
