"""Decoding engines: autoregressive (AR), synchronous speculative decoding (SD), and speculative
speculative decoding (SSD) with the draft in its own process.

Conventions shared by SD and SSD: the committed sequence is ``s``; each model's KV cache holds
``s[:-1]`` and the last token is *pending*, so verifying K draft tokens feeds the target
``[pending, x_1..x_K]`` and yields p_1..p_{K+1} in one pass. After the verdict (a accepted, bonus
t) the caches are cropped back to the new ``s[:-1]``.

SSD (Kumar, Dao, May 2026): while the target verifies round T, the draft predicts the outcome
(accepted length a, bonus token t) and pre-drafts the next round for the likely ones: for every
a with fan-out F_a > 0, the draft's top-F_a tokens at position a+1 (excluding x_{a+1}, which a
rejection rules out) each get a K-token continuation. The speculation cache maps (a, t) to that
continuation and the distributions it was drawn from. On a hit the next speculation is ready at
once; on a miss a backup answers: ``jit`` drafts K tokens on the spot, ``fast`` sends random
tokens (a deterministic proposal, verified as q = delta_x). Verification is the same exact test
in all modes, so the output law is the target's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, fields

import torch

from paper_ssd.verify import one_hot_proposal, probs, saguaro, verify


@dataclass
class DecodeConfig:
    k: int = 3  # draft tokens per round
    temperature: float = 0.0
    fan_out: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # per accepted length 0..K, after a hit
    fan_out_miss: list[int] = field(default_factory=list)  # after a miss; empty: same as fan_out
    backup: str = "jit"  # jit | fast
    saguaro_c: float = 1.0  # C in Saguaro sampling; 1 = plain sampling
    seed: int = 0

    def check(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        for name in ("fan_out", "fan_out_miss"):
            value = getattr(self, name)
            if value and len(value) != self.k + 1:
                raise ValueError(f"{name} needs k+1 = {self.k + 1} entries (accepted lengths 0..k), got {value}")
        if self.fan_out_miss and sum(self.fan_out_miss) != sum(self.fan_out):
            raise ValueError("fan_out and fan_out_miss must have the same budget (sum), as in the paper")
        if self.backup not in ("jit", "fast"):
            raise ValueError(f"backup must be jit or fast, got {self.backup!r}")
        if self.saguaro_c < 1 and len(set(self.fan_out)) > 1:
            raise ValueError("Saguaro sampling needs a constant fan-out (the paper's restriction)")


@dataclass
class Stats:
    new_tokens: int = 0
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    verify_s: float = 0.0
    draft_s: float = 0.0  # SD: drafting on the critical path
    wait_s: float = 0.0  # SSD: target waiting for the draft's answer
    predicted: int = 0  # SSD rounds after the first: the ones a speculation cache could serve
    hits: int = 0
    length_hits: int = 0  # the accepted length had candidates (F_a > 0)
    tokens_on_hit: int = 0
    draft_busy_s: float = 0.0
    draft_idle_s: float = 0.0
    backup_s: float = 0.0

    def add(self, other: Stats) -> None:
        """Accumulate another run's counts and times (every field is a sum)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def summary(self) -> dict:
        rounds = max(self.rounds, 1)
        predicted = max(self.predicted, 1)
        miss_rounds = max(self.rounds - self.hits, 1)
        return {**asdict(self),
                "tokens_per_s": self.new_tokens / self.decode_s if self.decode_s else float("nan"),
                "tokens_per_round": self.new_tokens / rounds,
                "acceptance": self.accepted / self.drafted if self.drafted else float("nan"),
                "hit_rate": self.hits / predicted, "length_hit_rate": self.length_hits / predicted,
                "bonus_hit_rate": self.hits / self.length_hits if self.length_hits else float("nan"),
                "tokens_per_round_hit": self.tokens_on_hit / max(self.hits, 1),
                "tokens_per_round_miss": (self.new_tokens - self.tokens_on_hit) / miss_rounds,
                "verify_ms": 1000 * self.verify_s / rounds}


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    if temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(probs(logits, temperature), 1, generator=generator))


def autoregressive(target, prompt: list[int], n_new: int, temperature: float = 0.0,
                   seed: int = 0) -> tuple[list[int], Stats]:
    gen = torch.Generator().manual_seed(seed)
    stats = Stats()
    target.reset()
    t0 = time.perf_counter()
    logits = target.feed(prompt)[-1]
    stats.prefill_s = time.perf_counter() - t0
    out: list[int] = []
    t0 = time.perf_counter()
    while True:
        out.append(pick(logits, temperature, gen))
        if len(out) == n_new:
            break
        logits = target.feed([out[-1]])[-1]
    stats.decode_s = time.perf_counter() - t0
    stats.new_tokens = stats.rounds = len(out)
    return out, stats


