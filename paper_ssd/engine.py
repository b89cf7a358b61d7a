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

Every mode takes one prompt or a batch of prompts of any lengths (``paper_ssd.lm.Rows``): rows
advance by their own accepted lengths, each target pass verifies every row, and the draft builds
all rows' speculation caches, over every accepted length, as one batch per draft step. With the
``jit`` backup only the rows that missed are drafted on the spot.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from dataclasses import asdict, dataclass, field, fields

import torch

from paper_ssd.lm import Rows
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
    """Counts and times of one decode call. A *round* is one row's draft-verify cycle (a batch of B
    rows runs B rounds per step); times are wall-clock per step."""

    new_tokens: int = 0
    rounds: int = 0
    steps: int = 0  # batched target passes after prefill
    drafted: int = 0
    accepted: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    verify_s: float = 0.0
    draft_s: float = 0.0  # SD: drafting on the critical path
    wait_s: float = 0.0  # SSD: target waiting for the draft's answer
    predicted: int = 0  # SSD rounds after a row's first: the ones a speculation cache could serve
    predicted_steps: int = 0  # SSD steps after the first
    all_hit_steps: int = 0  # ... in which every live row hit (the step needs no backup at all)
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

    @classmethod
    def total(cls, parts: list[Stats]) -> Stats:
        """The sum of several runs' counts and times."""
        out = cls()
        for part in parts:
            out.add(part)
        return out

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
                "all_hit_step_rate": self.all_hit_steps / max(self.predicted_steps, 1),
                "tokens_per_round_hit": self.tokens_on_hit / max(self.hits, 1),
                "tokens_per_round_miss": (self.new_tokens - self.tokens_on_hit) / miss_rounds,
                "verify_ms": 1000 * self.verify_s / max(self.steps, 1)}


def _as_batch(prompt) -> tuple[list[list[int]], bool]:
    """One prompt (a list of ints) or a batch (a list of lists); whether it was one."""
    if len(prompt) and isinstance(prompt[0], list | tuple):
        return [list(p) for p in prompt], False
    return [list(prompt)], True


def _generator(session, seed: int) -> torch.Generator:
    return torch.Generator(device=session.device).manual_seed(seed)


def _prefilled(session, prompts: list[list[int]]) -> Rows:
    """Fresh rows over ``session`` holding each prompt but its last token (the pending one)."""
    rows = Rows.fresh(session, len(prompts))
    if any(len(p) > 1 for p in prompts):
        rows.feed([p[:-1] or p for p in prompts], last_only=True)  # a one-token prompt is fed, then dropped
        rows.truncate([len(p) - 1 for p in prompts])
    return rows


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """A token per row of logits [B, V] (or one from [V]): the argmax at temperature 0."""
    if temperature == 0:
        return logits.argmax(-1)
    q = probs(logits, temperature)
    return torch.multinomial(q.reshape(-1, q.shape[-1]), 1, generator=generator).reshape(q.shape[:-1])


def autoregressive(target, prompt, n_new: int, temperature: float = 0.0, seed: int = 0):
    """The target alone, one token per pass; ``prompt`` one list of ids or a batch of lists."""
    prompts, single = _as_batch(prompt)
    gen = _generator(target, seed)
    stats = Stats()
    rows = Rows.fresh(target, len(prompts))
    t0 = time.perf_counter()
    logits = rows.feed(prompts, last_only=True)
    stats.prefill_s = time.perf_counter() - t0
    out = []
    t0 = time.perf_counter()
    while True:
        out.append(pick(logits, temperature, gen))
        if len(out) == n_new:
            break
        logits = rows.feed(out[-1][:, None])[:, -1]
    stats.decode_s = time.perf_counter() - t0
    streams = torch.stack(out, 1).tolist()
    stats.new_tokens = stats.rounds = len(prompts) * n_new
    stats.steps = n_new
    return (streams[0] if single else streams), stats


