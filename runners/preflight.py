"""Preflight: what a run will need, checked in seconds before any long work.

A suite lists its needs for one config (``Suite.preflight``) with the helpers here: the peak
memory of each phase on its device (an estimate from the model's parameter count and the phase's
largest batch), files and folders that must exist, hub models (cached, or answering on the hub: with a
token where they are gated), and free disk.
The tier's requirements (GPU count and memory, packages) come first: where they are unmet the run
is ``skipped`` and the needs are not looked at. Every need that is short is one line naming it,
what it needs and what was found.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

GB = 1e9
# Training with AdamW and an EMA copy, fp32 master weights: weights 4 + gradients 4 + two moments 8
# + EMA 4 bytes per parameter.
TRAIN_BYTES_PER_PARAM = 20


@dataclass(frozen=True)
class Need:
    """One thing a run needs, and whether this machine has it."""

    what: str
    needed: str
    found: str
    ok: bool

    def line(self) -> str:
        return f"{self.what}: needs {self.needed}, found {self.found}"


@dataclass
class Verdict:
    """Unmet requirements (the run is skipped) or the needs (any short: the run is refused)."""

    unmet: list[str] = field(default_factory=list)
    needs: list[Need] = field(default_factory=list)

    @property
    def short(self) -> list[Need]:
        return [n for n in self.needs if not n.ok]

    @property
    def status(self) -> str:
        return "skipped" if self.unmet else "short" if self.short else "ok"

    def lines(self) -> list[str]:
        if self.unmet:
            return ["skipped: requirement unmet: " + "; ".join(self.unmet)]
        return [f"short: {n.line()}" for n in self.short] or [f"ok: {len(self.needs)} need(s) met"]


def device_memory_gb(device: str) -> tuple[float, str]:
    """Memory a run can use on ``device`` ("cpu", "cuda", "cuda:3"), in GB, and where the number came from."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return 0.0, f"no {device}"
        props = torch.cuda.get_device_properties(index)
        return props.total_memory / GB, f"{props.name}"
    import psutil

    return psutil.virtual_memory().available / GB, "available RAM"


def memory(phase: str, device: str, estimate_bytes: float) -> Need:
    """The phase's estimated peak fits in the device's memory."""
    have, where = device_memory_gb(device)
    need = estimate_bytes / GB
    return Need(f"memory of phase {phase} on {device}", f"about {need:.2f} GB (estimate)",
                f"{have:.1f} GB ({where})", need <= have)


def training_bytes(params: int, activations: float, batch_bytes: float = 0.0) -> float:
    """A training step's peak: weights, gradients, AdamW's moments and the EMA copy, plus activations
    kept for the backward pass and the batch."""
    return TRAIN_BYTES_PER_PARAM * params + activations + batch_bytes


def transformer_activation_bytes(batch: int, tokens: int, width: int, layers: int, heads: int,
                                 bytes_per_value: int = 4, mlp_ratio: float = 4.0, flash: bool = False) -> float:
    """Activations kept for the backward pass of a transformer stack: per layer and token about
    (10 + 2 mlp_ratio) x width values (attention's inputs, outputs, softmax input and the MLP's two
    layers; Korthikanti et al. 2022 count 34 half-precision bytes at mlp_ratio 4), plus the attention
    matrix, heads x tokens values per token, unless a fused kernel (``flash``) never stores it."""
    per_token = (10 + 2 * mlp_ratio) * width + (0 if flash else 2 * heads * tokens)
    return float(batch) * tokens * layers * per_token * bytes_per_value


def present(what: str, path: str | os.PathLike) -> Need:
    """A file or folder the run reads."""
    p = Path(path).expanduser()
    return Need(what, f"{p} to exist", "it" if p.exists() else "nothing there", p.exists())


def fetchable(what: str, here: bool, url: str, timeout: float = 5.0, token: str | None = None) -> Need:
    """Data found here, or a download the run will make: its URL answers (one HEAD request, no retries;
    with ``token`` as a bearer token where one is given)."""
    if here:
        return Need(what, "a local copy or its download", "a local copy", True)
    import urllib.error
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD", headers=headers), timeout=timeout).close()  # noqa: S310
        return Need(what, "a local copy or its download", f"{url} reachable", True)
    except urllib.error.HTTPError as exc:
        return Need(what, "a local copy or its download", f"no local copy, and {url} refused it (HTTP {exc.code})",
                    False)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return Need(what, "a local copy or its download", f"no local copy, and {url} unreachable ({exc})", False)


def free_disk(what: str, path: str | os.PathLike, gb: float) -> Need:
    """Free space on the disk of ``path`` (its nearest existing parent) for caches or checkpoints."""
    p = Path(path).expanduser().resolve()
    while not p.exists():
        p = p.parent
    free = shutil.disk_usage(p).free / GB
    return Need(f"disk for {what}", f"{gb:.1f} GB free", f"{free:.1f} GB free at {p}", free >= gb)


def hub_access(repo_id: str, cached: bool, gated: bool, filename: str = "config.json") -> Need:
    """A hub model: cached here, or its ``filename`` answering on the hub now (one request, no retries; with
    the token where one is set, so a gated repository answers only to a token with access to it)."""
    if cached:
        return Need(f"weights of {repo_id}", "a local copy or hub access", "a local copy", True)
    from huggingface_hub import constants, get_token

    token = get_token()
    if gated and not token:
        return Need(f"weights of {repo_id} (gated)", "a Hugging Face token (HF_TOKEN) with access, or a local copy",
                    "no token and no local copy", False)
    return fetchable(f"weights of {repo_id}" + (" (gated)" if gated else ""), False,
                     f"{constants.ENDPOINT}/{repo_id}/resolve/main/{filename}", token=token)


def check(suite_cls, cfg, tier: str) -> Verdict:
    """The tier's requirements, then (where they are met) the suite's needs for ``cfg``."""
    from runners.runner import unmet_requirements

    unmet = unmet_requirements(suite_cls.requirements(tier), getattr(cfg, "device", "cpu"))
    if unmet:
        return Verdict(unmet=unmet)
    return Verdict(needs=list(suite_cls().preflight(cfg)))
