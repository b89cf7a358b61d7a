"""The model interface the decoding engines use: a session over one sequence's KV cache.

``feed`` appends tokens and returns their next-token logits, ``crop`` rolls the cache back to a
prefix (a rejected speculation), ``fork`` copies a prefix into a batch of branches (the
speculation-cache tree). Backends: a tiny pure-torch decoder with a KV cache (tests, smoke tier;
the suite supplies it); Hugging Face causal LMs (``paper_ssd.models``) behind the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


class TorchSession:
    """KV-cached decoding with a small torch decoder (batch rows share a length)."""

    def __init__(self, model, caches: list[dict] | None = None):
        self.model = model.eval()
        self.caches = caches if caches is not None else model.new_caches()

    @property
    def vocab_size(self) -> int:
        return self.model.cfg.vocab_size

    @property
    def length(self) -> int:
        return self.caches[0]["k"].shape[2] if "k" in self.caches[0] else 0

    @torch.no_grad()
    def feed(self, tokens) -> torch.Tensor:
        """tokens: a list (one row) or a [rows, t] tensor; returns float32 logits [t, V] or [rows, t, V]."""
        batch = torch.as_tensor(tokens, dtype=torch.long)
        one_row = batch.dim() == 1
        logits = self.model(batch[None] if one_row else batch, self.caches).float()
        return logits[0] if one_row else logits

    def crop(self, n: int) -> None:
        if n < 0 or n > self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {n}")
        for c in self.caches:
            if "k" in c:
                c["k"], c["v"] = c["k"][:, :, :n], c["v"][:, :, :n]

    def fork(self, n: int, rows: int) -> TorchSession:
        """A new session holding the first ``n`` cached tokens, repeated over ``rows`` branches."""
        if n > self.length:
            raise ValueError(f"cannot fork {n} tokens from a cache of {self.length}")
        caches = [{"k": c["k"][:1, :, :n].expand(rows, -1, -1, -1), "v": c["v"][:1, :, :n].expand(rows, -1, -1, -1)}
                  if "k" in c and n > 0 else {} for c in self.caches]
        return TorchSession(self.model, caches)

    def reset(self) -> None:
        self.caches = self.model.new_caches()


@dataclass(frozen=True)
class TinySpec:
    """A picklable recipe for a tiny decoder saved by ``save_tiny`` (the draft process loads it).
    The model and config classes travel with it (by reference), so this package does not need to
    know which decoder it is: any module with ``cfg``, ``new_caches()`` and ``forward(idx, caches)``."""

    path: str
    model_cls: type
    config_cls: type

    def session(self) -> TorchSession:
        saved = torch.load(self.path, weights_only=False)
        model = self.model_cls(self.config_cls(**saved["config"]))
        model.load_state_dict(saved["state"])
        return TorchSession(model)


def save_tiny(model, path: str | Path) -> TinySpec:
    from dataclasses import asdict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, tmp)
    tmp.replace(path)
    return TinySpec(str(path), type(model), type(model.cfg))