def _propose(logits: torch.Tensor, temperature: float, c: float, top: int,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The draft's proposal q (temperature, then Saguaro on its ``top`` tokens when C < 1) and a
    token drawn from it; logits [B, V]. At temperature 0 the proposal is the argmax, a
    deterministic one: q is None (verified as q = delta_x)."""
    if temperature == 0:
        return logits.argmax(-1), None
    q = probs(logits, temperature)
    if c < 1:
        q = saguaro(q, top, c)
    return torch.multinomial(q.reshape(-1, q.shape[-1]), 1, generator=generator).reshape(q.shape[:-1]), q


def _chain(rows: Rows, logits: torch.Tensor, k: int, temperature: float, c: float, top: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """K draft tokens per row from the logits after each row's last token: tokens [B, K] and
    their proposals [B, K, V] (None at temperature 0). The rows' caches grow by K - 1."""
    xs, qs = [], []
    for i in range(k):
        x, q = _propose(logits, temperature, c, top, generator)
        xs.append(x)
        qs.append(q)
        if i < k - 1:
            logits = rows.feed(x[:, None])[:, -1]
    return torch.stack(xs, 1), (None if temperature == 0 else torch.stack(qs, 1))


def _catch_up(rows: Rows, s: list[list[int]], extra: list[list[int]] | None = None) -> torch.Tensor:
    """Roll each row back to (at most) s[r][:-1], feed the rest of s[r] and ``extra[r]``; the
    logits of the last len(extra[r]) + 1 tokens of each row [B, len(extra) + 1, V]."""
    rows.truncate(torch.minimum(rows.lengths, torch.tensor([len(x) - 1 for x in s], device=rows.lengths.device)))
    extra = extra or [[] for _ in s]
    seqs = [x[int(n):] + e for x, n, e in zip(s, rows.lengths.tolist(), extra, strict=True)]
    logits = rows.feed(seqs)
    width = len(extra[0]) + 1
    index = torch.tensor([len(x) - width for x in seqs], device=logits.device)[:, None] + torch.arange(width, device=logits.device)
    return logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))


