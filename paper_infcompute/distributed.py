"""Data-parallel training over several processes with ``torch.distributed``: one process per device,
started by ``torchrun``, or as the tasks of one submitit job (SLURM), whose environment
``TorchDistributedEnvironment`` translates. Outside such a launch every function here is the
single-process case (rank 0 of 1)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: str) -> tuple[int, int]:
    """Join the process group that ``torchrun`` (or the launcher) described in the environment
    (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL for CUDA, gloo
    otherwise, each rank on its local device. Returns (rank, world size); (0, 1) when not launched so."""
    if "WORLD_SIZE" not in os.environ and "SUBMITIT_EXECUTOR" in os.environ:
        _export_submitit_group()
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return rank_world()
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank_world()


def _export_submitit_group() -> None:
    """A submitit job of several tasks (one per device) is one process group: its ranks, world size and
    rendezvous address go to the environment ``init_process_group`` reads. Every task keeps seeing all
    the job's devices and picks its own by local rank."""
    import submitit

    if submitit.JobEnvironment().num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def local_device(device: str) -> torch.device:
    """This rank's device: its local GPU under a multi-GPU launch, else ``device`` as given."""
    if device == "cuda" and dist.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(device)


def data_parallel(model: torch.nn.Module) -> torch.nn.parallel.DistributedDataParallel:
    """The model wrapped for data parallelism: replicas start from rank 0's weights and their
    gradients are averaged (all-reduce, overlapped with the backward pass) after each synced pass."""
    first = next(model.parameters())
    ids = [first.device.index] if first.is_cuda else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_ranks(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
