"""CRF as a recurrent layer over the range image (thesis ch. 3 §3.3, docs/algorithms.md §3).

Energy ``E(c) = sum_i u_i(c_i) + sum_ij mu(c_i, c_j) * [w1 k1(i, j) + w2 k2(i, j)]`` with the unary
``u_i = -log P_i`` from the network and two Gaussian kernels:

    k1 = exp(-|p_i - p_j|^2 / 2 sigma_alpha^2 - |x_i - x_j|^2 / 2 sigma_beta^2)   (angle + cartesian, "bilateral")
    k2 = exp(-|p_i - p_j|^2 / 2 sigma_gamma^2)                                   (angle only)

p = (row, col) in pixels, x = (x, y, z) in metres. Mean-field inference, unrolled as an RNN for ``iterations``
steps: message passing restricted to a 3x5 window (a locally connected op whose weights are computed per pixel
from the input xyz; empty pixels neither send nor receive), re-weighting by w1/w2 (trainable, per class),
compatibility transform (a 1x1 conv, trainable, initialised to the Potts model mu = 1 - I), added to the unary
energy, softmax. The layer returns logits (``-energy``), so losses and argmax treat it like the network.

Hyper-parameters: the thesis only says the sigmas were "chosen empirically"; the numbers below are the
released SqueezeSeg/SqueezeSegV2 KITTI configuration (``kitti_squeezeSeg_config.py``): window 3x5, 3
iterations, sigma_alpha = sigma_gamma = 0.9 px (0.6 px for pedestrian/cyclist), w1 = 0.1 (BI_FILTER_COEF),
w2 = 0.02 (ANG_FILTER_COEF). The release computes the cartesian distance on *standardised* xyz with
sigma_beta = 0.015 (0.01 for pedestrian/cyclist); with its x/y standard deviations (11.47 m, 6.91 m) that is
about 0.10-0.17 m, so this layer, which works in metres, uses sigma_beta = 0.15 m (0.10 m for the small
classes). Two deliberate departures from the release: it adds the pairwise term to the probabilities with a
positive Potts matrix, which rewards disagreement until training flips the sign, and its angular message
ignores the mask; here the update is the textbook mean-field one (energy = unary + compat(messages)) and
both messages are masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from perception_ws.errors import PerceptionError

#: per-class CRF sigmas of the SqueezeSeg release for KITTI-3 (unknown, car, pedestrian, cyclist).
KITTI3_CRF_SIGMAS: dict[str, tuple[float, ...]] = {
    "sigma_alpha": (0.9, 0.9, 0.6, 0.6),
    "sigma_beta": (0.15, 0.15, 0.10, 0.10),
    "sigma_gamma": (0.9, 0.9, 0.6, 0.6),
}


@dataclass(frozen=True)
class CRFConfig:
    """CRF hyper-parameters; each sigma is one value for all classes or one per class."""

    iterations: int = 3
    window: tuple[int, int] = (3, 5)
    sigma_alpha: float | tuple[float, ...] = 0.9  # pixels
    sigma_beta: float | tuple[float, ...] = 0.15  # metres
    sigma_gamma: float | tuple[float, ...] = 0.9  # pixels
    w_bilateral: float = 0.1
    w_angular: float = 0.02

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> CRFConfig:
        params = dict(params or {})
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise PerceptionError(f"CRF config: unknown keys {sorted(unknown)}; known: {sorted(asdict(cls()))}")
        for key in ("window", "sigma_alpha", "sigma_beta", "sigma_gamma"):
            if isinstance(params.get(key), list):  # JSON/YAML give lists
                params[key] = tuple(params[key])
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _per_class(name: str, value: float | Sequence[float], num_classes: int) -> torch.Tensor:
    """A sigma as a (K or 1,) tensor, checked to be positive."""
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    if t.numel() not in (1, num_classes) or not bool((t > 0).all()):
        raise PerceptionError(
            f"CRF {name}: expected one positive value or {num_classes} (one per class), got {t.tolist()}"
        )
    return t


class RecurrentCRF(nn.Module):
    """Mean-field CRF over a range image: (logits, xyz, valid) -> refined logits, all (B, ·, H, W)."""

    offset_sq: torch.Tensor
    kernel_sigma_alpha: torch.Tensor
    kernel_sigma_beta: torch.Tensor
    kernel_group: torch.Tensor
    sigma_gamma: torch.Tensor

    #: kernel weights below exp(-50) (~2e-22) are set to exactly zero: they carry no message, and products
    #: with them would underflow into denormal floats, which are ~100x slower on x86 CPUs.
    MIN_LOG_WEIGHT = -50.0

    def __init__(self, num_classes: int, config: CRFConfig | None = None) -> None:
        super().__init__()
        cfg = config or CRFConfig()
        if len(cfg.window) != 2:
            raise PerceptionError(f"CRF window must be (height, width), got {cfg.window}")
        kh, kw = cfg.window
        if kh % 2 == 0 or kw % 2 == 0 or kh < 1 or kw < 1 or kh * kw < 2:
            raise PerceptionError(f"CRF window must be odd x odd and larger than 1x1, got {cfg.window}")
        if cfg.iterations < 1:
            raise PerceptionError(f"CRF iterations must be >= 1, got {cfg.iterations}")
        self.config = cfg
        self.num_classes = num_classes
        self.iterations = cfg.iterations
        self.pad_h, self.pad_w = kh // 2, kw // 2
        # window slots in row-major (unfold) order; the neighbours j of pixel i are all slots but the centre
        slots = [(dy, dx) for dy in range(-self.pad_h, self.pad_h + 1) for dx in range(-self.pad_w, self.pad_w + 1)]
        self.neighbours = [(slot, dy, dx) for slot, (dy, dx) in enumerate(slots) if (dy, dx) != (0, 0)]
        self.offsets = [(dy, dx) for _, dy, dx in self.neighbours]
        self.register_buffer(
            "offset_sq", torch.tensor([float(dy * dy + dx * dx) for dy, dx in slots]), persistent=False
        )
        # The bilateral kernel depends on the class only through (sigma_alpha, sigma_beta): compute it once per
        # distinct pair (2 for the KITTI-3 release values, 1 for scalars) and share it between classes.
        alpha = _per_class("sigma_alpha", cfg.sigma_alpha, num_classes).expand(num_classes)
        beta = _per_class("sigma_beta", cfg.sigma_beta, num_classes).expand(num_classes)
        pairs, group = torch.unique(torch.stack([alpha, beta], dim=1), dim=0, return_inverse=True)
        self.register_buffer("kernel_sigma_alpha", pairs[:, 0].contiguous(), persistent=False)
        self.register_buffer("kernel_sigma_beta", pairs[:, 1].contiguous(), persistent=False)
        self.register_buffer("kernel_group", group, persistent=False)
        self._kernel_per_class = len(pairs) > 1  # then one kernel map per class, in class order
        self.register_buffer("sigma_gamma", _per_class("sigma_gamma", cfg.sigma_gamma, num_classes), persistent=False)
        self.bilateral_weight = nn.Parameter(torch.full((num_classes,), float(cfg.w_bilateral)))
        self.angular_weight = nn.Parameter(torch.full((num_classes,), float(cfg.w_angular)))
        self.compatibility = nn.Conv2d(num_classes, num_classes, 1, bias=False)
        with torch.no_grad():  # Potts: a penalty of 1 for every pair of different labels
            self.compatibility.weight.copy_((1.0 - torch.eye(num_classes)).view(num_classes, num_classes, 1, 1))

    def _shifted(self, padded: torch.Tensor, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
        """The neighbour at offset (dy, dx) of every pixel, from a map padded by the window's half size."""
        return padded[..., self.pad_h + dy : self.pad_h + dy + h, self.pad_w + dx : self.pad_w + dx + w]

    def angular_taps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The angular kernel k2 as its two 1-D factors, (K or 1, kh) down the rows and (K or 1, kw) along them.

        ``exp(-(dy^2 + dx^2) / 2 s^2) = exp(-dy^2 / 2 s^2) * exp(-dx^2 / 2 s^2)``, so the window filter is a pass
        down the rows, then one along them; the centre weight is exactly 1 (taken off after: no self-message).
        On CPU these few shifted products cost a fraction of a depthwise conv of K channels.
        """
        rows = torch.arange(-self.pad_h, self.pad_h + 1, dtype=self.sigma_gamma.dtype, device=self.sigma_gamma.device)
        cols = torch.arange(-self.pad_w, self.pad_w + 1, dtype=rows.dtype, device=rows.device)
        scale = (-0.5 / self.sigma_gamma**2).view(-1, 1)
        return torch.exp(scale * rows.square()), torch.exp(scale * cols.square())

    @torch.no_grad()
    def bilateral_kernel(self, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Bilateral message weights k1, (B, Kb, S, H, W): Kb = 1 (shared sigmas) or K, S = window slots.

        Slot s of pixel i weighs the neighbour at the s-th window offset (row-major; the centre slot is zero).
        Zero where the pixel or the neighbour is empty or outside the image, so empty pixels neither send nor
        receive. The kernel is a fixed function of the scan's geometry (as in SqueezeSeg): no gradient flows
        into xyz through it.
        """
        h, w = xyz.shape[-2:]
        pad = (self.pad_w, self.pad_w, self.pad_h, self.pad_h)
        slots = [(dy, dx) for dy in range(-self.pad_h, self.pad_h + 1) for dx in range(-self.pad_w, self.pad_w + 1)]
        # every window slot of all three channels in one stack: a few large ops (PyTorch's unfold is several
        # times slower, and per-channel stacks cost more ops)
        xyz_p = nnf.pad(xyz, pad)
        neighbours = torch.stack([self._shifted(xyz_p, dy, dx, h, w) for dy, dx in slots], dim=1)  # (B, S, 3, H, W)
        dist_sq = neighbours.sub_(xyz.unsqueeze(1)).square_().sum(2)  # (B, S, H, W)
        valid_p = nnf.pad(valid, pad)  # False outside the image
        pair_valid = torch.stack([self._shifted(valid_p, dy, dx, h, w) for dy, dx in slots], dim=1)
        pair_valid &= valid.unsqueeze(1)
        pair_valid[:, len(slots) // 2] = False  # no message to itself
        beta = (-0.5 / self.kernel_sigma_beta**2).view(1, -1, 1, 1, 1)
        alpha = (-0.5 * self.offset_sq.view(1, -1) / self.kernel_sigma_alpha.view(-1, 1) ** 2).unsqueeze(-1)
        log_k = (dist_sq.unsqueeze(1) * beta).add_(alpha.unsqueeze(0).unsqueeze(-1))  # (B, Kb, S, H, W)
        keep = (log_k >= self.MIN_LOG_WEIGHT).logical_and_(pair_valid.unsqueeze(1))
        kernel = log_k.exp_().mul_(keep)  # exactly zero where dropped (exp of finite values: never NaN)
        if self._kernel_per_class:
            kernel = kernel.index_select(1, self.kernel_group)
        return kernel

    def pairwise(
        self,
        q: torch.Tensor,
        bilateral: torch.Tensor,
        valid: torch.Tensor,
        angular: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Pairwise energy per pixel and label for marginals ``q`` (B, K, H, W): compat(w1 m1 + w2 m2).

        m1 is the locally connected bilateral message (per-pixel weights, one shifted view per neighbour); m2, whose
        weights depend on the pixel offset only, is a depthwise filter of the masked marginals, applied as its two
        1-D passes (:meth:`angular_taps`; ``angular``: those taps, if the caller computed them once for all
        iterations).

        The compatibility is linear, so ``compat(w1 m1 + w2 m2) = (C diag w1) m1 + (C diag w2) m2``: two K x K
        matrix products over the pixels, which on CPU cost far less than a 1x1 conv of K channels plus the
        separate weighting (the same numbers up to float rounding).
        """
        b, k, h, w = q.shape
        validf = valid.to(q.dtype).unsqueeze(1)
        q_valid = q * validf
        q_p = nnf.pad(q_valid, (self.pad_w, self.pad_w, self.pad_h, self.pad_h))
        (slot, dy, dx), *rest = self.neighbours
        m_bi = bilateral[:, :, slot] * self._shifted(q_p, dy, dx, h, w)
        for slot, dy, dx in rest:  # accumulated in place: no new map per neighbour
            m_bi.addcmul_(bilateral[:, :, slot], self._shifted(q_p, dy, dx, h, w))
        down, along = angular if angular is not None else self.angular_taps()
        down = down.to(q.dtype).view(1, -1, down.shape[-1], 1, 1)  # (1, K or 1, kh, 1, 1)
        along = along.to(q.dtype).view(1, -1, along.shape[-1], 1, 1)
        rows = down[:, :, 0] * q_p[:, :, 0:h]  # the rows pass keeps the padded columns for the second pass
        for dy in range(1, 2 * self.pad_h + 1):
            rows.addcmul_(down[:, :, dy], q_p[:, :, dy : dy + h])
        m_ang = along[:, :, 0] * rows[..., 0:w]
        for dx in range(1, 2 * self.pad_w + 1):
            m_ang.addcmul_(along[:, :, dx], rows[..., dx : dx + w])
        m_ang = m_ang.sub_(q_valid).mul_(validf)  # no self-message (centre weight 1); empty pixels receive none
        compat = self.compatibility.weight.view(k, k)
        to_bi = (compat * self.bilateral_weight.view(1, k)).expand(b, k, k)
        to_ang = (compat * self.angular_weight.view(1, k)).expand(b, k, k)
        energy = torch.baddbmm(torch.bmm(to_bi, m_bi.reshape(b, k, h * w)), to_ang, m_ang.reshape(b, k, h * w))
        return energy.view(b, k, h, w)

    def forward(self, logits: torch.Tensor, xyz: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != self.num_classes:
            raise PerceptionError(f"CRF built for {self.num_classes} classes got logits with {logits.shape[1]}")
        if xyz.shape[1] != 3 or xyz.shape[-2:] != logits.shape[-2:] or valid.shape[-2:] != logits.shape[-2:]:
            raise PerceptionError(
                f"CRF: expected xyz (B, 3, H, W) and valid (B, H, W) matching logits {tuple(logits.shape)}, "
                f"got {tuple(xyz.shape)} and {tuple(valid.shape)}"
            )
        logits = logits.contiguous()  # the backbone may hand over channels-last maps: keep the CRF on NCHW
        bilateral = self.bilateral_kernel(xyz.to(logits.dtype), valid.to(torch.bool))
        angular = self.angular_taps()  # the same for every iteration
        # energy = unary + pairwise with unary = -logits (-log P up to a per-pixel constant, which softmax
        # ignores); the layer returns -energy
        out = logits
        for _ in range(self.iterations):
            out = logits - self.pairwise(torch.softmax(out, dim=1), bilateral, valid, angular)
        return out

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, {self.config.to_dict()}"