def _draft_chain(rows: Rows, s: list[list[int]], k: int, temperature: float, c: float, top: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """K tokens from the draft after each s[r] (the rows may hold any prefix of s[r][:-1])."""
    return _chain(rows, _catch_up(rows, s)[:, -1], k, temperature, c, top, generator)


def _verify_round(target: Rows, s: list[list[int]], xs: torch.Tensor, qs: torch.Tensor | None, temperature: float,
                  generator: torch.Generator) -> tuple[list[int], list[int]]:
    xs = xs.to(target.mask.device)
    pending = torch.tensor([x[-1] for x in s], device=xs.device)
    p = probs(target.feed(torch.cat([pending[:, None], xs], 1)), temperature)
    verdict = verify(xs, qs, p, generator)
    return verdict.accepted.tolist(), verdict.bonus.tolist()


def _commit(s: list[list[int]], xs: list[list[int]], accepted: list[int], bonus: list[int], stats: Stats,
            start: list[int], n_new: int) -> list[int]:
    """Append each live row's accepted tokens and bonus (capped at n_new); tokens emitted per row."""
    emitted = []
    for r, row in enumerate(s):
        room = n_new - (len(row) - start[r])
        if room <= 0:  # finished rows ride along in the batch; nothing of theirs counts
            emitted.append(0)
            continue
        new = (xs[r][:accepted[r]] + [bonus[r]])[:room]
        row += new
        stats.rounds += 1
        stats.drafted += len(xs[r])
        stats.accepted += accepted[r]
        emitted.append(len(new))
    stats.steps += 1
    return emitted


def _done(s: list[list[int]], start: list[int], n_new: int) -> bool:
    return all(len(row) - n >= n_new for row, n in zip(s, start, strict=True))


def speculative(target, draft, prompt, n_new: int, cfg: DecodeConfig):
    """Synchronous SD: the draft proposes K tokens, then the target verifies them in one pass."""
    cfg.check()
    prompts, single = _as_batch(prompt)
    gen = _generator(target, cfg.seed)
    dgen = _generator(draft, cfg.seed + 1)
    stats = Stats()
    t0 = time.perf_counter()
    t_rows, d_rows = _prefilled(target, prompts), _prefilled(draft, prompts)
    stats.prefill_s = time.perf_counter() - t0
    s = [list(p) for p in prompts]
    start = [len(p) for p in prompts]
    t_start = time.perf_counter()
    while not _done(s, start, n_new):
        t0 = time.perf_counter()
        xs, qs = _draft_chain(d_rows, s, cfg.k, cfg.temperature, 1.0, 0, dgen)
        t1 = time.perf_counter()
        accepted, bonus = _verify_round(t_rows, s, xs, qs, cfg.temperature, gen)
        stats.draft_s += t1 - t0
        stats.verify_s += time.perf_counter() - t1
        _commit(s, xs.tolist(), accepted, bonus, stats, start, n_new)
        t_rows.truncate([len(x) - 1 for x in s])
    stats.decode_s = time.perf_counter() - t_start
    stats.new_tokens = sum(len(x) - n for x, n in zip(s, start, strict=True))
    streams = [x[n:] for x, n in zip(s, start, strict=True)]
    return (streams[0] if single else streams), stats


# ---------------------------------------------------------------------------- SSD draft process
Cache = dict[tuple[int, int, int], tuple[list[int], torch.Tensor | None]]  # (row, accepted, bonus) -> next chain


def _build_cache(rows: Rows, s: list[list[int]], xs: list[list[int]], cfg: DecodeConfig, fans: list[list[int]],
                 generator: torch.Generator) -> Cache:
    """Predict the outcome of verifying xs[r] after s[r] and pre-draft the next round for the
    likely ones: every row's branches over every accepted length decode as one batch."""
    k, c = cfg.k, cfg.saguaro_c
    glue = _catch_up(rows, s, xs)  # [B, K+1, V]: draft logits after s + x_1..x_j, j = 0..K
    q = probs(glue, cfg.temperature) if cfg.temperature > 0 else torch.softmax(glue, -1)
    spec = torch.tensor(xs, device=q.device)
    q[:, :k].scatter_(-1, spec[..., None], -1.0)  # a rejection at j+1 rules out x_{j+1} as the bonus
    widest = min(max(max(f) for f in fans), q.shape[-1] - 1)
    if widest <= 0:
        return {}
    top = q.topk(widest, -1).indices.tolist()  # [B, K+1, widest]
    keys, parent, lengths = [], [], []
    for r, fan in enumerate(fans):
        for j in range(k + 1):
            for t in top[r][j][:max(fan[j], 0)]:
                keys.append((r, j, t))
                parent.append(r)
                lengths.append(len(s[r]) + j)
    if not keys:
        return {}
    branch = rows.take(parent, lengths)
    logits = branch.feed(torch.tensor([[t] for (_, _, t) in keys]))[:, -1]
    # Saguaro on the top F+1, as the official code: the speculated token and F bonus candidates
    tokens, dists = _chain(branch, logits, k, cfg.temperature, c, cfg.fan_out[0] + 1, generator)
    tokens = tokens.tolist()
    return {key: (tokens[i], None if dists is None else dists[i]) for i, key in enumerate(keys)}


def _draft_main(conn, spec, cfg: DecodeConfig, core: int | None) -> None:
    try:
        if core is not None and hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {core})
        torch.set_num_threads(1)
        draft = spec.session()
        gen, fast = _generator(draft, cfg.seed + 1), torch.Generator().manual_seed(cfg.seed + 2)
        vocab = draft.vocab_size
        rows, s, cache, xs = None, [], {}, []
        idle0 = time.perf_counter()
        while True:
            msg = conn.recv()
            idle = time.perf_counter() - idle0
            if msg[0] == "stop":
                return
            if msg[0] == "config":  # as a new process with this config: its generators seeded afresh
                cfg = msg[1]
                gen, fast = _generator(draft, cfg.seed + 1), torch.Generator().manual_seed(cfg.seed + 2)
                conn.send(("ok",))
                continue
            if msg[0] == "prefill":
                s, cache, xs = [list(p) for p in msg[1]], {}, []
                rows = _prefilled(draft, s)
                conn.send(("ok",))
                idle0 = time.perf_counter()
                continue
            busy0 = time.perf_counter()
            outcomes = msg[1]
            backup_s = 0.0
            if outcomes is not None:
                for r, (accepted, bonus) in enumerate(outcomes):
                    s[r] += xs[r][:accepted] + [bonus]
            entries = [None] * len(s) if outcomes is None else \
                [cache.get((r, a, t)) for r, (a, t) in enumerate(outcomes)]
            length_hits = [False] * len(s) if outcomes is None else \
                [any(key[:2] == (r, a) for key in cache) for r, (a, _) in enumerate(outcomes)]
            missed = [r for r, e in enumerate(entries) if e is None]
            new_xs = [e[0] if e is not None else None for e in entries]
            new_qs = [e[1] if e is not None else None for e in entries]
            if missed and (outcomes is None or cfg.backup == "jit"):
                b0 = time.perf_counter()
                sub = rows if len(missed) == len(s) else rows.take(missed)
                tok, dist = _draft_chain(sub, [s[r] for r in missed], cfg.k, cfg.temperature, cfg.saguaro_c,
                                         cfg.fan_out[0] + 1, gen)
                for i, r in enumerate(missed):
                    new_xs[r], new_qs[r] = tok[i].tolist(), None if dist is None else dist[i]
                backup_s = time.perf_counter() - b0
            else:  # random tokens: costs nothing, verified as q = delta_x
                for r in missed:
                    new_xs[r] = torch.randint(vocab, (cfg.k,), generator=fast).tolist()
            xs = new_xs
            qs = None
            if cfg.temperature > 0:  # deterministic rows (random backup) get q = delta_x
                qs = torch.stack([q.cpu() if q is not None else one_hot_proposal(torch.tensor(x), vocab)
                                  for x, q in zip(xs, new_qs, strict=True)])
            hits = [e is not None for e in entries]
            conn.send(("spec", xs, qs, hits, length_hits, idle, backup_s))
            fans = [cfg.fan_out if (hit or not cfg.fan_out_miss) else cfg.fan_out_miss for hit in hits]
            cache = _build_cache(rows, s, xs, cfg, fans, gen)
            conn.send(("built", time.perf_counter() - busy0))
            idle0 = time.perf_counter()
    except (EOFError, KeyboardInterrupt):
        return
    except BaseException:  # report, then exit: the target raises it with this text
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))


