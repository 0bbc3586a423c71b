"""Training under torchrun (PyTorch DDP): gloo on CPU, NCCL on CUDA; rank 0 alone writes."""

import contextlib
import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@contextlib.contextmanager
def process_group(device: str):
    """Join torchrun's process group for the block (nothing to do in a single process)."""
    _, world, local_rank = rank_and_world()
    if world == 1:
        yield
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    try:
        yield
        # Leave together: a rank that tears gloo down while rank 0 is still writing its last epoch aborted once
        # ("terminate called without an active exception", exit -6, in CI's torchrun test).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def from_rank0(value):
    """Rank 0's `value` on every rank (e.g. the val mIoU that only rank 0 measures)."""
    if not dist.is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
