"""A target split over several processes by tensor parallelism (transformers' tensor-parallel plan on a
``torch.distributed`` group: NCCL on GPUs, gloo on CPUs), driven from one process.

The calling process is rank 0: it runs the engine, and its ``LeaderSession`` sends every session call
(feed, forward, take, crop, reset) to the other ranks before making it. The other ranks, started here
(``start``), make the same call on their shard of the model and drop the result (``follow``): all ranks
take part in each layer's collectives, and every rank ends with the full logits after the head's
all-gather, so rank 0's result is the model's. Sessions made by ``take`` get the same number on every
rank. Each call costs one extra broadcast of its (small) arguments.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist

from paper_ssd.models import HFSession, session_over


@dataclass(frozen=True)
class Group:
    """Where the ranks run: ``devices[r]`` is rank r's ("cpu" for every rank of a gloo group)."""

    where: str
    dtype: str
    devices: tuple[str, ...]
    port: int
    static_cache: int = 0  # the sessions' KV cache (``models.session_over``), the same on every rank
    compile: str = ""

    @property
    def world(self) -> int:
        return len(self.devices)


def _join(group: Group, rank: int) -> HFSession:
    """Join the process group as ``rank`` and load this rank's shard of the model."""
    from transformers import AutoModelForCausalLM
    from transformers.distributed import DistributedConfig

    device = torch.device(group.devices[rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{group.port}",
                            rank=rank, world_size=group.world)
    # transformers binds each rank to the accelerator numbered LOCAL_RANK
    with _environ(LOCAL_RANK=str(device.index or 0)):
        model = AutoModelForCausalLM.from_pretrained(
            group.where, dtype=getattr(torch, group.dtype),
            distributed_config=DistributedConfig(tp_plan="auto", tp_size=group.world)).eval()
    return session_over(model, group.static_cache, group.compile)


@contextlib.contextmanager
def _environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _to(value, device: torch.device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _cpu(value):
    return value.cpu() if isinstance(value, torch.Tensor) else value


def follow(group: Group, rank: int) -> None:
    """A follower rank: make every call the leader sends on its own shard, until told to stop."""
    sessions = {0: _join(group, rank)}
    while True:
        message = [None]
        dist.broadcast_object_list(message, src=0)
        sid, op, args, dropped = message[0]
        for gone in dropped:  # sessions the leader no longer holds: their caches go too
            sessions.pop(gone, None)
        if op == "stop":
            break
        session = sessions[sid]
        if op == "take":  # the leader numbered the new session
            index, new = args
            sessions[new] = session.take(_to(index, session.device))
        else:
            getattr(session, op)(*(_to(a, session.device) for a in args))
    dist.destroy_process_group()


class LeaderSession:
    """Rank 0's session: the engine's session interface, every call mirrored on the other ranks."""

    def __init__(self, leader: Leader, sid: int, session: HFSession):
        self._leader, self._sid, self._session = leader, sid, session
        weakref.finalize(self, leader.dropped.append, sid)  # told to the followers with the next call

    vocab_size = property(lambda self: self._session.vocab_size)
    length = property(lambda self: self._session.length)
    device = property(lambda self: self._session.device)
    output_device = property(lambda self: self._session.output_device)

    def _call(self, op: str, *args):
        self._leader.send(self._sid, op, [_cpu(a) for a in args])
        return getattr(self._session, op)(*args)

    def feed(self, tokens) -> torch.Tensor:
        return self._call("feed", tokens)

    def forward(self, tokens, positions, key_mask, keep=None) -> torch.Tensor:
        return self._call("forward", tokens, positions, key_mask, keep)

    def crop(self, n: int) -> None:
        self._call("crop", n)

    def reset(self) -> None:
        self._call("reset")

    def take(self, index: torch.Tensor) -> LeaderSession:
        sid = self._leader.register()
        self._leader.send(self._sid, "take", [index.cpu(), sid])
        return LeaderSession(self._leader, sid, self._session.take(index))

    def close(self) -> None:
        self._leader.close()


class Leader:
    """The follower processes and the numbering of sessions (the same on every rank)."""

    def __init__(self, group: Group):
        context = multiprocessing.get_context("spawn")
        self.processes = [context.Process(target=follow, args=(group, r), daemon=True) for r in range(1, group.world)]
        for p in self.processes:
            p.start()
        self.dropped: list[int] = []
        self._sessions, self._open = 1, True
        self.root = LeaderSession(self, 0, _join(group, 0))

    def register(self) -> int:
        self._sessions += 1
        return self._sessions - 1

    def send(self, sid: int, op: str, args: list) -> None:
        dropped, self.dropped[:] = list(self.dropped), []
        dist.broadcast_object_list([(sid, op, args, dropped)], src=0)

    def close(self) -> None:
        """Stop the followers and leave the group (idempotent)."""
        if not self._open:
            return
        self._open = False
        self.send(0, "stop", [])
        for p in self.processes:
            p.join(timeout=60)
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(where: str, dtype: str, devices: list[str], static_cache: int = 0, compile: str = "") -> LeaderSession:
    """The target at ``where`` split over ``devices`` (one rank each; this process is the first), as a
    session of the engine's interface (``models.session_over``'s on every rank). ``close()`` stops the
    other ranks."""
    return Leader(Group(where, dtype, tuple(devices), free_port(), static_cache, compile)).root
