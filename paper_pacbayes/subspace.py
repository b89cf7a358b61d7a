"""Random-subspace ("intrinsic dimension") training with a Kronecker projection.

theta = theta_0 + P w, w in R^d, theta_0 and P fixed by the seed (they are part of the prior,
chosen before any data is seen). P is never formed: with W = w reshaped to d1 x d2,

    (R1 kron R2) vec(W) = vec(R1 W R2^T)        (row-major vec)

so P w costs O(D sqrt(d)) time and O(sqrt(D d)) memory instead of a D x d dense matrix
(400 MB for D = 100k, d = 1k). R1 (D1 x d1), R2 (D2 x d2) have N(0, 1) entries; the first D
of the D1*D2 outputs are kept and randomly permuted (so the Kronecker blocks do not line up
with layer boundaries), and the result is scaled by 1/sqrt(D) so ||P w|| ~ ||w||.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call


def _factor(k: int) -> tuple[int, int]:
    a = math.ceil(math.sqrt(k))
    return a, math.ceil(k / a)


class KroneckerProjector(nn.Module):
    def __init__(self, D: int, d: int, seed: int):
        super().__init__()
        self.D, self.d = D, d
        self.d1, self.d2 = _factor(d)
        self.D1, self.D2 = _factor(D)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("r1", torch.randn(self.D1, self.d1, generator=g))
        self.register_buffer("r2", torch.randn(self.D2, self.d2, generator=g))
        self.register_buffer("perm", torch.randperm(D, generator=g))
        self.scale = 1.0 / math.sqrt(D)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        pad = self.d1 * self.d2 - self.d
        wm = torch.nn.functional.pad(w, (0, pad)).reshape(self.d1, self.d2)
        full = (self.r1 @ wm @ self.r2.T).reshape(-1)[: self.D]
        return full[self.perm] * self.scale

    def dense(self) -> torch.Tensor:
        """The explicit D x d matrix (tests only: it is what forward() avoids building)."""
        return torch.stack([self.forward(e) for e in torch.eye(self.d)], dim=1)


class SubspaceModel(nn.Module):
    """Wraps a network so that its only trainable parameter is w (initialised to 0)."""

    def __init__(self, net: nn.Module, d: int, seed: int, theta0: torch.Tensor | None = None):
        super().__init__()
        self.net = net
        self.names = [n for n, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]) if theta0 is None else theta0
        for p in net.parameters():
            p.requires_grad_(False)
        self.register_buffer("theta0", flat.clone())
        self.D = flat.numel()
        self.projector = KroneckerProjector(self.D, d, seed)
        self.w = nn.Parameter(torch.zeros(d))

    def params(self, w: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        theta = self.theta0 + self.projector(self.w if w is None else w)
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            k = math.prod(shape)
            out[name] = theta[i:i + k].view(shape)
            i += k
        return out

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.net, self.params(w), (x,))


def mlp(d_in: int, hidden: int, n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def image_shape(d_in: int) -> tuple[int, int, int]:
    """(channels, side, side) of flattened square images: 1 channel if d_in is a square, else 3."""
    for channels in (1, 3):
        side = math.isqrt(d_in // channels)
        if d_in % channels == 0 and side * side * channels == d_in:
            return channels, side, side
    raise ValueError(f"cannot read {d_in} inputs as square 1- or 3-channel images")


def cnn(d_in: int, width: int, n_classes: int) -> nn.Module:
    """A small all-convolutional network for square images given flattened, channel-major
    (in the spirit of Lotfi et al.'s small CNNs; no batch norm, so subspace training stays
    a pure function of theta)."""
    shape = image_shape(d_in)
    return nn.Sequential(
        nn.Unflatten(1, shape),
        nn.Conv2d(shape[0], width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, n_classes),
    )


class _Block(nn.Module):
    """A ResNet basic block (two 3x3 convolutions) with GroupNorm in place of batch norm, so that the
    network is a pure function of its parameters; a strided 1x1 shortcut where the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        groups = math.gcd(c_out, 8)
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(groups, c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(groups, c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.GroupNorm(groups, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet20(d_in: int, width: int, n_classes: int) -> nn.Module:
    """ResNet-20 (He et al. 2016's CIFAR network: a 3x3 stem, three stages of three basic blocks at
    widths w, 2w, 4w, global pooling, a linear head), base width ``width`` (Lotfi et al. use 16 for
    FashionMNIST), GroupNorm for batch norm."""
    shape = image_shape(d_in)
    layers: list[nn.Module] = [nn.Unflatten(1, shape), nn.Conv2d(shape[0], width, 3, padding=1, bias=False),
                               nn.GroupNorm(math.gcd(width, 8), width), nn.ReLU()]
    c = width
    for stage, c_out in enumerate((width, 2 * width, 4 * width)):
        for block in range(3):
            layers.append(_Block(c, c_out, 2 if stage > 0 and block == 0 else 1))
            c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers)


ARCHS = {"mlp": mlp, "cnn": cnn, "resnet20": resnet20}


def build(arch: str, d_in: int, width: int, n_classes: int) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return ARCHS[arch](d_in, width, n_classes)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
