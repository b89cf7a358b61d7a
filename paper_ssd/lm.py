"""The model interface the decoding engines use: a session over one sequence's KV cache.

A session holds a KV cache whose rows share one physical length. ``feed`` appends tokens to every
row and returns their next-token logits, ``crop`` rolls the cache back to a prefix, ``take``
copies rows (repeating them for branches), and ``forward`` feeds with explicit per-row positions
and a per-row mask over the cache slots. ``Rows`` builds a batch of sequences of different
lengths on top of that: a rejected speculation's slots are masked out of a row rather than
cropped, so rows can advance by different amounts and still be fed in one pass. Backends: a tiny
pure-torch decoder with a KV cache (tests, smoke tier; the suite supplies it); Hugging Face causal
LMs (``paper_ssd.models``) behind the same calls.
"""

from __future__ import annotations

import os
import zipfile
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

    @property
    def device(self) -> torch.device:
        return self.model.head.weight.device

    @torch.no_grad()
    def feed(self, tokens) -> torch.Tensor:
        """tokens: a list (one row) or a [rows, t] tensor; returns float32 logits [t, V] or [rows, t, V]."""
        batch = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        one_row = batch.dim() == 1
        logits = self.model(batch[None] if one_row else batch, self.caches).float()
        return logits[0] if one_row else logits

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, t, V], or only at the sequence indices ``keep``."""
        logits = self.model(tokens, self.caches, positions, key_mask).float()
        return logits if keep is None else logits[:, keep.to(logits.device)]

    def crop(self, n: int) -> None:
        if n < 0 or n > self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {n}")
        for c in self.caches:
            if "k" in c:
                c["k"], c["v"] = c["k"][:, :, :n], c["v"][:, :, :n]

    def take(self, index: torch.Tensor) -> TorchSession:
        """A new session of the given rows (an index may repeat: branches of one row)."""
        index = index.to(self.device)
        return TorchSession(self.model, [{"k": c["k"][index], "v": c["v"][index]} if "k" in c else {}
                                         for c in self.caches])

    def reset(self) -> None:
        self.caches = self.model.new_caches()


class Rows:
    """A batch of sequences of different lengths decoded together over one session.

    Each row keeps a logical length and a mask over the session's physical cache slots. Feeding
    gives each row its own positions (its logical length onwards); ``truncate`` rolls rows back
    by masking their last slots out, and the physical tail that no row uses is cropped, so with
    one row this is plain crop-based rollback."""

    def __init__(self, session, batch: int, mask: torch.Tensor | None = None, lengths: torch.Tensor | None = None):
        self.session = session
        device = session.device
        self.mask = mask if mask is not None else torch.zeros(batch, session.length, dtype=torch.bool, device=device)
        self.lengths = lengths if lengths is not None else torch.zeros(batch, dtype=torch.long, device=device)
        if self.mask.shape != (batch, session.length):
            raise ValueError(f"mask {tuple(self.mask.shape)} does not fit {batch} rows of {session.length} slots")

    @classmethod
    def fresh(cls, session, batch: int) -> Rows:
        session.reset()
        return cls(session, batch)

    @property
    def batch(self) -> int:
        return self.mask.shape[0]

    def feed(self, seqs, last_only: bool = False) -> torch.Tensor:
        """Append ``seqs`` (a [B, t] tensor, or B lists of any lengths >= 1, padded on the right
        and the padding masked out afterwards); logits [B, t_max, V]. With lists, row r's own
        last logits are at index len(seqs[r]) - 1. ``last_only``: just those, [B, V] (a prefill
        then skips the output layer everywhere else, as generation libraries do)."""
        device = self.mask.device
        if isinstance(seqs, torch.Tensor):
            tokens = seqs.to(device)
            counts = torch.full((self.batch,), tokens.shape[1], dtype=torch.long, device=device)
        else:
            if len(seqs) != self.batch or min(len(x) for x in seqs) < 1:
                raise ValueError(f"need {self.batch} non-empty rows, got lengths {[len(x) for x in seqs]}")
            width = max(len(x) for x in seqs)
            tokens = torch.tensor([list(x) + [0] * (width - len(x)) for x in seqs], dtype=torch.long, device=device)
            counts = torch.tensor([len(x) for x in seqs], dtype=torch.long, device=device)
        width = tokens.shape[1]
        steps = torch.arange(width, device=device)
        positions = self.lengths[:, None] + steps
        key_mask = torch.cat([self.mask, torch.ones(self.batch, width, dtype=torch.bool, device=device)], 1)
        if last_only:
            last = counts - 1
            keep = torch.unique(last)
            logits = self.session.forward(tokens, positions, key_mask, keep)
            logits = logits[torch.arange(self.batch, device=logits.device),
                            torch.searchsorted(keep, last).to(logits.device)]
        else:
            logits = self.session.forward(tokens, positions, key_mask)
        self.mask = torch.cat([self.mask, steps[None] < counts[:, None]], 1)
        self.lengths = self.lengths + counts  # the widest row fills the new slots: no unused tail to crop
        return logits

    def truncate(self, lengths) -> None:
        """Keep each row's first ``lengths[r]`` tokens (at most what it holds)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=self.mask.device)
        if bool((lengths < 0).any()) or bool((lengths > self.lengths).any()):
            raise ValueError(f"cannot truncate rows of lengths {self.lengths.tolist()} to {lengths.tolist()}")
        self.mask &= self.mask.cumsum(1) <= lengths[:, None]
        self.lengths = lengths
        self._compact()

    def take(self, index, lengths=None) -> Rows:
        """Copies of the given rows (repeats allowed), optionally truncated to ``lengths``."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.mask.device)
        rows = Rows(self.session.take(index), len(index), self.mask[index].clone(), self.lengths[index].clone())
        if lengths is not None:
            rows.truncate(lengths)
        return rows

    def _compact(self) -> None:
        used = self.mask.any(0).nonzero()
        n = int(used[-1]) + 1 if len(used) else 0
        if n < self.mask.shape[1]:
            self.session.crop(n)
            self.mask = self.mask[:, :n]


@dataclass(frozen=True)
class TinySpec:
    """A picklable recipe for a tiny decoder saved by ``save_tiny`` (the draft process loads it).
    The model and config classes travel with it (by reference), so this package does not need to
    know which decoder it is: any module with ``cfg``, ``new_caches()`` and ``forward(idx, caches)``."""

    path: str
    model_cls: type
    config_cls: type
    device: str = "cpu"

    def session(self) -> TorchSession:
        """The decoder, loaded as tensors and plain data only (never code), once every record of the
        file matches the CRC-32 stored beside it (torch's reader does not check: a flipped byte loads)."""
        with zipfile.ZipFile(self.path) as archive:
            if archive.testzip() is not None:
                raise zipfile.BadZipFile(f"a record of {self.path} does not match its checksum")
        saved = torch.load(self.path, weights_only=True)
        model = self.model_cls(self.config_cls(**saved["config"]))
        model.load_state_dict(saved["state"])
        return TorchSession(model.to(self.device))


def save_tiny(model, path: str | Path) -> TinySpec:
    from dataclasses import asdict

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")  # concurrent fills: one whole entry wins
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, tmp)
    tmp.replace(path)
    return TinySpec(str(path), type(model), type(model.cfg))