class DraftProcess:
    """The SSD draft on its own core, answering one request per round over a pipe; ``configure`` makes it
    serve another config (another backup) as a new process would, without loading the draft again."""

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

    def configure(self, cfg: DecodeConfig) -> None:
        """From here on, serve ``cfg``, with the draft's generators seeded as a new process's would be."""
        self.send(("config", cfg))
        self.recv()

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


def ssd(target, draft: DraftProcess, prompt, n_new: int, cfg: DecodeConfig, core: int | None = 0):
    """SSD: the draft process builds the speculation cache while the target verifies."""
    cfg.check()
    pinned = core is not None and hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1)
    before = os.sched_getaffinity(0) if pinned else None
    if pinned:
        os.sched_setaffinity(0, {core})
    try:
        prompts, single = _as_batch(prompt)
        streams, stats = _ssd_rounds(target, draft, prompts, n_new, cfg)
        return (streams[0] if single else streams), stats
    finally:
        if pinned:
            os.sched_setaffinity(0, before)


def _ssd_rounds(target, draft: DraftProcess, prompts: list[list[int]], n_new: int,
                cfg: DecodeConfig) -> tuple[list[list[int]], Stats]:
    gen = _generator(target, cfg.seed)
    stats = Stats()
    t0 = time.perf_counter()
    draft.send(("prefill", prompts))
    rows = _prefilled(target, prompts)
    draft.recv()
    stats.prefill_s = time.perf_counter() - t0
    s = [list(p) for p in prompts]
    start = [len(p) for p in prompts]
    outcomes = None
    building = False
    t_start = time.perf_counter()
    while not _done(s, start, n_new):
        t0 = time.perf_counter()
        if building:  # the draft's previous cache build, if still running, is time the target waits
            stats.draft_busy_s += draft.recv()[1]
        draft.send(("round", outcomes))
        _, xs, qs, hits, length_hits, idle, backup_s = draft.recv()
        building = True
        t1 = time.perf_counter()
        stats.wait_s += t1 - t0
        stats.draft_idle_s += idle
        stats.backup_s += backup_s
        x = torch.tensor(xs, device=rows.mask.device)
        accepted, bonus = _verify_round(rows, s, x, qs, cfg.temperature, gen)
        stats.verify_s += time.perf_counter() - t1
        live = [len(row) - n < n_new for row, n in zip(s, start, strict=True)]
        emitted = _commit(s, xs, accepted, bonus, stats, start, n_new)
        if outcomes is not None:  # a row's first round has no prediction to hit
            stats.predicted_steps += 1
            stats.all_hit_steps += all(hits[r] for r in range(len(s)) if live[r])
            for r in range(len(s)):
                if live[r]:
                    stats.predicted += 1
                    stats.hits += hits[r]
                    stats.length_hits += length_hits[r]
                    stats.tokens_on_hit += emitted[r] if hits[r] else 0
        rows.truncate([len(row) - 1 for row in s])
        outcomes = list(zip(accepted, bonus, strict=True))
    stats.decode_s = time.perf_counter() - t_start
    if building:
        stats.draft_busy_s += draft.recv()[1]
    stats.new_tokens = sum(len(x) - n for x, n in zip(s, start, strict=True))
    return [x[n:] for x, n in zip(s, start, strict=True)], stats