def _propose(logits: torch.Tensor, temperature: float, c: float, top: int,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The draft's proposal q (temperature, then Saguaro on its ``top`` tokens when C < 1) and a
    token drawn from it (the argmax at temperature 0); logits [V] or [B, V]."""
    q = probs(logits, temperature)
    if c < 1:
        q = saguaro(q, top, c)
    if temperature == 0:
        return q.argmax(-1), q
    return torch.multinomial(q.reshape(-1, q.shape[-1]), 1, generator=generator).reshape(q.shape[:-1]), q


def _draft_chain(draft, s: list[int], k: int, temperature: float, c: float, fan: int,
                 generator: torch.Generator) -> tuple[list[int], torch.Tensor]:
    """K tokens from the draft after ``s`` (its cache must hold a prefix of s[:-1] at most)."""
    draft.crop(min(draft.length, len(s) - 1))
    logits = draft.feed(s[draft.length:])[-1]
    xs, qs = [], []
    for i in range(k):
        x, q = _propose(logits, temperature, c, fan, generator)
        xs.append(int(x))
        qs.append(q)
        if i < k - 1:
            logits = draft.feed([xs[-1]])[-1]
    return xs, torch.stack(qs)


def _verify_round(target, s: list[int], xs: list[int], qs: torch.Tensor, temperature: float,
                  generator: torch.Generator) -> tuple[int, int]:
    p = probs(target.feed([s[-1], *xs]), temperature)
    verdict = verify(torch.tensor([xs]), qs[None], p[None], generator)
    return int(verdict.accepted[0]), int(verdict.bonus[0])


def _commit(s: list[int], xs: list[int], accepted: int, bonus: int, stats: Stats, start: int, n_new: int) -> int:
    emitted = xs[:accepted] + [bonus]
    room = n_new - (len(s) - start)
    s += emitted[:room]
    stats.rounds += 1
    stats.drafted += len(xs)
    stats.accepted += accepted
    return len(emitted[:room])


def speculative(target, draft, prompt: list[int], n_new: int, cfg: DecodeConfig) -> tuple[list[int], Stats]:
    """Synchronous SD: the draft proposes K tokens, then the target verifies them in one pass."""
    cfg.check()
    gen = torch.Generator().manual_seed(cfg.seed)
    stats = Stats()
    target.reset()
    draft.reset()
    t0 = time.perf_counter()
    target.feed(prompt[:-1])
    draft.feed(prompt[:-1])
    stats.prefill_s = time.perf_counter() - t0
    s = list(prompt)
    t_start = time.perf_counter()
    while len(s) - len(prompt) < n_new:
        t0 = time.perf_counter()
        xs, qs = _draft_chain(draft, s, cfg.k, cfg.temperature, 1.0, 0, gen)
        t1 = time.perf_counter()
        accepted, bonus = _verify_round(target, s, xs, qs, cfg.temperature, gen)
        stats.draft_s += t1 - t0
        stats.verify_s += time.perf_counter() - t1
        _commit(s, xs, accepted, bonus, stats, len(prompt), n_new)
        target.crop(len(s) - 1)
    stats.decode_s = time.perf_counter() - t_start
    stats.new_tokens = len(s) - len(prompt)
    return s[len(prompt):], stats


# ---------------------------------------------------------------------------- SSD draft process
def _build_cache(draft, s: list[int], xs: list[int], cfg: DecodeConfig, fan: list[int],
                 generator: torch.Generator) -> dict[tuple[int, int], tuple[list[int], torch.Tensor]]:
    """Predict the outcome of verifying ``xs`` after ``s`` and pre-draft the next round for each."""
    k, c = cfg.k, cfg.saguaro_c
    draft.crop(min(draft.length, len(s) - 1))
    glue = draft.feed(s[draft.length:] + xs)[-(k + 1):]  # draft logits after s + x_1..x_j, j = 0..K
    cache = {}
    for j in range(k + 1):
        if fan[j] <= 0:
            continue
        q = probs(glue[j], cfg.temperature) if cfg.temperature > 0 else torch.softmax(glue[j], -1)
        if j < k:
            q = q.clone()
            q[xs[j]] = -1.0  # a rejection at j+1 rules out the rejected token as the bonus
        candidates = q.topk(min(fan[j], q.numel() - 1)).indices
        branch = draft.fork(len(s) + j, len(candidates))
        logits = branch.feed(candidates[:, None])[:, -1]
        tokens, dists = [], []
        for step in range(k):
            # Saguaro on the top F+1, as the official code: the speculated token and F bonus candidates
            nxt, qd = _propose(logits, cfg.temperature, c, fan[0] + 1, generator)
            tokens.append(nxt)
            dists.append(qd)
            if step < k - 1:
                logits = branch.feed(nxt[:, None])[:, -1]
        tokens_t, dists_t = torch.stack(tokens, 1), torch.stack(dists, 1)  # [F, K], [F, K, V]
        for i, t in enumerate(candidates.tolist()):
            cache[(j, t)] = (tokens_t[i].tolist(), dists_t[i])
    return cache


def _draft_main(conn, spec, cfg: DecodeConfig, core: int | None) -> None:
    try:
        if core is not None and hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {core})
        torch.set_num_threads(1)
        draft = spec.session()
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        vocab = draft.vocab_size
        fast = torch.Generator().manual_seed(cfg.seed + 2)
        s: list[int] = []
        cache: dict = {}
        xs: list[int] = []
        idle0 = time.perf_counter()
        while True:
            msg = conn.recv()
            idle = time.perf_counter() - idle0
            if msg[0] == "stop":
                return
            if msg[0] == "prefill":
                s, cache, xs = list(msg[1]), {}, []
                draft.reset()
                draft.feed(s[:-1])
                conn.send(("ok",))
                idle0 = time.perf_counter()
                continue
            busy0 = time.perf_counter()
            outcome = msg[1]
            backup_s = 0.0
            if outcome is not None:
                accepted, bonus = outcome
                s += xs[:accepted] + [bonus]
            entry = cache.get(outcome) if outcome is not None else None
            length_hit = outcome is not None and any(key[0] == outcome[0] for key in cache)
            if entry is not None:
                xs, qs = entry
            elif outcome is None or cfg.backup == "jit":
                b0 = time.perf_counter()
                xs, qs = _draft_chain(draft, s, cfg.k, cfg.temperature, cfg.saguaro_c, cfg.fan_out[0] + 1, gen)
                backup_s = time.perf_counter() - b0
            else:  # random tokens: costs nothing, verified as q = delta_x
                xs = torch.randint(vocab, (cfg.k,), generator=fast).tolist()
                qs = one_hot_proposal(torch.tensor(xs), vocab)
            conn.send(("spec", xs, qs, entry is not None, length_hit, idle, backup_s))
            fan = cfg.fan_out if (entry is not None or not cfg.fan_out_miss) else cfg.fan_out_miss
            cache = _build_cache(draft, s, xs, cfg, fan, gen)
            conn.send(("built", time.perf_counter() - busy0))
            idle0 = time.perf_counter()
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException:  # report, then exit: the target raises it with this text
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))


class DraftProcess:
    """The SSD draft on its own core, answering one request per round over a pipe."""

    def __init__(self, spec, cfg: DecodeConfig, core: int | None = 1, timeout_s: float = 120.0):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_draft_main, args=(child, spec, cfg, core), daemon=True)
        self.proc.start()
        child.close()
        self.timeout_s = timeout_s

    def recv(self):
        deadline = time.monotonic() + self.timeout_s
        while not self.conn.poll(0.05):
            if not self.proc.is_alive():
                raise RuntimeError(f"the draft process died (exit code {self.proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the draft process did not answer within {self.timeout_s:.0f} s")
        try:
            msg = self.conn.recv()
        except (EOFError, OSError) as err:  # a killed peer shows as EOF or a reset connection
            raise RuntimeError(f"the draft process died (exit code {self.proc.exitcode})") from err
        if msg[0] == "error":
            raise RuntimeError("the draft process failed:\n" + msg[1])
        return msg

    def send(self, msg) -> None:
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError) as err:
            raise RuntimeError(f"the draft process died (exit code {self.proc.exitcode})") from err

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                self.conn.send(("stop",))
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()

    def __enter__(self) -> DraftProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ssd(target, draft: DraftProcess, prompt: list[int], n_new: int, cfg: DecodeConfig,
        core: int | None = 0) -> tuple[list[int], Stats]:
    """SSD: the draft process builds the speculation cache while the target verifies."""
    cfg.check()
    pinned = core is not None and hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1)
    before = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {core})
    try:
        return _ssd_rounds(target, draft, prompt, n_new, cfg)
    finally:
        if pinned:
            os.sched_setaffinity(0, before)


def _ssd_rounds(target, draft: DraftProcess, prompt: list[int], n_new: int, cfg: DecodeConfig) -> tuple[list[int], Stats]:
    gen = torch.Generator().manual_seed(cfg.seed)
    stats = Stats()
    target.reset()
    t0 = time.perf_counter()
    draft.send(("prefill", list(prompt)))
    target.feed(prompt[:-1])
    draft.recv()
    stats.prefill_s = time.perf_counter() - t0
    s = list(prompt)
    outcome = None
    building = False
    t_start = time.perf_counter()
    while len(s) - len(prompt) < n_new:
        t0 = time.perf_counter()
        if building:  # the draft's previous cache build, if still running, is time the target waits
            stats.draft_busy_s += draft.recv()[1]
        draft.send(("round", outcome))
        _, xs, qs, hit, length_hit, idle, backup_s = draft.recv()
        building = True
        t1 = time.perf_counter()
        stats.wait_s += t1 - t0
        stats.draft_idle_s += idle
        stats.backup_s += backup_s
        accepted, bonus = _verify_round(target, s, xs, qs, cfg.temperature, gen)
        stats.verify_s += time.perf_counter() - t1
        emitted = _commit(s, xs, accepted, bonus, stats, len(prompt), n_new)
        if outcome is not None:  # the first round has no prediction to hit
            stats.predicted += 1
            stats.hits += hit
            stats.length_hits += length_hit
            stats.tokens_on_hit += emitted if hit else 0
        target.crop(len(s) - 1)
        outcome = (accepted, bonus)
    stats.decode_s = time.perf_counter() - t_start
    if building:
        stats.draft_busy_s += draft.recv()[1]
    stats.new_tokens = len(s) - len(prompt)
    return s[len(prompt):], stats
