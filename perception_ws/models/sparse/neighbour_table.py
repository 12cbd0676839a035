"""A sparse conv as one gather and one matmul: the kernel map as a dense (N_out, K) table of input rows.

The per-offset loop launches three ops per kernel offset and the grouped path about ten per conv; on a GPU the
launches, not the arithmetic, bound a point network's forward pass (docs/models.md, "Speed"). Here each output
row lists its input row for every offset (``num_in``, a zero row appended to the features, where the offset
finds none), so a conv is ``gather(feats, table).view(N_out, K * C_in) @ weight.view(K * C_in, C_out)``: three
launches, whatever the kernel. The price is arithmetic on the empty entries (a LiDAR surface fills about a
third of a 3x3x3 neighbourhood), which a GPU has to spare and a CPU does not: the CPU keeps the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own alias


@dataclass(frozen=True)
class FlatPairs:
    """Every (input row, output row, offset) pair of a kernel map, as pieces to concatenate (built beside the
    per-offset lists from the same search, so making them costs no host sync).
    """

    in_rows: list[torch.Tensor]
    out_rows: list[torch.Tensor]
    offsets: list[torch.Tensor]

    def swapped(self) -> FlatPairs:
        """The pairs read from outputs to inputs (a transposed conv)."""
        return FlatPairs(self.out_rows, self.in_rows, self.offsets)


def neighbour_table(pairs: FlatPairs, num_in: int, num_out: int, kernel_volume: int) -> torch.Tensor:
    """(num_out, K) int64: ``table[o, k]`` is the input row that offset k brings to output o, ``num_in`` if none."""
    in_rows, out_rows, offsets = (torch.cat(parts) for parts in (pairs.in_rows, pairs.out_rows, pairs.offsets))
    table = torch.full((num_out * kernel_volume,), num_in, dtype=torch.int64, device=in_rows.device)
    table.scatter_(0, out_rows * kernel_volume + offsets, in_rows)  # scatter, not t[i] = v: no host sync
    return table.view(num_out, kernel_volume)


def apply_table(feats: torch.Tensor, weight: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``out[o] = sum_k feats[table[o, k]] @ weight[k]`` (rows ``num_in`` read zeros): (N_in, C_in) -> (N_out, C_out).

    The sums over offsets run inside one matmul, so they may round differently from the per-offset loop's.
    """
    num_out, volume = table.shape
    padded = F.pad(feats, (0, 0, 0, 1))  # the zero row that empty entries read
    gathered = padded.index_select(0, table.reshape(-1)).view(num_out, volume * feats.shape[1])
    return gathered @ weight.reshape(volume * weight.shape[1], weight.shape[2])


def apply_table_reference(feats: torch.Tensor, weight: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """:func:`apply_table` by plain loops over outputs and offsets, for the tests."""
    out = feats.new_zeros(table.shape[0], weight.shape[2])
    for o, row in enumerate(table.tolist()):
        for k, i in enumerate(row):
            if i < feats.shape[0]:
                out[o] += feats[i] @ weight[k]
    return out
